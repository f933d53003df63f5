// A client without channels whose server has them takes the server's delivery packets (its pings,
// acknowledgements and settings) for messages, and the server ends the connection soon after: at the
// client's first payload, or when its wait for the client's settings is over. A netcode disconnect carries
// no reason, so nothing else would tell the client's user why. The first such packet in a process is
// reported as a warning that names the server's channels (to a client's logger instead, once per logger).
import { packetMarker } from '../protocol/delivery/wire-format.ts'
import { loadCores } from '../engine/fallback/wasm-cores.ts'
import { MODES } from './channels.ts'
import type { GuardedLogger, VolleyLogger } from '../util/logger.ts'

/** What a peer's delivery layer announced: its largest message, and a mode per channel (1 reliable, 2 unreliable, 3 sequenced). */
export interface PeerSettings {
  maxMessageBytes: number
  channels: number[]
}

/**
 * Payloads of a connection looked at, at most. The server puts its settings in every packet until the
 * client acknowledges them, which a client without channels never does, so the first one tells.
 */
export const channelsHintChecks = 4

let warned = false
/** The loggers warned already: a ClientPool's clients share one, which says it once. */
const warnedLoggers = new WeakSet<VolleyLogger>()

/**
 * The settings `payload` announces as a server's delivery packet, or null. It is read by the delivery
 * layer's own receive path, on a client's core (the WebAssembly build's), so that only what a client with
 * channels would take as the server's announcement counts.
 */
export function serverAnnouncement(payload: Uint8Array): PeerSettings | null {
  if (payload.byteLength === 0 || payload[0] !== packetMarker) return null
  const { exports: api, heap, view } = loadCores()
  const capacity = 8 + 256
  const packet = api._malloc(payload.byteLength + capacity)
  try {
    const out = packet + payload.byteLength
    heap.set(payload, packet)
    if (api._vp_announcement(packet, payload.byteLength, out, capacity) === 0) return null
    const count = view.getUint32(out + 4, true)
    return { maxMessageBytes: view.getUint32(out, true), channels: [...heap.subarray(out + 8, out + 8 + count)] }
  } finally {
    api._free(packet)
  }
}

/**
 * For a client without channels: warns (VOLLEY_SERVER_HAS_CHANNELS) when `payload` is its server's
 * delivery-layer announcement, to the client's logger when it has one (once per logger), else as a process
 * warning (once per process). True when it was one, so that the caller looks no further.
 */
export function warnIfServerHasChannels(payload: Uint8Array, server: string, log?: GuardedLogger): boolean {
  if (log === undefined ? warned : warnedLoggers.has(log.logger)) return true
  const settings = serverAnnouncement(payload)
  if (settings === null) return false
  const channels = settings.channels.map((mode) => MODES[mode - 1]).join(', ')
  const code = 'VOLLEY_SERVER_HAS_CHANNELS'
  const message =
    `The server at ${server} runs channels (${channels}; messages up to ${settings.maxMessageBytes} bytes) and this client has none: ` +
    "its delivery packets (pings, acknowledgements) arrive as 'message' events, and it ends the connection at this client's first " +
    'payload or within about 2 s. Give the Client the same channels as the server (new Client({ channels })).'
  if (log !== undefined) {
    warnedLoggers.add(log.logger)
    log.warn({ code, serverAddress: server, serverChannels: channels }, message)
  } else {
    warned = true
    process.emitWarning(message, { type: 'VolleyWarning', code })
  }
  return true
}
