// Settings every case shares, so that no receiver or sender gets a better deal than another.

/** All traffic stays on loopback. */
export const HOST = '127.0.0.1'

/** SO_RCVBUF asked for by every receiver (the kernel doubles it, capped at net.core.rmem_max). */
export const RECV_BUFFER_SIZE = 4 << 20

/** SO_SNDBUF asked for by every sender. */
export const SEND_BUFFER_SIZE = 4 << 20

/** Datagrams per recvmmsg/sendmmsg call: volley's socket, the C sink and the C blaster. */
export const BATCH_SIZE = 64

/** Payload sizes of the receive cases; the send cases use the first. */
export const RECEIVE_SIZES = [64, 1200] as const
export const SEND_SIZE = 64

/** A receiver finishes once "stop" has come and no datagram has arrived for this long. */
export const IDLE_MS = 100

/** How often a JS receiver looks at its counters (the end of its window is known to this precision). */
export const SAMPLE_MS = 2
