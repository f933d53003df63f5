/// <reference types="node" preserve="true" />
// The declarations use node's types (EventEmitter, Buffer): say so, for readers whose tsconfig lists no types.
/**
 * Volley's core: servers and clients with encrypted connections (netcode.io 1.02 connect tokens) and
 * channels (reliable, unreliable or sequenced messages of any size), a client pool, a datagram socket, and
 * the error classes. A native I/O thread moves the datagrams in batches.
 * @module volley
 */
export {
  DatagramSocket,
  createDatagramSocket,
  type Datagram,
  type DatagramSocketEvents,
  type DatagramSocketOptions,
  type DatagramSocketStats,
  type RemoteInfo,
  type SocketType,
} from './api/datagram-socket.ts'
export type { AddressInfo } from './util/ip.ts'
export {
  VolleyError,
  VolleyRangeError,
  VolleyTypeError,
  isVolleyError,
  type ConnectErrorCode,
  type SystemError,
  type VolleyErrorCode,
  type VolleyErrorOptions,
  type VolleyRangeErrorCode,
  type VolleyStateErrorCode,
  type VolleyTypeErrorCode,
} from './util/errors.ts'
export { engineInUse, nativeInfo, type EngineInUse, type NativeInfo } from './api/native-info.ts'
export {
  connectTokenFromBase64,
  connectTokenToBase64,
  generateConnectToken,
  generateKey,
  readConnectToken,
  type ConnectToken,
  type ConnectTokenOptions,
} from './protocol/netcode/connect-token.ts'
export { formatServerAddress, type ServerAddress } from './protocol/netcode/server-address.ts'
export { Server, type DisconnectReason, type ServerEvents, type RotatePrivateKeyOptions, type ServerOptions, type ServerState, type ServerStats } from './api/server.ts'
export { Client, ConnectError, type ClientDisconnectReason, type ClientEvents, type ClientOptions, type ClientState, type ClientStats } from './api/client.ts'
export { Peer, type PeerStats } from './api/peer.ts'
export type { PeerDrops } from './engine/peer-records.ts'
export type { NetworkSimulatorOptions, SimulatedNetworkStats } from './api/network-simulator.ts'
export type { ChannelMode, ChannelOptions, DeliveryOptions, LinkStats, RemoteChannels, SendOptions } from './api/channels.ts'
export { ClientPool, type ByErrorCode, type ClientPoolStats, type ConnectTokenLike, type ConnectTokenSource } from './api/client-pool.ts'
export type { VolleyLogger } from './util/logger.ts'
export type {
  ClientConnectMessage,
  ClientDisconnectMessage,
  PeerConnectMessage,
  PeerDisconnectMessage,
  ServerCloseMessage,
  ServerDrops,
  ServerDropsMessage,
  ServerListeningMessage,
} from './api/diagnostics.ts'
