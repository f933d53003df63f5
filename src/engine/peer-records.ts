// Records a protocol socket's engine hands JavaScript (native/sockets/socket_protocol.h):
//   u32 length | u8 kind | u8 code | u16 port | u32 peer | u8 family | u8[3] | u8[16] address | data
import type { SlabView } from './engine.ts'
import { align8, layout } from './layout.ts'
import { PeerCounterField } from '../protocol/netcode/constants.ts'
import { surfaceLater } from '../util/errors.ts'
import { type AddressInfo, formatIpBytes, formatIpv4 } from '../util/ip.ts'

/** A connection's packets and bytes in and out. */
export interface PacketCounts {
  packetsIn: number
  bytesIn: number
  packetsOut: number
  bytesOut: number
}

/**
 * Packets from the client's address that its connection refused, by cause: malformed (or of a type a server
 * never takes), replayed (seen already within the replay window), tooOld (older than that window),
 * decryptionFailed (not sealed with the connection's key). What a spoofer of the address sends counts too;
 * packets of the connection request's type (the server's to handle, before it looks for a connection) do not.
 */
export interface PeerDrops {
  malformed: number
  replayed: number
  tooOld: number
  decryptionFailed: number
}

/**
 * Calls visit(kind, code, peer, dataOffset, dataLength, recordOffset) for each record of a batch. A plain
 * loop, not an iterator: this runs once per received message. When visit throws (a user's event handler
 * did), the other records of the batch are still visited (connects, messages, disconnects of other peers
 * must not be lost), and each error surfaces as an uncaught exception once the batch is done.
 */
export function forEachPeerRecord(
  slab: SlabView,
  start: number,
  count: number,
  visit: (kind: number, code: number, peer: number, at: number, length: number, record: number) => void,
): void {
  let at = start
  for (let i = 0; i < count; i++) {
    if (i > 0) slab.ensureAttached() // the handler before may have detached the slab's buffer
    const { u8, u32 } = slab
    const length = u32[at >>> 2]!
    try {
      visit(u8[at + 4]!, u8[at + 5]!, u32[(at + 8) >>> 2]!, at + layout.peerRecordHeaderSize, length, at)
    } catch (error) {
      surfaceLater(error)
    }
    at += align8(layout.peerRecordHeaderSize + length)
  }
}

/** The address of a record, as "a.b.c.d" or an IPv6 literal, and its port. */
export function recordAddress(slab: SlabView, record: number): AddressInfo {
  const port = slab.u16[(record + 6) >>> 1]!
  if (slab.u8[record + 12] === 4) return { address: formatIpv4(slab.u8, record + 16), port, family: 'IPv4' }
  return { address: formatIpBytes({ family: 6, bytes: slab.u8.subarray(record + 16, record + 32) }), port, family: 'IPv6' }
}

/**
 * A disconnect record's data: the peer's last packet and byte counters and, with channels, its link row
 * (native/sockets/netcode_sockets.cc: WriteFinalReadings), copied out of the slab, which the engine reuses after
 * the batch. A next client may have taken the slot, and reset both, before JavaScript reads the record.
 */
export function copyFinalReadings(slab: SlabView, at: number, length: number): Float64Array | null {
  if (length < finalCounters * 8) return null // (an addon built before disconnect records carried them)
  // Doubles in the machine's order, as the engine copies them; the data of a record starts 8-aligned.
  return new Float64Array(slab.buffer, at, length / 8).slice()
}

/** What copyFinalReadings copied, as the statistics take it. */
export function decodeFinalReadings(doubles: Float64Array): { counters: PacketCounts; drops: PeerDrops; link: Float64Array | null } {
  const counters = { packetsIn: doubles[0]!, bytesIn: doubles[1]!, packetsOut: doubles[2]!, bytesOut: doubles[3]! }
  return { counters, drops: readPeerDrops(doubles, packetCounts), link: doubles.length > finalCounters ? doubles.subarray(finalCounters) : null }
}

/** Writes what copyFinalReadings copies (the fallback engine's disconnect records); the bytes it takes: finalReadingsBytes. */
export function writeFinalReadings(view: DataView, at: number, peerCounters: Float64Array, peer: number, links: Float64Array | null): void {
  const out = new Float64Array(view.buffer, view.byteOffset + at, finalReadingsBytes(links) / 8)
  const row = peer * layout.peerCounterFields
  out[0] = peerCounters[row + PeerCounterField.packetsIn]!
  out[1] = peerCounters[row + PeerCounterField.bytesIn]!
  out[2] = peerCounters[row + PeerCounterField.packetsOut]!
  out[3] = peerCounters[row + PeerCounterField.bytesOut]!
  const firstDrop = row + PeerCounterField.malformed
  out.set(peerCounters.subarray(firstDrop, firstDrop + peerDropCount), packetCounts)
  if (links !== null) out.set(links.subarray(peer * layout.linkFields, (peer + 1) * layout.linkFields), finalCounters)
}

export function finalReadingsBytes(links: Float64Array | null): number {
  return (finalCounters + (links === null ? 0 : layout.linkFields)) * 8
}

/**
 * A peer's drops from `peerDropCount` doubles at `first`, in PeerCounterField's order (malformed, replayed,
 * tooOld, decryptionFailed): its slot's live counters, or a disconnect record's.
 */
export function readPeerDrops(values: Float64Array, first: number): PeerDrops {
  return { malformed: values[first]!, replayed: values[first + 1]!, tooOld: values[first + 2]!, decryptionFailed: values[first + 3]! }
}

const packetCounts = 4
const peerDropCount = 4
/** The counters a disconnect record begins with (native/sockets/netcode_sockets.h: kFinalReadingsCounters): PacketCounts', then PeerDrops'. */
const finalCounters = packetCounts + peerDropCount
