// A queue with indexed access (front to back) in a power-of-two ring, as native/protocol/delivery/ring.h: empty, it
// holds nothing; it grows by doubling and gives its slots back once a large burst has drained. Its
// capacity is part of the behaviour (a reliable channel's receive queue counts its slots against the
// reassembly bound), so it grows exactly as the native one does.
export class Ring<T> {
  static readonly firstCapacity = 4
  /** An empty ring larger than this gives its slots back. */
  static readonly keptSlots = 1024

  #slots: (T | undefined)[] = []
  #head = 0
  #size = 0

  constructor(readonly make: () => T) {}

  get size(): number {
    return this.#size
  }

  get capacity(): number {
    return this.#slots.length
  }

  get empty(): boolean {
    return this.#size === 0
  }

  /** The capacity resize(count) leaves. */
  capacityFor(count: number): number {
    let capacity = this.#slots.length
    while (capacity < count) capacity = capacity === 0 ? Ring.firstCapacity : capacity * 2
    return capacity
  }

  at(index: number): T {
    return this.#slots[(this.#head + index) & (this.#slots.length - 1)]!
  }

  front(): T {
    return this.#slots[this.#head]!
  }

  pushBack(value: T): void {
    if (this.#size === this.#slots.length) this.#grow()
    this.#slots[(this.#head + this.#size) & (this.#slots.length - 1)] = value
    this.#size++
  }

  /** Adds made entries at the back until there are `count` (never removes any). */
  resize(count: number): void {
    while (this.#size < count) this.pushBack(this.make())
  }

  /** Empties it and gives its slots back. */
  clear(): void {
    this.#slots = []
    this.#head = 0
    this.#size = 0
  }

  popFront(): void {
    this.#slots[this.#head] = undefined
    this.#head = (this.#head + 1) & (this.#slots.length - 1)
    if (--this.#size === 0 && this.#slots.length > Ring.keptSlots) {
      this.#slots = []
      this.#head = 0
    }
  }

  #grow(): void {
    const grown = new Array<T | undefined>(this.capacityFor(this.#size + 1))
    for (let i = 0; i < this.#size; i++) grown[i] = this.at(i)
    this.#slots = grown
    this.#head = 0
  }
}
