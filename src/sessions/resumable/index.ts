/**
 * Resumable sessions: sessions that outlive their connections. A client creates a session, then continues it
 * on any later connection, to any gateway that shares the session store. Heartbeats, exactly-once requests,
 * requests from the server, and the stores (in memory, Redis).
 * @module volley/resumable
 */
export {
  SessionClient,
  type HeartbeatDiagnostics,
  type SessionClientEvents,
  type SessionClientOptions,
  type SessionClientState,
  type SessionClientStats,
  type SessionRequestOptions,
} from './client.ts'
export {
  ResumableSession,
  SessionServer,
  heartbeatAgeBucketsMs,
  type ConnectionIdentity,
  type ResumableRequestContext,
  type ServerSessionDiagnostics,
  type SessionEndReason,
  type SessionServerEvents,
  type SessionServerHealth,
  type SessionServerOptions,
} from './server.ts'
export {
  RESUMABLE_CLEANUP_INTERVAL_MS,
  RESUMABLE_CLOCK_SKEW_MS,
  RESUMABLE_CONNECTION_TIMEOUT_MS,
  RESUMABLE_KEEP_ALIVE_INTERVAL_MS,
  RESUMABLE_MAX_KEEP_ALIVE_INTERVAL_MS,
  RESUMABLE_MIN_KEEP_ALIVE_INTERVAL_MS,
  RESUMABLE_REQUEST_TIMEOUT_MS,
  RESUMABLE_SESSION_TIMEOUT_MS,
  RESUMABLE_WARNING_FRACTION,
} from './settings.ts'
export type { ResumableSessionContinuedMessage, ResumableSessionCreatedMessage, ResumableSessionGoneMessage } from '../diagnostics.ts'
export { RedisSessionStore, type RedisClientLike, type RedisSessionStoreOptions } from './redis-store.ts'
export { MemorySessionStore, type ClaimRefusal, type ClaimedSession, type SessionStore, type StoreTick, type StoreTickResult, type StoredSession } from './store.ts'
export {
  RESUMABLE_SIGNATURE,
  RESUMABLE_VERSION,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  malformedReasons,
  resumableMessageTypes,
  type ClientMessage,
  type MalformedMessage,
  type MalformedReason,
  type RejectionReason,
  type ServerMessage,
  type SessionCloseReason,
} from './wire.ts'
