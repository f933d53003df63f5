// The timing and limits of the SAE key sync (research §D.3), written once. Times on the wire are epoch
// seconds; these are milliseconds.

/** How far ahead of the Get key the master puts the first rotation instant (the reference's initial_roll_delay_seconds). */
export const KEYSYNC_ROTATION_DELAY_MS = 300_000
/**
 * Below this much time before the rotation instant, the slave answers need_more_time and suggests the instant
 * plus this much (the reference's grace_period_seconds).
 */
export const KEYSYNC_PREPARE_MS = 120_000
/**
 * The most a master moves the rotation instant later for a slave's need_more_time (the reference ignores the
 * suggestion): a slave cannot postpone a rotation indefinitely.
 */
export const KEYSYNC_MAX_EXTRA_DELAY_MS = 300_000
/** How far a message's timestamp may be from the receiver's clock, either way (the reference's 3,600 s). */
export const KEYSYNC_TIMESTAMP_WINDOW_MS = 3_600_000
/** How far ahead a rotation instant may be (the reference's 3,600 s). */
export const KEYSYNC_MAX_AHEAD_MS = 3_600_000
/** How long a request waits for its answer before it is sent again (the reference's sync_timeout, 30 s). */
export const KEYSYNC_RESPONSE_TIMEOUT_MS = 30_000
/** How often a request is sent again before the session fails (the reference's proposal: 3). */
export const KEYSYNC_RETRIES = 3
/** How long a session that has not reached its rotation lives (the reference's 300 s). */
export const KEYSYNC_SESSION_EXPIRY_MS = 300_000
/** How long a session waits, rotated, for its cleanup (the reference's 1,800 s for PENDING_DONE). */
export const KEYSYNC_CLEANUP_EXPIRY_MS = 1_800_000
/**
 * The most key ids a message carries, the longest id (a key id, an SAE id, an error code) and the longest
 * text, characters: they bound the work on any message, and keep the largest reply (a delete response naming
 * every key with a reason) well inside the reference's 8,192-byte datagram once signed.
 */
export const KEYSYNC_MAX_KEY_IDS = 32
export const KEYSYNC_MAX_ID = 64
export const KEYSYNC_MAX_STRING = 1024
/** The most sessions a slave holds at once (a new notification past it ends the oldest unconfirmed one). */
export const KEYSYNC_MAX_SESSIONS = 16
/** The least time between the master's confirmation and the instant, ms: an acknowledgment that came late moves the instant. */
export const KEYSYNC_MIN_LEAD_MS = 1_000
