// Mirror of native/engine/layout.h (checked against the addon when it loads). The protocols' own limits come from
// their constants, written once there.
import { queuedMessageOverheadBytes } from '../protocol/delivery/config.ts'
import { maxPrivateKeys, peerCounterFields } from '../protocol/netcode/constants.ts'
export const layout = {
  /**
   * Bumped whenever what the native side and JavaScript exchange changes meaning with every size above the
   * same (2: link field 3 became the RTT's variance; 3: a server's protocol stats grew to 23 counters; 4: to 24,
   * its requests under a previous private key; 5: a key rotation carries its grace's end, not its length), so
   * that an addon of other sources is refused, not misread.
   */
  revision: 5,
  /** Over IPv6 (over IPv4: 65,507, which sends check per destination). */
  maxDatagramSize: 65527,
  maxBatchSize: 1024,
  /** No protocol packet is larger: a larger datagram reaches a connection protocol as an empty, malformed one. */
  receiveHeadSize: 2048,
  recvHeaderSize: 32,
  sendHeaderSize: 32,
  slabSize: 256 * 1024,
  eventWords: 6,
  eventCapacity: 1024,
  maxReceiveSlabs: 256,
  maxSendSlabs: 256,
  statsFields: 13,
  peerRecordHeaderSize: 32,
  releasedSlabsCapacity: 256,
  queuedMessageOverheadBytes,
  /** A server's peer as sends and controls name it: slot + (clients the slot had before, mod 4096) << this (native/sockets/socket_protocol.h). */
  peerSlotBits: 20,
  /** Doubles of link statistics per peer (LinkField below). */
  linkFields: 23,
  peerCounterFields,
  maxPrivateKeys,
} as const
/** What a peer's tag counts its slot's earlier clients in: 2 ** peerSlotBits, computed once (`**` on a property is a call to pow). */
export const peerSlotScale = 2 ** layout.peerSlotBits
/** Mirror of native/engine/released_slabs.h: word offsets in the ring of finished send slabs. */
export const ReleasedSlabsWord = { written: 0, wanted: 1, ids: 2 } as const

export const EventType = { batch: 1, sendDone: 2, closed: 3, error: 4, starved: 5 } as const
export const Operation = { receive: 1, send: 2 } as const
export const RecvFlag = { truncated: 1 } as const
export const PeerRecordKind = { payload: 1, connect: 2, disconnect: 3, clientState: 4, largePayload: 5, drain: 6, flushed: 7, settings: 8 } as const
/**
 * A disconnect record's code: netcode's reasons (native/protocol/netcode/server.h), then the engine's for a connection
 * its delivery layer ends (native/sockets/socket_protocol.h).
 */
export const DisconnectCode = { timeout: 1, disconnected: 2, serverDisconnect: 3, serverClosed: 4, channelsMismatch: 5, settingsLate: 6, reassemblyStalled: 7 } as const
export type DisconnectCode = (typeof DisconnectCode)[keyof typeof DisconnectCode]
export const ProtocolControl = { disconnectPeer: 1, connect: 2, disconnect: 3, stop: 4, watchPeer: 5, sendLarge: 6, watchFlush: 7, rotatePrivateKey: 8 } as const
/** Mirror of native/protocol/delivery/link_stats.h: a connection's link statistics, linkFields doubles per peer. */
export const LinkField = {
  rttSmoothedUs: 0,
  rttMinUs: 1,
  rttMaxUs: 2,
  rttVarianceUs2: 3,
  jitterUs: 4,
  packetsSent: 5,
  packetsLost: 6,
  resends: 7,
  queuedMessages: 8,
  queuedBytes: 9,
  oldestQueuedUs: 10,
  clockOffsetUs: 11,
  clockDrift: 12,
  clockReferenceUs: 13,
  releasedBytes: 14,
  dropped: 15,
  congestionWindow: 16,
  bytesInFlight: 17,
  pathBytesPerSec: 18,
  releasedMessages: 19,
  clockExchanges: 20,
  clockErrorUs: 21,
  clockErrorGrowth: 22,
} as const
export const linkFields = layout.linkFields

/**
 * engine.readProtocolStats(): the protocol's 24 counters, then the socket's kernel receive drops and send
 * errors, then its network simulator's lost, duplicated, reordered and overflowed datagrams.
 */
export const protocolStatsFields = 30
export const ProtocolStat = { tooOld: 15, receiveBufferFull: 24, sendErrors: 25, simulatorLost: 26 } as const
/**
 * A server's counters past the common ones (native/sockets/netcode_sockets.cc, CopyCounters): its handshakes and its
 * reassembly budget.
 */
export const ServerStat = {
  requestsThrottled: 12,
  pendingHandshakes: 16,
  handshakesReplaced: 17,
  handshakesEvicted: 18,
  reassemblyBudget: 19,
  reassemblyUsed: 20,
  reassemblyEvictions: 21,
  reassemblyRefusals: 22,
  /** Requests whose token opened under a private key in its grace, not the current one. */
  previousKeyRequests: 23,
} as const

/**
 * The drops a netcode server's and client's counters (readProtocolStats) have in common, and their send
 * errors; sendBufferFullAt: where that protocol's counters put its send-buffer drops.
 */
export function commonProtocolDrops(c: Float64Array, sendBufferFullAt: number) {
  return {
    drops: {
      malformed: c[4]!,
      replayed: c[5]!,
      tooOld: c[ProtocolStat.tooOld]!,
      decryptionFailed: c[6]!,
      unknownAddress: c[7]!,
      receiveBufferFull: c[ProtocolStat.receiveBufferFull]!,
      sendBufferFull: c[sendBufferFullAt]!,
    },
    errors: { send: c[ProtocolStat.sendErrors]! },
  }
}

export const align8 = (n: number): number => (n + 7) & ~7
