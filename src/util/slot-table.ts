// Values kept per client slot of a server, by slot index: a ReadonlyMap in slot order, with a read-only
// view (server.peers is one) that leaves a caller no way to change it. The engine hands slots out lowest
// first, so a densely grown array serves where a Map hashed every lookup and grew, shrank and rehashed as
// clients came and went: a set and a delete cost a Map of 30,000 peers 230 ns in steady state and 650 ns
// while it grew, the array 10 (Map.set, Map.delete and their rehashes were about 3 % of a server's CPU per
// handshake in bench:connections' phase 0).
export class SlotTable<T> implements ReadonlyMap<number, T> {
  readonly #values: (T | undefined)[] = []
  #size = 0
  /** The table as a ReadonlyMap that has no set(), delete() or clear(): what the server hands out. */
  readonly view: ReadonlyMap<number, T> = new SlotTableView(this)

  get size(): number {
    return this.#size
  }

  get(index: number): T | undefined {
    return this.#values[index]
  }

  has(index: number): boolean {
    return this.#values[index] !== undefined
  }

  set(index: number, value: T): this {
    // Grown densely: a far write would make the array sparse, and its reads a dictionary's.
    while (this.#values.length < index) this.#values.push(undefined)
    if (this.#values[index] === undefined) this.#size++
    this.#values[index] = value
    return this
  }

  delete(index: number): boolean {
    if (this.#values[index] === undefined) return false
    this.#values[index] = undefined
    this.#size--
    return true
  }

  clear(): void {
    this.#values.length = 0
    this.#size = 0
  }

  forEach(visit: (value: T, index: number, table: ReadonlyMap<number, T>) => void, thisArg?: unknown): void {
    for (const index of this.keys()) visit.call(thisArg, this.#values[index]!, index, this)
  }

  // Live, as a Map's iterators are: a slot emptied meanwhile is passed over, one filled ahead is visited.
  // The one walk of the array; the others read each slot it yields (values() makes no pair per peer).
  *keys(): MapIterator<number> {
    for (let index = 0; index < this.#values.length; index++) {
      if (this.#values[index] !== undefined) yield index
    }
  }

  *values(): MapIterator<T> {
    for (const index of this.keys()) yield this.#values[index]!
  }

  *entries(): MapIterator<[number, T]> {
    for (const index of this.keys()) yield [index, this.#values[index]!]
  }

  [Symbol.iterator](): MapIterator<[number, T]> {
    return this.entries()
  }

  get [Symbol.toStringTag](): string {
    return 'SlotTable'
  }
}

/** A SlotTable read through: live, as the table is, and with nothing that changes it (nor a way to reach it). */
class SlotTableView<T> implements ReadonlyMap<number, T> {
  readonly #table: SlotTable<T>

  constructor(table: SlotTable<T>) {
    this.#table = table
  }

  get size(): number {
    return this.#table.size
  }

  get(index: number): T | undefined {
    return this.#table.get(index)
  }

  has(index: number): boolean {
    return this.#table.has(index)
  }

  forEach(visit: (value: T, index: number, map: ReadonlyMap<number, T>) => void, thisArg?: unknown): void {
    for (const [index, value] of this.#table) visit.call(thisArg, value, index, this)
  }

  keys(): MapIterator<number> {
    return this.#table.keys()
  }

  values(): MapIterator<T> {
    return this.#table.values()
  }

  entries(): MapIterator<[number, T]> {
    return this.#table.entries()
  }

  [Symbol.iterator](): MapIterator<[number, T]> {
    return this.#table.entries()
  }

  get [Symbol.toStringTag](): string {
    return 'SlotTable'
  }
}
