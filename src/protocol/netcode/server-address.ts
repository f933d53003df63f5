// Server addresses as connect tokens carry them: "a.b.c.d:port" or "[v6]:port" in text; on the wire a
// type byte (1 = IPv4, 2 = IPv6), the address (4 bytes, or 8 little-endian 16-bit groups) and the port.
import { isUint8Array } from 'node:util/types'
import { VolleyTypeError, describe } from '../../util/errors.ts'
import { checkAttached } from '../../util/bytes.ts'
import { AddressType } from './constants.ts'
import { formatIpBytes, ipLiteralBytes, isIpv4Mapped } from '../../util/ip.ts'
import type { Reader, Writer } from './wire.ts'
import { WireError } from './wire.ts'

/** A server address as a connect token holds it (readConnectToken()'s serverAddresses). */
export interface ServerAddress {
  family: 4 | 6
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array
  port: number
}

/** 'a.b.c.d:port' or '[ipv6]:port' split, the port not yet range-checked; null when the text has neither shape. */
function splitAddressText(text: string): { host: string; bracketed: boolean; port: number } | null {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text)
  if (match === null) return null
  return { host: match[1] ?? match[2] ?? '', bracketed: match[1] !== undefined, port: Number(match[3]) }
}

/**
 * The address of a host and port that splitAddressText gave, or null when the host is not an IP literal of
 * its shape (IPv6 in brackets, IPv4 without), or has a zone ('%eth0'), which a token cannot carry.
 */
function addressOf(host: string, bracketed: boolean, port: number): ServerAddress | null {
  const ip = ipLiteralBytes(host)
  return ip !== null && (ip.family === 6) === bracketed ? { ...ip, port } : null
}

/**
 * Parses 'a.b.c.d:port' or '[ipv6]:port'; `name` names the option it came from in errors; lowestPort: 0 where
 * port 0 means "any free port".
 */
export function parseServerAddress(text: unknown, name?: string, lowestPort: 0 | 1 = 1): ServerAddress {
  const from = name === undefined ? '' : ` (the "${name}" option)`
  if (typeof text !== 'string') {
    throw new VolleyTypeError(
      'ERR_INVALID_ARG_TYPE',
      `A server address${from} must be a string like '10.0.0.1:40000' or '[::1]:40000'. Received ${describe(text)}`,
    )
  }
  const parts = splitAddressText(text)
  if (parts === null || !(parts.port >= lowestPort && parts.port <= 65535)) {
    throw new VolleyTypeError(
      'ERR_INVALID_ARG_VALUE',
      `Server address '${text}'${from} does not parse: expected 'a.b.c.d:port' or '[ipv6]:port' with a port from ${lowestPort} to 65535`,
    )
  }
  const address = addressOf(parts.host, parts.bracketed, parts.port)
  if (address !== null) return address
  throw new VolleyTypeError(
    'ERR_INVALID_ARG_VALUE',
    `Server address '${text}'${from} does not parse: the host must be an IPv4 literal, or an IPv6 literal in brackets${zoneRefused(text)}`,
  )
}

/** Why an address with an IPv6 zone ('%eth0') is refused, for an error's message; '' for one without. */
export function zoneRefused(text: string): string {
  return text.includes('%') ? " with no zone ('%eth0': netcode's addresses carry none)" : ''
}

/**
 * A datagram's source in the same text form ('a.b.c.d:port' or '[ipv6]:port', port 0 allowed), as the
 * sans-IO cores take it; null when it does not parse (never thrown: it comes from the network layer).
 */
export function readDatagramSource(text: string): ServerAddress | null {
  const parts = splitAddressText(text)
  return parts === null || parts.port > 65535 ? null : addressOf(parts.host, parts.bracketed, parts.port)
}

/** ::ffff:a.b.c.d is a.b.c.d: a token may list either, and a dual-stack socket reports the second form. */
export function sameServerAddress(a: ServerAddress, b: ServerAddress): boolean {
  if (a.port !== b.port) return false
  const left = a.family === b.family ? a.bytes : ipv4Of(a)
  const right = a.family === b.family ? b.bytes : ipv4Of(b)
  if (left === undefined || right === undefined || left.byteLength !== right.byteLength) return false
  for (let i = 0; i < left.byteLength; i++) if (left[i] !== right[i]) return false
  return true
}

