// The server's table of connected addresses (native/protocol/netcode/address_table.h: open addressing, backward-shift
// deletion, growth) against a Map over random inserts, lookups and erases of IPv4 and IPv6 addresses.
import { describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { seededRandom } from '../helpers.ts'

interface NativeAddressTable {
  insert(address: string, value: number): boolean
  set(address: string, value: number): void
  find(address: string): number | null
  erase(address: string): boolean
  readonly size: number
}

const table = (capacity: number) => new (loadTestingAddon().netcode as unknown as { AddressTable: new (capacity: number) => NativeAddressTable }).AddressTable(capacity)

describe('address table', () => {
  it('agrees with a Map over 30,000 random inserts, overwrites, lookups and erases, through growth and backward-shift erases', () => {
    const random = seededRandom(11)
    const native = table(8) // starts at 16 slots: it grows several times
    const model = new Map<string, number>()
    // Few distinct addresses, so that inserts, erases and lookups meet the same keys often.
    const addresses = Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? `[2001:db8::${(i * 7) % 65536}]:${1000 + i}` : `10.0.${i % 7}.${i % 251}:${20000 + i}`))
    for (let step = 0; step < 30_000; step++) {
      const address = addresses[Math.floor(random() * addresses.length)]!
      const roll = random()
      if (roll < 0.3) {
        const value = Math.floor(random() * 1e6)
        const inserted = native.insert(address, value)
        expect(inserted).toBe(!model.has(address))
        if (inserted) model.set(address, value)
      } else if (roll < 0.4) {
        const value = Math.floor(random() * 1e6)
        native.set(address, value) // inserts or overwrites
        model.set(address, value)
      } else if (roll < 0.7) {
        expect(native.erase(address)).toBe(model.delete(address))
      } else {
        expect(native.find(address)).toBe(model.get(address) ?? null)
      }
      expect(native.size).toBe(model.size)
    }
    for (const address of addresses) expect(native.find(address)).toBe(model.get(address) ?? null)
  })

  it('tells apart the same port on another address, and IPv4 from IPv6', () => {
    const native = table(4)
    expect(native.insert('127.0.0.1:5000', 1)).toBe(true)
    expect(native.insert('127.0.0.2:5000', 2)).toBe(true)
    expect(native.insert('[::ffff:127.0.0.1]:5000', 3)).toBe(true)
    expect(native.insert('127.0.0.1:5000', 9)).toBe(false)
    expect([native.find('127.0.0.1:5000'), native.find('127.0.0.2:5000'), native.find('[::ffff:127.0.0.1]:5000'), native.find('127.0.0.1:5001')]).toEqual([1, 2, 3, null])
  })

  it('tells apart one link-local address on two interfaces (its scope)', () => {
    const native = table(4)
    expect(native.insert('[fe80::1%1]:5000', 1)).toBe(true)
    expect(native.insert('[fe80::1%2]:5000', 2)).toBe(true)
    expect([native.find('[fe80::1%1]:5000'), native.find('[fe80::1%2]:5000'), native.find('[fe80::1]:5000')]).toEqual([1, 2, null])
  })

  it('refuses a value it cannot hold (its empty mark) or an address that does not parse, with a TypeError', () => {
    const native = table(4)
    expect(() => native.insert('127.0.0.1:5000', 2 ** 32 - 1)).toThrow(TypeError)
    expect(() => native.set('127.0.0.1:5000', -1)).toThrow(TypeError)
    expect(() => native.set('nowhere', 1)).toThrow(/an address/)
    expect(native.size).toBe(0)
  })
})
