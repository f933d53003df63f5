// Generated from native/engine/ and native/sockets/ (layout.h, engine.h, socket_stats.h, released_slabs.h, socket_protocol.h) by scripts/generate-constants.mjs: do not edit.

/** The byte layouts the I/O thread and JavaScript share, checked against the addon's own copy when it loads. */
export const layout = {
  /** Bumped whenever what the native side and JavaScript exchange changes meaning with every size the same (native/engine/layout.h says when it was): an addon of other sources is refused, not misread. */
  revision: 5,
  /** Over IPv6 (over IPv4: 65,507, which sends check per destination). */
  maxDatagramSize: 65527,
  maxBatchSize: 1024,
  /** No protocol packet is larger: a larger datagram reaches a connection protocol as an empty, malformed one. */
  receiveHeadSize: 2048,
  recvHeaderSize: 32,
  sendHeaderSize: 32,
  slabSize: 262144,
  eventWords: 6,
  eventCapacity: 1024,
  maxReceiveSlabs: 256,
  maxSendSlabs: 256,
  statsFields: 13,
  peerRecordHeaderSize: 32,
  releasedSlabsCapacity: 256,
  queuedMessageOverheadBytes: 64,
  /** A server's peer as sends and controls name it: slot + (clients the slot had before, mod 4096) << this. */
  peerSlotBits: 20,
  linkFields: 23,
  peerCounterFields: 9,
  maxPrivateKeys: 4,
} as const


/** Word offsets in the ring of finished send slabs (released_slabs.h). */
export const ReleasedSlabsWord = {
  written: 0,
  wanted: 1,
  ids: 2,
} as const

export const EventType = {
  batch: 1,
  sendDone: 2,
  closed: 3,
  error: 4,
  starved: 5,
} as const

export const Operation = {
  receive: 1,
  send: 2,
} as const

export const RecvFlag = {
  truncated: 1,
} as const

export const PeerRecordKind = {
  payload: 1,
  connect: 2,
  disconnect: 3,
  clientState: 4,
  largePayload: 5,
  drain: 6,
  flushed: 7,
  settings: 8,
} as const

/** A disconnect record's code: netcode's reasons (server.h), then those of a connection its delivery layer ends (socket_protocol.h). */
export const DisconnectCode = {
  timeout: 1,
  disconnected: 2,
  serverDisconnect: 3,
  serverClosed: 4,
  channelsMismatch: 5,
  settingsLate: 6,
  reassemblyStalled: 7,
} as const
export type DisconnectCode = (typeof DisconnectCode)[keyof typeof DisconnectCode]

export const ProtocolControl = {
  disconnectPeer: 1,
  connect: 2,
  disconnect: 3,
  stop: 4,
  watchPeer: 5,
  sendLarge: 6,
  watchFlush: 7,
  rotatePrivateKey: 8,
} as const

/** Where readProtocolStats() has the counters a netcode server and client both keep (netcode_sockets.h). */
export const ProtocolCounter = {
  packetsIn: 0,
  bytesIn: 1,
  packetsOut: 2,
  bytesOut: 3,
  malformed: 4,
  replayed: 5,
  decryptionFailed: 6,
  unknownAddress: 7,
  tooOld: 15,
} as const

/** Where readProtocolStats() has a netcode server's own counters. */
export const ServerCounter = {
  tokenRefused: 8,
  denied: 9,
  connectedClients: 10,
  sendDropped: 11,
  requestsThrottled: 12,
  wrongProtocol: 13,
  tokenExpired: 14,
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

/** Where readProtocolStats() has a netcode client's own counters. */
export const ClientCounter = {
  clientIndex: 8,
  maxClients: 9,
  sendDropped: 10,
} as const

/** engine.readProtocolStats(): the protocol's counters, then the socket's kernel receive drops and send errors, then its network simulator's lost, duplicated, reordered and overflowed datagrams. */
export const protocolStatsFields = 30
/** The protocol's counters that begin readProtocolStats(). */
export const protocolCounterFields = 24
/** The most clients a server may take (maxClients): as many as a peer's tag has slots for. */
export const maxClientsLimit = 1048576
