// An independent TypeScript codec of what native/protocol/netcode/packet.cc reads and writes, for tests and
// benchmarks to craft and check packets with (never shipped: the engines use the C++ one).
// netcode 1.02 packets: the plaintext connection request, and the encrypted packets (denied, challenge,
// response, keep-alive, payload, disconnect) with their prefix byte, variable-length sequence and MAC.
// Readers follow the standard's steps in order and say why a packet was dropped; they never throw on
// bytes from the network.
import { PacketType, sizes, versionInfo } from '../../../src/protocol/netcode/constants.ts'
import { type ConnectToken, type PrivateConnectToken, openPrivateConnectToken } from '../../../src/protocol/netcode/connect-token.ts'
import type { TokenKeys } from '../../../src/protocol/netcode/private-keys.ts'
import type { ReplayProtection } from './replay-protection.ts'
import type { Sodium } from '../../../src/protocol/netcode/sodium.ts'
import { Reader, Writer, equalBytes, sequenceNonce } from '../../../src/protocol/netcode/wire.ts'

export type DropReason = 'malformed' | 'unexpected-type' | 'replayed' | 'too-old' | 'decryption-failed' | 'wrong-protocol' | 'expired' | 'token-refused'

export interface Packet {
  type: PacketType
  sequence: bigint
  body: Uint8Array
}

export type ReadResult<T> = { ok: true; value: T } | { ok: false; reason: DropReason }

const dropped = <T>(reason: DropReason): ReadResult<T> => ({ ok: false, reason })

/** Bytes the sequence takes on the wire: high zero bytes are left out, at least one is written. */
export function sequenceBytes(sequence: bigint): number {
  let bytes = 1
  while (bytes < 8 && sequence >> BigInt(8 * bytes) !== 0n) bytes++
  return bytes
}

export function writeConnectionRequest(token: ConnectToken): Uint8Array {
  const packet = new Uint8Array(sizes.connectionRequest)
  new Writer(packet)
    .u8(PacketType.connectionRequest)
    .raw(versionInfo)
    .u64(token.protocolId)
    .u64(token.expireTimestamp)
    .raw(token.nonce)
    .raw(token.privateData)
  return packet
}

export interface ConnectionRequest {
  expireTimestamp: bigint
  /** The sealed private token: its MAC (last 16 bytes) identifies the token in the reuse history. */
  sealedToken: Uint8Array
  token: PrivateConnectToken
  /** The private key that opened the token: 0 the current one, else one in its grace (PrivateKeys). */
  keyIndex: number
}

/**
 * The server's first checks of a connection request, in the standard's order: size, version, protocol
 * id, expiry, decryption (under each key in order, until one opens the token), parse. (Own address,
 * duplicates and reuse need server state: the server does those next.)
 */
export function readConnectionRequest(
  sodium: Sodium,
  packet: Uint8Array,
  expected: { protocolId: bigint; privateKey: Uint8Array | TokenKeys; nowSeconds: bigint },
): ReadResult<ConnectionRequest> {
  if (packet.byteLength !== sizes.connectionRequest || packet[0] !== PacketType.connectionRequest) return dropped('malformed')
  const reader = new Reader(packet)
  reader.u8()
  if (!equalBytes(reader.raw(sizes.versionInfo), versionInfo)) return dropped('wrong-protocol') // another version
  if (reader.u64() !== expected.protocolId) return dropped('wrong-protocol')
  const expireTimestamp = reader.u64()
  if (expireTimestamp <= expected.nowSeconds) return dropped('expired')
  const nonce = reader.raw(sizes.connectTokenNonce)
  const sealedToken = reader.raw(sizes.privateConnectToken)
  // A token names no key: the current one first (nearly every token's), then those in their grace. A token none
  // opens costs a decryption per key (its MAC fails under each).
  const keys = expected.privateKey
  if (keys instanceof Uint8Array) {
    const token = openPrivateConnectToken(sodium, sealedToken, expected.protocolId, expireTimestamp, nonce, keys)
    return token === null ? dropped('token-refused') : { ok: true, value: { expireTimestamp, sealedToken, token, keyIndex: 0 } }
  }
  for (let keyIndex = 0; keyIndex < keys.count; keyIndex++) {
    const token = openPrivateConnectToken(sodium, sealedToken, expected.protocolId, expireTimestamp, nonce, keys.key(keyIndex))
    if (token !== null) return { ok: true, value: { expireTimestamp, sealedToken, token, keyIndex } }
  }
  return dropped('token-refused')
}

