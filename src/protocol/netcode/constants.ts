// Generated from native/protocol/netcode/ (constants.h, private_keys.h, server.h, client.h) by scripts/generate-constants.mjs: do not edit.

/** "NETCODE 1.02" with its terminating zero. */
export const versionInfo = new Uint8Array([78, 69, 84, 67, 79, 68, 69, 32, 49, 46, 48, 50, 0])

/** netcode 1.02's sizes in bytes (STANDARD.md of mas-bandwidth/netcode). */
export const sizes = {
  versionInfo: 13,
  connectToken: 2048,
  privateConnectToken: 1024,
  connectTokenNonce: 24,
  challengeToken: 300,
  key: 32,
  userData: 256,
  mac: 16,
  /** 1 prefix + 13 version + 8 protocol id + 8 expire timestamp + 24 nonce + 1024 private token. */
  connectionRequest: 1078,
  /** challenge token sequence + encrypted challenge token. */
  challengeBody: 308,
  keepAliveBody: 8,
  maxPayload: 1200,
  minEncryptedPacket: 18,
  maxServerAddresses: 32,
  replayBuffer: 256,
} as const

export const PacketType = {
  connectionRequest: 0,
  connectionDenied: 1,
  connectionChallenge: 2,
  connectionResponse: 3,
  keepAlive: 4,
  payload: 5,
  disconnect: 6,
} as const
export type PacketType = (typeof PacketType)[keyof typeof PacketType]

export const AddressType = {
  ipv4: 1,
  ipv6: 2,
} as const

/** Private keys a server accepts at once, the current one included. */
export const maxPrivateKeys = 4

/** A server's client slot's counters: their indices in its peerCounterFields doubles (server.h's PeerCounters). */
export const PeerCounterField = {
  packetsIn: 0,
  bytesIn: 1,
  packetsOut: 2,
  bytesOut: 3,
  clients: 4,
  malformed: 5,
  replayed: 6,
  tooOld: 7,
  decryptionFailed: 8,
} as const
/** Doubles of counters per client slot of a server: packets, bytes, drops (PeerCounterField). */
export const peerCounterFields = 9

/** The connection defaults of Server and Client (and of volley serve and load): the cores' own. */
export const netcodeDefaults = {
  /** Connection requests and responses, 10 Hz. */
  requestIntervalMs: 100,
  /** A keep-alive when nothing else was sent for this long: 10 Hz. */
  keepAliveIntervalMs: 100,
  /** Between the redundant disconnect packets of a close. */
  disconnectIntervalMs: 100,
  disconnectPackets: 10,
  maxClients: 256,
} as const

/** The states of the standard, as the native engine's records number them. */
export const clientStateCodes = {
  'connect-token-expired': -6,
  'invalid-connect-token': -5,
  'connection-timed-out': -4,
  'connection-response-timed-out': -3,
  'connection-request-timed-out': -2,
  'connection-denied': -1,
  disconnected: 0,
  'sending-connection-request': 1,
  'sending-connection-response': 2,
  connected: 3,
} as const
export type ClientCoreState = keyof typeof clientStateCodes
