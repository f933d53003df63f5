// Mirror of native/layout.h (checked against the addon when it loads).
export const layout = {
  maxDatagramSize: 65507,
  maxBatchSize: 1024,
  recvHeaderSize: 24,
  sendHeaderSize: 32,
  slabSize: 256 * 1024,
  eventWords: 6,
  eventCapacity: 1024,
  maxReceiveSlabs: 256,
  maxSendSlabs: 256,
  statsFields: 11,
  peerRecordHeaderSize: 32,
} as const

export const EventType = { batch: 1, sendDone: 2, closed: 3, error: 4, starved: 5 } as const
export const Operation = { receive: 1, send: 2 } as const
export const RecvFlag = { truncated: 1 } as const
export const PeerRecordKind = { payload: 1, connect: 2, disconnect: 3, clientState: 4 } as const
export const ProtocolControl = { disconnectPeer: 1, connect: 2, disconnect: 3, stop: 4 } as const
export const protocolStatsFields = 16

export const align8 = (n: number): number => (n + 7) & ~7
