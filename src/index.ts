/// <reference types="node" preserve="true" />
// The declarations use node's types (EventEmitter, Buffer): say so, for readers whose tsconfig lists no types.
export {
  DatagramSocket,
  createDatagramSocket,
  type Datagram,
  type DatagramSocketEvents,
  type DatagramSocketOptions,
  type DatagramSocketStats,
  type RemoteInfo,
  type SocketType,
} from './datagram-socket.ts'
export type { AddressInfo } from './address.ts'
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
} from './errors.ts'
export { engineInUse, nativeInfo, type EngineInUse, type NativeInfo } from './native-info.ts'
export {
  connectTokenFromBase64,
  connectTokenToBase64,
  generateConnectToken,
  generateKey,
  readConnectToken,
  type ConnectToken,
  type ConnectTokenOptions,
} from './netcode/connect-token.ts'
export { formatServerAddress, type ServerAddress } from './netcode/server-address.ts'
export { Server, type DisconnectReason, type ServerEvents, type RotatePrivateKeyOptions, type ServerOptions, type ServerState, type ServerStats } from './server.ts'
export { Client, ConnectError, type ClientDisconnectReason, type ClientEvents, type ClientOptions, type ClientState, type ClientStats } from './client.ts'
export { Peer, type PeerDrops, type PeerStats } from './peer.ts'
export type { NetworkSimulatorOptions, SimulatedNetworkStats } from './network-simulator.ts'
export type { ChannelMode, ChannelOptions, DeliveryOptions, LinkStats, RemoteChannels, SendOptions } from './delivery.ts'
export { ClientPool, type ByErrorCode, type ClientPoolStats, type ConnectTokenLike, type ConnectTokenSource } from './client-pool.ts'
