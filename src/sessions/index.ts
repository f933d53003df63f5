/**
 * The layer every session protocol runs on: transports (a Volley reliable channel, a length-framed byte
 * stream, an in-memory pair), a clock and a shared timer queue, and reconnection with backoff.
 * @module volley/sessions
 */
export { Backoff, type BackoffOptions } from './backoff.ts'
export {
  ConnectionManager,
  type ConnectAttempt,
  type ConnectionManagerEvents,
  type ConnectionManagerOptions,
  type ConnectionState,
  type ManagedConnection,
} from './connection-manager.ts'
export { StreamTransport, type StreamTransportOptions } from './stream-transport.ts'
export { FakeClock, Timer, TimerQueue, sessionTimers, type Clock, type Scheduler } from './timers.ts'
export { MemoryTransport, TransportBase, type MemoryTransportOptions, type SessionTransport, type SessionTransportEvents, type TransportBaseOptions } from './transport.ts'
export {
  ClientTransport,
  PeerTransport,
  PeerTransports,
  datagramMessageBytes,
  serveSessions,
  type OnPeerTransport,
  type SessionChannelMode,
  type VolleyTransportOptions,
} from './volley-transport.ts'
