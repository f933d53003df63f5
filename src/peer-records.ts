// Records a protocol socket's engine hands JavaScript (native/socket_protocol.h):
//   u32 length | u8 kind | u8 code | u16 port | u32 peer | u8 family | u8[3] | u8[16] address | data
import type { SlabView } from './engine/engine.ts'
import { align8, layout } from './engine/layout.ts'
import { surfaceLater } from './errors.ts'
import { type AddressInfo, formatIpBytes } from './address.ts'

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
  const family = slab.u8[record + 12] === 4 ? 4 : 6
  return { address: formatIpBytes({ family, bytes: slab.u8.subarray(record + 16, record + 32) }), port, family: family === 4 ? 'IPv4' : 'IPv6' }
}