// The associated data of a protocol id's packets, one per prefix byte, made once: every packet sealed or
// opened needs one, and libsodium copies it in, so the same array serves them all.
let associatedFor: { protocolId: bigint; byPrefix: (Uint8Array | undefined)[] } | undefined

function associatedData(protocolId: bigint, prefix: number): Uint8Array {
  if (associatedFor?.protocolId !== protocolId) associatedFor = { protocolId, byPrefix: [] }
  let data = associatedFor.byPrefix[prefix]
  if (data === undefined) {
    data = new Uint8Array(sizes.versionInfo + 9)
    new Writer(data).raw(versionInfo).u64(protocolId).u8(prefix)
    associatedFor.byPrefix[prefix] = data
  }
  return data
}

export function encryptPacket(sodium: Sodium, packet: Packet, protocolId: bigint, key: Uint8Array): Uint8Array {
  const count = sequenceBytes(packet.sequence)
  const prefix = (count << 4) | packet.type
  const ciphertext = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
    packet.body,
    associatedData(protocolId, prefix),
    null,
    sequenceNonce(packet.sequence),
    key,
  )
  const out = new Uint8Array(1 + count + ciphertext.byteLength)
  out[0] = prefix
  for (let i = 0; i < count; i++) out[1 + i] = Number((packet.sequence >> BigInt(8 * i)) & 0xffn)
  out.set(ciphertext, 1 + count)
  return out
}

/** Plaintext sizes per packet type (a payload is 1 to 1200 bytes). */
function bodySizeFits(type: number, size: number): boolean {
  switch (type) {
    case PacketType.connectionDenied:
    case PacketType.disconnect:
      return size === 0
    case PacketType.connectionChallenge:
    case PacketType.connectionResponse:
      return size === sizes.challengeBody
    case PacketType.keepAlive:
      return size === sizes.keepAliveBody
    case PacketType.payload:
      return size >= 1 && size <= sizes.maxPayload
    default:
      return false
  }
}

const replayProtected = new Set<number>([PacketType.keepAlive, PacketType.payload, PacketType.disconnect])

/**
 * The checks on an encrypted packet that need no key, in the order reading makes them (prefix, sequence
 * bytes, body size for its type): the reason it would be dropped, or undefined when it has the shape of a
 * packet of a type in `accept`.
 */
export function encryptedPacketShape(packet: Uint8Array, accept: ReadonlySet<number>): DropReason | undefined {
  if (packet.byteLength < sizes.minEncryptedPacket) return 'malformed'
  const prefix = packet[0]!
  const type = prefix & 0x0f
  if (type >= 7 || type === PacketType.connectionRequest) return 'malformed'
  if (!accept.has(type)) return 'unexpected-type'
  const count = prefix >> 4
  if (count < 1 || count > 8) return 'malformed'
  if (packet.byteLength < 1 + count + sizes.mac) return 'malformed'
  if (!bodySizeFits(type, packet.byteLength - 1 - count - sizes.mac)) return 'malformed'
  return undefined
}

/**
 * Reads an encrypted packet. `accept` lists the types this side takes (a server ignores challenges, a
 * client requests and responses); `replay` is the connection's window, checked before and advanced after
 * decryption for keep-alive, payload and disconnect packets.
 */
export function readEncryptedPacket(
  sodium: Sodium,
  packet: Uint8Array,
  expected: { protocolId: bigint; key: Uint8Array; accept: ReadonlySet<number>; replay?: ReplayProtection | undefined },
): ReadResult<Packet> {
  const shape = encryptedPacketShape(packet, expected.accept)
  if (shape !== undefined) return dropped(shape)
  const prefix = packet[0]!
  const type = prefix & 0x0f
  const count = prefix >> 4
  let sequence = 0n
  for (let i = 0; i < count; i++) sequence |= BigInt(packet[1 + i]!) << BigInt(8 * i)
  const encrypted = packet.subarray(1 + count)
  const replay = replayProtected.has(type) ? expected.replay : undefined
  if (replay?.olderThanWindow(sequence)) return dropped('too-old')
  if (replay?.seenInWindow(sequence)) return dropped('replayed')
  let body: Uint8Array
  try {
    body = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, encrypted, associatedData(expected.protocolId, prefix), sequenceNonce(sequence), expected.key)
  } catch {
    return dropped('decryption-failed')
  }
  replay?.advance(sequence)
  return { ok: true, value: { type: type as PacketType, sequence, body } }
}
