// The byte layouts the I/O thread and JavaScript share: generated from the C++ headers (native-layout.ts), and
// what JavaScript derives from them.
import { layout, protocolCounterFields } from './native-layout.ts'
export * from './native-layout.ts'
export { LinkField, linkFields } from '../protocol/delivery/config.ts'

/** What a peer's tag counts its slot's earlier clients in: 2 ** peerSlotBits, computed once (`**` on a property is a call to pow). */
export const peerSlotScale = 2 ** layout.peerSlotBits

/**
 * Where readProtocolStats() has the counters JavaScript reads by name: tooOld is the protocol's own (its place in
 * native/sockets/netcode_sockets.cc's CopyCounters), the rest follow the protocol's counters.
 */
export const ProtocolStat = { tooOld: 15, receiveBufferFull: protocolCounterFields, sendErrors: protocolCounterFields + 1, simulatorLost: protocolCounterFields + 2 } as const
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
