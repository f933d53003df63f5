// IP literals to the byte form send slabs use, with a cache so that a busy sender parses each
// destination once; and received address bytes back to strings, remembering the last one seen.
import { isIP } from 'node:net'
import type { Addon } from './engine/addon.ts'
import type { QueuedAddress } from './engine/engine.ts'

/** A local or remote socket address, as node:net and node:dgram give them. */
export interface AddressInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
}

const parsed = new Map<string, QueuedAddress | null>()
const maxCached = 4096
const scratch = new Uint8Array(20)

/** Parses an IPv4 or IPv6 literal (IPv6 may carry a %scope). Returns null when it is not one. */
export function parseIp(addon: Addon, text: string): QueuedAddress | null {
  const hit = parsed.get(text)
  if (hit !== undefined) return hit
  let result: QueuedAddress | null = null
  const family = addon.parseIp(text, scratch)
  if (family !== 0) {
    const view = new DataView(scratch.buffer)
    result = { family, bytes: scratch.slice(0, 16), scopeId: view.getUint32(16, true) }
  }
  if (parsed.size >= maxCached) parsed.clear()
  parsed.set(text, result)
  return result
}

/** The largest UDP payload to an IPv4 address: 65,535 less the IP (20) and UDP (8) headers. */
export const maxIpv4DatagramSize = 65_507

/** Whether 16 address bytes are an IPv4-mapped IPv6 address (::ffff:a.b.c.d), which the kernel sends as IPv4. */
export function isIpv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false
  return bytes[10] === 0xff && bytes[11] === 0xff
}

export function ipFamily(text: string): 0 | 4 | 6 {
  const bare = text.includes('%') ? text.slice(0, text.indexOf('%')) : text
  return isIP(bare) as 0 | 4 | 6
}

/** Formats source addresses of received datagrams, reusing the string while the source stays the same. */
export class AddressFormatter {
  readonly #addon: Addon
  #v4Key = -1
  #v4Text = ''
  readonly #v6Key = new Uint32Array(5) // the address and its scope
  #v6Text = ''

  constructor(addon: Addon) {
    this.#addon = addon
  }

  /** u8/u32 view one slab; `at` is the 4-byte-aligned offset of the 16 address bytes. */
  v4(u8: Uint8Array, u32: Uint32Array, at: number): string {
    const key = u32[at >>> 2]!
    if (key !== this.#v4Key) {
      this.#v4Key = key
      this.#v4Text = `${u8[at]}.${u8[at + 1]}.${u8[at + 2]}.${u8[at + 3]}`
    }
    return this.#v4Text
  }

  /** As v4(); the scope id (a link-local sender's interface, 0 for none) follows the 16 bytes. */
  v6(u8: Uint8Array, u32: Uint32Array, at: number): string {
    const w = at >>> 2
    const key = this.#v6Key
    if (this.#v6Text === '' || key[0] !== u32[w] || key[1] !== u32[w + 1] || key[2] !== u32[w + 2] || key[3] !== u32[w + 3] || key[4] !== u32[w + 4]) {
      key[0] = u32[w]!
      key[1] = u32[w + 1]!
      key[2] = u32[w + 2]!
      key[3] = u32[w + 3]!
      key[4] = u32[w + 4]!
      this.#v6Text = this.#addon.formatIp(u8.subarray(at, at + 16), 6, key[4])
    }
    return this.#v6Text
  }
}
