// The byte layouts the I/O thread and JavaScript share: generated from the C++ headers (native-layout.ts), and
// what JavaScript derives from them.
import { ProtocolCounter, layout, protocolCounterFields } from './native-layout.ts'
export * from './native-layout.ts'
export { LinkField, linkFields } from '../protocol/delivery/config.ts'

/** What a peer's tag counts its slot's earlier clients in: 2 ** peerSlotBits, computed once (`**` on a property is a call to pow). */
export const peerSlotScale = 2 ** layout.peerSlotBits

/** Where readProtocolStats() has what the engine adds after the protocol's counters. */
export const ProtocolStat = { receiveBufferFull: protocolCounterFields, sendErrors: protocolCounterFields + 1, simulatorLost: protocolCounterFields + 2 } as const

/**
 * The drops a netcode server's and client's counters (readProtocolStats) have in common, and their send
 * errors; sendBufferFullAt: where that protocol's counters put its send-buffer drops.
 */
export function commonProtocolDrops(c: Float64Array, sendBufferFullAt: number) {
  return {
    drops: {
      malformed: c[ProtocolCounter.malformed]!,
      replayed: c[ProtocolCounter.replayed]!,
      tooOld: c[ProtocolCounter.tooOld]!,
      decryptionFailed: c[ProtocolCounter.decryptionFailed]!,
      unknownAddress: c[ProtocolCounter.unknownAddress]!,
      receiveBufferFull: c[ProtocolStat.receiveBufferFull]!,
      sendBufferFull: c[sendBufferFullAt]!,
    },
    errors: { send: c[ProtocolStat.sendErrors]! },
  }
}

export const align8 = (n: number): number => (n + 7) & ~7
