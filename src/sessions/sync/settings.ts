// The timing and limits of agent sync (research §B.2, §B.3), written once.

/** How long the agent waits for StartAck, and for EndAck after End, ms (the protocol's default). */
export const SYNC_RESPONSE_TIMEOUT_MS = 30_000
/** How often a Start or an End is sent again before the agent gives up (the protocol's default). */
export const SYNC_RETRIES = 3
/** How long the agent waits after its last data before it sends End, ms (Wazuh's sync_end_delay). */
export const SYNC_END_DELAY_MS = 1_000
/**
 * On a transport that loses messages (an unreliable channel), how long the agent waits for an answer to End
 * before it sends End again, ms (no retry used: the manager answers each End at once).
 */
export const SYNC_END_REPEAT_MS = 1_000
/** The largest DataBatch the agent builds, by Wazuh's estimate of its size (about 60 KiB). */
export const SYNC_MAX_BATCH_BYTES = 60 * 1024
/** Consecutive failed syncs after which the agent's failure event says 'warning' rather than 'info'. */
export const SYNC_FAILURE_STREAK_WARNING = 3

/** How long a manager keeps a session that receives nothing new, ms (Wazuh's 1,200 s). */
export const SYNC_IDLE_TIMEOUT_MS = 1_200_000
/** How often the manager looks for idle sessions, ms (Wazuh's 600 s). */
export const SYNC_SWEEP_INTERVAL_MS = 600_000
/** How often the manager compares a ModuleCheck's checksum before it answers ChecksumMismatch. */
export const SYNC_CHECKSUM_ATTEMPTS = 5
/** The wait between two of those comparisons, ms (Wazuh's 10 s: the copy may be catching up). */
export const SYNC_CHECKSUM_RETRY_MS = 10_000
/** The session id of a StartAck that opened no session (Error when locked, Offline). */
export const SYNC_NO_SESSION = 0xffff_ffff_ffff_ffffn
