/**
 * Agent sync: agents keep a manager's copy of their inventories current, in numbered sessions that resend
 * only what was lost. The wire format is FlatBuffers, compatible with Wazuh's inventorySync schema.
 * @module volley/sync
 */
export {
  SyncAgent,
  type AgentMetadata,
  type SyncAgentDropReason,
  type SyncAgentEvents,
  type SyncAgentOptions,
  type SyncAgentStats,
  type SyncFailureReason,
  type SyncResult,
} from './agent.ts'
export { GapSet, type Observation } from './gap-set.ts'
export {
  SyncManager,
  type SyncManagerDropReason,
  type SyncManagerDrops,
  type SyncManagerEvents,
  type SyncManagerOptions,
  type SyncManagerStats,
  type SyncSessionEvent,
} from './manager.ts'
export { SyncQueue, type DifferenceOperation, type MarkedForSync, type SyncQueueItem } from './queue.ts'
export {
  SYNC_CHECKSUM_ATTEMPTS,
  SYNC_CHECKSUM_RETRY_MS,
  SYNC_END_DELAY_MS,
  SYNC_END_REPEAT_MS,
  SYNC_FAILURE_STREAK_WARNING,
  SYNC_IDLE_TIMEOUT_MS,
  SYNC_MAX_BATCH_BYTES,
  SYNC_NO_SESSION,
  SYNC_RESPONSE_TIMEOUT_MS,
  SYNC_RETRIES,
  SYNC_SWEEP_INTERVAL_MS,
} from './settings.ts'
export type { SyncAgentSyncEndedMessage, SyncSessionCompletedMessage } from '../diagnostics.ts'
export { SqliteSyncSink } from './sqlite-sink.ts'
export {
  MemorySyncSink,
  applyItem,
  documentHash,
  inventoryChecksum,
  type AgentDocuments,
  type DocumentTarget,
  type SyncDocument,
  type SyncItem,
  type SyncSessionInfo,
  type SyncSink,
} from './sink.ts'
export {
  SyncEncoder,
  decodeSyncMessage,
  syncModes,
  syncOperations,
  syncOptions,
  syncStatuses,
  type ChecksumModuleMessage,
  type DataBatchMessage,
  type DataCleanMessage,
  type DataContextMessage,
  type DataValueMessage,
  type EndAckMessage,
  type EndMessage,
  type MalformedReason,
  type MalformedSyncMessage,
  type ReqRetMessage,
  type SeqRange,
  type StartAckMessage,
  type StartMessage,
  type SyncMessage,
  type SyncMode,
  type SyncOperation,
  type SyncOption,
  type SyncStatus,
} from './wire.ts'
