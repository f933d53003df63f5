// The PrivateKeys set of src/protocol/netcode/ (a Server's keys): that it wipes the keys it lets go, and owns
// copies of what it is given.
import { describe, expect, it } from 'vitest'
import { PrivateKeys } from '../../src/protocol/netcode/private-keys.ts'
import { fill } from './spec.ts'

/** Keys A, B, C, ...: a byte each, repeated. */
const [A, B, C, D, E] = Array.from({ length: 5 }, (_, i) => fill(32, 0x11 * (i + 1))) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array]

describe('PrivateKeys: wiping', () => {
  /** The buffers the set holds, to look at after it has let them go. */
  const held = (set: PrivateKeys): Uint8Array[] => Array.from({ length: set.count }, (_, i) => set.key(i))
  const zero = (bytes: Uint8Array): boolean => bytes.every((byte) => byte === 0)
  const same = (a: Uint8Array, b: Uint8Array): boolean => a.every((byte, i) => byte === b[i])

  it('wipes a key whose grace ended, one dropped past the cap, one replaced with a grace of 0, and all of them at wipe()', () => {
    const set = new PrivateKeys(A)
    const a = set.key(0)
    set.rotate(B, 10, 0)
    expect(set.key(1)).toBe(a) // the same buffer, moved: no copy of A left behind
    set.expire(10)
    expect(zero(a)).toBe(true)
    expect(set.count).toBe(1)

    set.rotate(C, 100, 20) // B in grace
    set.rotate(D, 100, 20)
    set.rotate(E, 100, 20)
    const before = held(set) // E D C B
    set.rotate(A, 100, 20) // B goes: its buffer, wiped, comes round to hold A
    expect(before.some((buffer) => same(buffer, B))).toBe(false)
    expect(same(before[3]!, A)).toBe(true)
    expect(set.count).toBe(4)

    const current = set.key(0)
    set.rotate(B, 0, 30) // A is not kept
    expect(zero(current)).toBe(false) // its buffer holds B now
    expect([...set.key(0)]).toEqual([...B])
    expect(set.count).toBe(4) // E D C in their grace, B current
    const all = held(set)
    set.wipe()
    expect(all.every(zero)).toBe(true)
    expect(set.count).toBe(0)
  })

  it('copies what it is given: the caller may wipe its own', () => {
    const mine = A.slice()
    const set = new PrivateKeys(mine)
    mine.fill(0)
    expect([...set.key(0)]).toEqual([...A])
  })
})