/** The 4 bytes of an IPv4 address, unmapped from ::ffff:a.b.c.d; undefined for any other IPv6 address. */
function ipv4Of(address: ServerAddress): Uint8Array | undefined {
  if (address.family === 4) return address.bytes
  return isIpv4Mapped(address.bytes) ? address.bytes.subarray(12) : undefined
}

/**
 * parseServerAddress for an address whose port 0 stands for one the socket gets when it binds (a Server's
 * address or publicAddress).
 */
export function parseServerAddressPortZero(text: string, name?: string): ServerAddress {
  return parseServerAddress(text, name, 0)
}

/**
 * Why a client could not send to this address, or undefined when it can: the unspecified address (a
 * wildcard to bind to, not a destination), the 0.0.0.0/8 block, the limited broadcast, or a multicast
 * group; IPv4-mapped IPv6 forms alike. A connect token listing one would only make clients time out there.
 */
export function unreachableServerAddress(address: ServerAddress): string | undefined {
  const { bytes } = address
  const v4 = ipv4Of(address)
  if (v4 !== undefined) {
    if (v4[0] === 0) return v4.every((byte) => byte === 0) ? 'the unspecified address' : 'an address in 0.0.0.0/8'
    if (v4.every((byte) => byte === 255)) return 'the broadcast address'
    if (v4[0]! >= 224 && v4[0]! <= 239) return 'a multicast address'
    return undefined
  }
  if (bytes.every((byte) => byte === 0)) return 'the unspecified address'
  if (bytes[0] === 0xff) return 'a multicast address'
  return undefined
}

/** parseServerAddress, for an address that clients send to (a token's, a server's public one): refuses those unreachableServerAddress names. */
export function parseReachableServerAddress(text: unknown, name: string): ServerAddress {
  const address = parseServerAddress(text, name)
  const unreachable = unreachableServerAddress(address)
  if (unreachable !== undefined) {
    throw new VolleyTypeError(
      'ERR_INVALID_ARG_VALUE',
      `Server address '${text as string}' (the "${name}" option) is ${unreachable}, which a client cannot send to: give the address clients reach the server at`,
    )
  }
  return address
}

/** A ServerAddress as text: 'a.b.c.d:port' or '[ipv6]:port'. Throws for one that is not a valid address. */
export function formatServerAddress(address: ServerAddress): string {
  const shape = 'A server address must be { family: 4 | 6, bytes: a Uint8Array of 4 or 16 bytes, port: 0 to 65535 }'
  if (typeof address !== 'object' || address === null) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `${shape}. Received ${describe(address)}`)
  }
  if (isUint8Array(address.bytes)) checkAttached(address.bytes, 'The "bytes" field of the server address')
  const valid =
    (address.family === 4 || address.family === 6) &&
    isUint8Array(address.bytes) &&
    address.bytes.byteLength === (address.family === 4 ? 4 : 16) &&
    Number.isInteger(address.port) &&
    address.port >= 0 &&
    address.port <= 65535
  if (!valid) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `${shape}. Received ${describe(address)}`)
  }
  return address.family === 4 ? `${formatIpBytes(address)}:${address.port}` : `[${formatIpBytes(address)}]:${address.port}`
}

export function writeServerAddress(writer: Writer, address: ServerAddress): void {
  if (address.family === 4) {
    writer.u8(AddressType.ipv4).raw(address.bytes)
  } else {
    writer.u8(AddressType.ipv6)
    for (let i = 0; i < 8; i++) writer.u16((address.bytes[2 * i]! << 8) | address.bytes[2 * i + 1]!)
  }
  writer.u16(address.port)
}

/**
 * Reads one address as the reference does: port 0 is taken (a client sending there fails and moves on to
 * the token's next address), though generateConnectToken never writes it.
 */
export function readServerAddress(reader: Reader): ServerAddress {
  const type = reader.u8()
  if (type === AddressType.ipv4) {
    const bytes = reader.raw(4)
    return { family: 4, bytes, port: reader.u16() }
  }
  if (type === AddressType.ipv6) {
    const bytes = new Uint8Array(16)
    for (let i = 0; i < 8; i++) {
      const group = reader.u16()
      bytes[2 * i] = group >> 8
      bytes[2 * i + 1] = group & 0xff
    }
    return { family: 6, bytes, port: reader.u16() }
  }
  throw new WireError(`address type ${type} is neither 1 (IPv4) nor 2 (IPv6)`)
}

