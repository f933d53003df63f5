// The timing of resumable sessions (the keep-alive contract of seed 004, research §C.2), written once.

/** How long a session lives without a heartbeat or a continue, ms (90 s): sessionTimeoutMs's default. */
export const RESUMABLE_SESSION_TIMEOUT_MS = 90_000
/** The client's heartbeat interval by default, ms (30 s). */
export const RESUMABLE_KEEP_ALIVE_INTERVAL_MS = 30_000
/** The shortest heartbeat interval a client may use, ms (10 s). */
export const RESUMABLE_MIN_KEEP_ALIVE_INTERVAL_MS = 10_000
/** The longest heartbeat interval a client may use, ms (120 s). */
export const RESUMABLE_MAX_KEEP_ALIVE_INTERVAL_MS = 120_000
/** How often the server expires what is due, ms (1 s, fixed). */
export const RESUMABLE_CLEANUP_INTERVAL_MS = 1_000
/** The fraction of a session's timeout at which 'sessionWarning' goes out (85 %). */
export const RESUMABLE_WARNING_FRACTION = 0.85
/** How far a heartbeat's timestamp may be from the server's clock, either way, ms. */
export const RESUMABLE_CLOCK_SKEW_MS = 10_000
/** How long a client waits for SessionCreated or SessionContinued before it tries a new connection, ms. */
export const RESUMABLE_CONNECTION_TIMEOUT_MS = 5_000
/** How long a client waits for a response before it sends the request again, ms. */
export const RESUMABLE_REQUEST_TIMEOUT_MS = 10_000
