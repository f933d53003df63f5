// IP addresses: literals to the byte form send slabs use, with a cache so that a busy sender parses each
// destination once; and received address bytes back to strings, remembering the last one seen.
import { isIP } from 'node:net'
import { readFileSync, readdirSync } from 'node:fs'
import { networkInterfaces } from 'node:os'

/** A local or remote socket address, as node:net and node:dgram give them. */
export interface AddressInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
}

/** 'host:port', with an IPv6 address in brackets. */
export function addressText(info: AddressInfo): string {
  return info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`
}

const maxCached = 4096
const scratch = new Uint8Array(20)

/** What turns IP text into bytes and back: the native addon, or javascriptIp below. */
export interface IpCodec {
  /** Writes the address's 16 bytes and its u32 scope (20 bytes in all) to `out`; returns its family, 0 for no IP literal. */
  parseIp(text: string, out: Uint8Array): 0 | 4 | 6
  /** scopeId: an IPv6 address's interface (0: none), formatted as %name as node:dgram does. */
  formatIp(bytes: Uint8Array, family: number, scopeId?: number): string
}

/** A destination in the form send slabs hold it. */
export interface QueuedAddress {
  family: 4 | 6
  /** 16 bytes; an IPv4 address fills the first 4. */
  bytes: Uint8Array
  scopeId: number
}

// One cache per codec: the two may differ on what they accept (a scope name resolved a moment apart).
const cacheByCodec = new WeakMap<IpCodec, Map<string, QueuedAddress | null>>()

/** Parses an IPv4 or IPv6 literal (IPv6 may carry a %scope). Returns null when it is not one. */
export function parseIp(addon: IpCodec, text: string): QueuedAddress | null {
  let parsed = cacheByCodec.get(addon)
  if (parsed === undefined) {
    parsed = new Map()
    cacheByCodec.set(addon, parsed)
  }
  const hit = parsed.get(text)
  if (hit !== undefined) return hit
  let result: QueuedAddress | null = null
  const family = addon.parseIp(text, scratch)
  if (family !== 0) {
    const view = new DataView(scratch.buffer)
    result = { family, bytes: scratch.slice(0, 16), scopeId: view.getUint32(16, true) }
  }
  // A scope name stands for an interface index that changes when the interface comes and goes: not cached.
  if (text.includes('%')) return result
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
  readonly #addon: IpCodec
  #v4Key = -1
  #v4Text = ''
  readonly #v6Key = new Uint32Array(5) // the address and its scope
  #v6Text = ''

  constructor(addon: IpCodec) {
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

/** The dotted quad of the 4 bytes at `at` (a template: 2.5 times as fast as a typed array's join). */
export function formatIpv4(bytes: Uint8Array, at: number): string {
  return `${bytes[at]!}.${bytes[at + 1]!}.${bytes[at + 2]!}.${bytes[at + 3]!}`
}

/**
 * An address's IP as text, as inet_ntop writes it (the native side names peers that way): IPv4 dotted;
 * IPv6 with the longest run of two or more zero groups compressed, as RFC 5952 asks, and an IPv4 address
 * in the last 32 bits dotted where it is embedded (::a.b.c.d) or mapped (::ffff:a.b.c.d).
 */
export function formatIpBytes(address: { family: 4 | 6; bytes: Uint8Array }): string {
  if (address.family === 4) return formatIpv4(address.bytes, 0)
  const groups: string[] = []
  for (let i = 0; i < 8; i++) groups.push(((address.bytes[2 * i]! << 8) | address.bytes[2 * i + 1]!).toString(16))
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const embeddedV4 = bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 'ffff'))
  if (embeddedV4) groups.splice(6, 2, formatIpv4(address.bytes, 12))
  return bestStart < 0 ? groups.join(':') : `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`
}

/** The 16 bytes of a valid IPv6 literal (checked by isIPv6 before). */
function ipv6Bytes(text: string): Uint8Array {
  let literal = text
  const bytes = new Uint8Array(16)
  // A trailing dotted quad stands for the last two groups.
  const lastColon = literal.lastIndexOf(':')
  const tail = literal.slice(lastColon + 1)
  let v4: number[] | undefined
  if (tail.includes('.')) {
    v4 = tail.split('.').map(Number)
    literal = `${literal.slice(0, lastColon + 1)}0:0`
  }
  const [left = '', right] = literal.split('::')
  const leftGroups = left === '' ? [] : left.split(':')
  const rightGroups = right === undefined || right === '' ? [] : right.split(':')
  const groups = [...leftGroups, ...new Array<string>(8 - leftGroups.length - rightGroups.length).fill('0'), ...rightGroups]
  groups.forEach((group, i) => {
    const value = Number.parseInt(group, 16)
    bytes[2 * i] = value >> 8
    bytes[2 * i + 1] = value & 0xff
  })
  if (v4) bytes.set(v4, 12)
  return bytes
}

/** The bytes of an IP literal (4 of IPv4, 16 of IPv6); null for anything else, an IPv6 zone ('%eth0') included. */
export function ipLiteralBytes(text: string): { family: 4 | 6; bytes: Uint8Array } | null {
  if (text.includes('%')) return null
  const family = isIP(text)
  if (family === 4) return { family, bytes: Uint8Array.from(text.split('.').map(Number)) }
  return family === 6 ? { family, bytes: ipv6Bytes(text) } : null
}

/**
 * The interfaces an IPv6 scope can name, by name and by index: on Linux every one (/sys/class/net), elsewhere
 * those node:os lists with an address that carries its index (a link-local IPv6 address). Read at most once a
 * second (interfaces come and go; a link-local sender's every datagram asks).
 */
function scopedInterfaces(): { byName: Map<string, number>; byIndex: Map<number, string> } {
  const now = Date.now()
  if (interfaces !== undefined && now - interfaces.readAtMs < 1000) return interfaces
  const byName = new Map<string, number>()
  const byIndex = new Map<number, string>()
  try {
    for (const name of readdirSync('/sys/class/net')) {
      const index = Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'))
      if (Number.isInteger(index) && index > 0) {
        byName.set(name, index)
        byIndex.set(index, name)
      }
    }
  } catch {
    // No sysfs: what node:os says, below.
  }
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family !== 'IPv6' || !address.scopeid || byName.has(name)) continue
      byName.set(name, address.scopeid)
      byIndex.set(address.scopeid, name)
    }
  }
  interfaces = { byName, byIndex, readAtMs: now }
  return interfaces
}

let interfaces: { byName: Map<string, number>; byIndex: Map<number, string>; readAtMs: number } | undefined

/**
 * The addon's parseIp and formatIp in JavaScript, for the fallback engine: the same bytes (16 of them, then
 * the u32 scope), and a scope by its interface's name or number. Without /sys (not Linux) it knows an
 * interface's index only if node:os lists a link-local IPv6 address on it.
 */
export const javascriptIp: IpCodec = {
  parseIp(text: string, out: Uint8Array): 0 | 4 | 6 {
    const cut = text.indexOf('%')
    const ip = ipLiteralBytes(cut < 0 ? text : text.slice(0, cut))
    if (ip === null || (ip.family === 4 && cut >= 0)) return 0
    out.fill(0, 0, 20)
    out.set(ip.bytes, 0)
    if (ip.family === 4) return 4
    if (cut >= 0) {
      const scope = text.slice(cut + 1)
      const index = /^\d+$/.test(scope) ? Number(scope) : scopedInterfaces().byName.get(scope)
      if (index === undefined || index > 0xffff_ffff) return 0 // names no interface (0: none, as the addon takes it)
      new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(16, index, true)
    }
    return 6
  },
  formatIp(bytes: Uint8Array, family: number, scopeId = 0): string {
    const text = formatIpBytes({ family: family === 4 ? 4 : 6, bytes })
    if (family === 4 || scopeId === 0) return text
    return `${text}%${scopedInterfaces().byIndex.get(scopeId) ?? scopeId}`
  },
}
