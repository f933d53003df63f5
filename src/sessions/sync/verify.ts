// A FlatBuffers verifier for the agent sync schema. The flatbuffers package reads without bounds checks (a
// hostile offset reads past the end as zeros, and a hostile vector length loops for billions of items), and it
// has no verifier of its own, so every received message passes this one first. It checks what the C++
// library's Verifier checks, driven by the table shapes below, which mirror schema/agent-sync.fbs slot for
// slot (a test compares them with the generated code): every offset inside the buffer and aligned, vtables
// well formed, strings zero-terminated, vector lengths inside the buffer, a union's type one the schema
// knows, and bounds on nesting and on the number of tables.

/** What a field holds; its slot is its place in its table's list. */
export type FieldShape =
  | 'int8' // an enum (byte) or a union's type (ubyte)
  | 'uint64'
  | 'string'
  | 'bytes' // [byte]
  | 'strings' // [string]
  | { readonly tables: () => TableShape } // [Table]
  | { readonly union: () => readonly (TableShape | null)[] } // the union's value; its type is the slot before

export interface TableShape {
  readonly name: string
  readonly fields: readonly FieldShape[]
}

const maxDepth = 64
const maxTables = 1_000_000

/** Why a buffer failed verification, for the counters and the log. */
export type VerifyFailure =
  | 'too-short' // shorter than a root offset
  | 'out-of-bounds' // an offset, a vtable, a string or a vector past the end of the buffer
  | 'misaligned'
  | 'bad-vtable'
  | 'bad-string' // not zero-terminated
  | 'unknown-union-type'
  | 'too-deep'
  | 'too-many-tables'

class Failed {
  constructor(readonly reason: VerifyFailure) {}
}

/**
 * Verifies `bytes` as a buffer whose root is a `root` table: null when it is sound, or why not. Never throws
 * on bytes.
 */
export function verifyBuffer(bytes: Uint8Array, root: TableShape): VerifyFailure | null {
  if (bytes.byteLength < 8) return 'too-short'
  const verifier = new Verifier(bytes)
  try {
    verifier.table(verifier.offsetTarget(0), root, 1)
    return null
  } catch (error) {
    if (error instanceof Failed) return error.reason
    throw error
  }
}

class Verifier {
  readonly #view: DataView
  readonly #length: number
  #tables = 0

  constructor(bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.#length = bytes.byteLength
  }

  /** Checks that `size` bytes at `at` lie in the buffer and are aligned to `align`. */
  #check(at: number, size: number, align: number): void {
    if (at < 0 || at + size > this.#length) throw new Failed('out-of-bounds')
    if (at % align !== 0) throw new Failed('misaligned')
  }

  /** The position an unsigned offset stored at `at` points to (offsets are relative to where they are stored). */
  offsetTarget(at: number): number {
    this.#check(at, 4, 4)
    const offset = this.#view.getUint32(at, true)
    // Offsets point forward, and are at most 2^31 - 1 (a FlatBuffer is under 2 GiB).
    if (offset === 0 || offset > 0x7fffffff) throw new Failed('out-of-bounds')
    return at + offset
  }

  table(at: number, shape: TableShape, depth: number): void {
    if (depth > maxDepth) throw new Failed('too-deep')
    if (++this.#tables > maxTables) throw new Failed('too-many-tables')
    const view = this.#view
    this.#check(at, 4, 4)
    const vtable = at - view.getInt32(at, true)
    this.#check(vtable, 4, 2)
    const vtableSize = view.getUint16(vtable, true)
    const tableSize = view.getUint16(vtable + 2, true)
    if (vtableSize < 4 || vtableSize % 2 !== 0) throw new Failed('bad-vtable')
    this.#check(vtable, vtableSize, 2)
    if (tableSize < 4) throw new Failed('bad-vtable')
    this.#check(at, tableSize, 1)
    const fields = shape.fields
    for (let slot = 0; slot < fields.length; slot++) {
      const entry = 4 + 2 * slot
      const fieldOffset = entry < vtableSize ? view.getUint16(vtable + entry, true) : 0
      if (fieldOffset === 0) continue
      const field = fields[slot]!
      const size = field === 'int8' ? 1 : field === 'uint64' ? 8 : 4
      if (fieldOffset + size > tableSize) throw new Failed('bad-vtable')
      const position = at + fieldOffset
      this.#check(position, size, size)
      if (field === 'int8' || field === 'uint64') continue
      if (typeof field === 'object' && 'union' in field) {
        // The union's type is the byte in the slot before its value; NONE (0) or an absent type means no value.
        const typeOffset = slot > 0 && fields[slot - 1] === 'int8' ? view.getUint16(vtable + entry - 2, true) : 0
        const type = typeOffset === 0 ? 0 : view.getUint8(at + typeOffset)
        if (type === 0) continue
        const member = field.union()[type]
        if (member === undefined || member === null) throw new Failed('unknown-union-type')
        this.table(this.offsetTarget(position), member, depth + 1)
        continue
      }
      this.#reference(this.offsetTarget(position), field, depth)
    }
  }

  #reference(target: number, field: Exclude<FieldShape, 'int8' | 'uint64'>, depth: number): void {
    const view = this.#view
    this.#check(target, 4, 4)
    const count = view.getUint32(target, true)
    const start = target + 4
    if (field === 'string') {
      this.#check(start, count + 1, 1)
      if (view.getUint8(start + count) !== 0) throw new Failed('bad-string')
      return
    }
    if (field === 'bytes') {
      this.#check(start, count, 1)
      return
    }
    this.#check(start, count * 4, 4)
    if (field === 'strings') {
      for (let i = 0; i < count; i++) this.#reference(this.offsetTarget(start + 4 * i), 'string', depth)
      return
    }
    if ('tables' in field) {
      const shape = field.tables()
      for (let i = 0; i < count; i++) this.table(this.offsetTarget(start + 4 * i), shape, depth + 1)
      return
    }
    throw new Failed('bad-vtable')
  }
}
