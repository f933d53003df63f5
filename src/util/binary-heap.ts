// A binary min-heap of values ordered by `before`: the delivery layer's resend queue and the network
// simulator's held datagrams. (The server core's timer heap keeps its entries in parallel arrays of numbers
// instead: one per client slot, on every packet's path.)
export class BinaryHeap<T> {
  readonly #items: T[] = []

  /** before(a, b): whether a comes out before b. */
  constructor(readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.#items.length
  }

  get empty(): boolean {
    return this.#items.length === 0
  }

  /** The first value (undefined when empty). */
  top(): T | undefined {
    return this.#items[0]
  }

  push(value: T): void {
    const items = this.#items
    let at = items.push(value) - 1
    while (at > 0) {
      const parent = (at - 1) >> 1
      if (!this.before(value, items[parent]!)) break
      items[at] = items[parent]!
      at = parent
    }
    items[at] = value
  }

  /** Removes the first value. */
  pop(): void {
    const items = this.#items
    const last = items.pop()
    if (last === undefined || items.length === 0) return
    let at = 0
    for (;;) {
      const left = 2 * at + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && this.before(items[right]!, items[left]!) ? right : left
      if (!this.before(items[child]!, last)) break
      items[at] = items[child]!
      at = child
    }
    items[at] = last
  }
}
