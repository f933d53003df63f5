// The payloads of the session protocols' diagnostics channels (the channels themselves are made, with every
// other of volley's, in api/diagnostics.ts). Each names the object that published it; none carries a key,
// a payload or a document. docs/diagnostics.md lists them.
import type { VolleyError } from '../util/errors.ts'
import type { KeySyncRole } from './keysync/role.ts'
import type { MashDevice, MashDeviceSession } from './mash/device.ts'
import type { ResumableSession, SessionEndReason, SessionServer } from './resumable/server.ts'
import type { SyncAgent, SyncResult } from './sync/agent.ts'
import type { SyncManager } from './sync/manager.ts'
import type { SyncSessionInfo } from './sync/sink.ts'
import type { SyncStatus } from './sync/wire.ts'

/** volley:resumable:session-created: a session was created on this gateway (as 'sessionCreated'). */
export interface ResumableSessionCreatedMessage {
  server: SessionServer
  session: ResumableSession
}

/** volley:resumable:session-continued: a session was bound to a new connection (as 'sessionContinued'). */
export interface ResumableSessionContinuedMessage {
  server: SessionServer
  session: ResumableSession
  /** The gateway it was on, when another one. */
  previousGateway: string | undefined
}

/** volley:resumable:session-gone: a session left this gateway (as 'sessionGone'). */
export interface ResumableSessionGoneMessage {
  server: SessionServer
  session: ResumableSession
  /** 'expired' (no heartbeat within its timeout), 'closed' (ended by either side), 'moved' (another gateway took it). */
  reason: SessionEndReason | 'moved'
}

/** volley:keysync:rotated: a key went into production at the agreed instant (as 'rotated', without the key). */
export interface KeySyncRotatedMessage {
  /** The KeySyncMaster or KeySyncSlave (role.role says which). */
  role: KeySyncRole
  sessionId: string
  keyId: string
  /** The agreed instant, epoch ms. */
  rotationAt: number
  /** The keys the rotation rolled (deleted at the next cleanup). */
  rolledKeyIds: string[]
}

/** volley:keysync:failed: a key sync session failed (as 'failed'). */
export interface KeySyncFailedMessage {
  role: KeySyncRole
  sessionId: string
  error: VolleyError
}

/** volley:sync:session-completed: a manager ended an agent's session with the sink's verdict (as 'sessionCompleted'). */
export interface SyncSessionCompletedMessage {
  manager: SyncManager
  /** The session: its agent, module, mode and item count. */
  session: SyncSessionInfo
  /** The EndAck sent: 'ok', 'error' or 'checksum-mismatch'. */
  status: SyncStatus
  error: Error | undefined
}

/** volley:sync:agent-sync-ended: an agent's synchronizeModule() ended, whatever its result (as 'syncEnded'). */
export interface SyncAgentSyncEndedMessage {
  agent: SyncAgent
  mode: 'full' | 'delta'
  result: SyncResult
}

/** volley:mash:session-open: a device serves a new controller connection (as the device's 'session'). */
export interface MashSessionOpenMessage {
  device: MashDevice
  session: MashDeviceSession
}

/** volley:mash:session-close: a device's controller connection ended (as the session's 'close'). */
export interface MashSessionCloseMessage {
  device: MashDevice
  session: MashDeviceSession
  /** Why, when it did not end with a MASH close. */
  error: Error | undefined
}
