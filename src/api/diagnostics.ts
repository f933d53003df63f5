// volley's node:diagnostics_channel channels, every one of them, made here once as the module loads (named
// as undici names its own: 'volley:<what>:<event>'). Code that publishes checks hasSubscribers first, so
// that nothing is built while nobody listens. The payloads of the server's and client's channels are
// described below; those of the session protocols in sessions/diagnostics.ts (this layer cannot name them).
// docs/diagnostics.md lists them all.
import diagnosticsChannel from 'node:diagnostics_channel'
import type { AddressInfo } from '../util/ip.ts'
import type { Client, ClientDisconnectReason } from './client.ts'
import type { Peer } from './peer.ts'
import type { DisconnectReason, Server, ServerStats } from './server.ts'

const { channel } = diagnosticsChannel

/** A server is listening: published once listen() has bound its socket, before listen() resolves. */
export const serverListeningChannel = channel('volley:server:listening')
/** A server has closed: published as close() resolves. */
export const serverCloseChannel = channel('volley:server:close')
/** A peer connected (as the server's 'connect' event). */
export const peerConnectChannel = channel('volley:server:peer-connect')
/** A peer's connection ended (as the server's 'disconnect' event). */
export const peerDisconnectChannel = channel('volley:server:peer-disconnect')
/** A server's datagrams dropped in the last interval, by cause (DropsSampler). */
export const serverDropsChannel = channel('volley:server:drops')
/** A client connected (as connect() resolves). */
export const clientConnectChannel = channel('volley:client:connect')
/** A client's established connection ended (as its 'disconnect' event). */
export const clientDisconnectChannel = channel('volley:client:disconnect')

/** The session protocols' channels (their payloads: sessions/diagnostics.ts). */
export const resumableSessionCreatedChannel = channel('volley:resumable:session-created')
export const resumableSessionContinuedChannel = channel('volley:resumable:session-continued')
export const resumableSessionGoneChannel = channel('volley:resumable:session-gone')
export const keySyncRotatedChannel = channel('volley:keysync:rotated')
export const keySyncFailedChannel = channel('volley:keysync:failed')
export const syncSessionCompletedChannel = channel('volley:sync:session-completed')
export const syncAgentSyncEndedChannel = channel('volley:sync:agent-sync-ended')
export const mashSessionOpenChannel = channel('volley:mash:session-open')
export const mashSessionCloseChannel = channel('volley:mash:session-close')

/** Published on the diagnostics channel `volley:server:listening` when a server starts listening. */
export interface ServerListeningMessage {
  server: Server
  /** Where the socket is bound (port 0 resolved), as listen() resolves with it. */
  address: AddressInfo
}

/** Published on `volley:server:close` when a server has closed. */
export interface ServerCloseMessage {
  server: Server
}

/** Published on `volley:server:peer-connect` when a client connects (as the server's 'connect' event). */
export interface PeerConnectMessage {
  server: Server
  peer: Peer
}

/** Published on `volley:server:peer-disconnect` when a peer leaves (as the server's 'disconnect' event). */
export interface PeerDisconnectMessage {
  server: Server
  peer: Peer
  reason: DisconnectReason
}

/** The drop counters of ServerStats['drops'], by cause. */
export type ServerDrops = ServerStats['drops']

/** Published on `volley:server:drops` about once a second while a server listens and drops datagrams. */
export interface ServerDropsMessage {
  server: Server
  /** The datagrams dropped in the interval, by cause: only the causes that counted any. */
  drops: Partial<ServerDrops>
  /** The interval the counts cover, ms. */
  intervalMs: number
}

/** Published on `volley:client:connect` when a client connects. */
export interface ClientConnectMessage {
  client: Client
  /** The server it connected to, of those its connect token lists. */
  serverAddress: AddressInfo
}

/** Published on `volley:client:disconnect` when a client's connection ends (as its 'disconnect' event). */
export interface ClientDisconnectMessage {
  client: Client
  reason: ClientDisconnectReason
}

/** How often a server publishes its drops on volley:server:drops, ms. */
export const dropsIntervalMs = 1_000

/** @internal What a DropsSampler starts with: tests shorten the interval (the payload says what it was). */
export const dropsSampling = { intervalMs: dropsIntervalMs }

/**
 * Publishes a server's drops on volley:server:drops: the native engine counts them (JavaScript sees no dropped
 * datagram), so each interval the counters are read, and what grew since the last reading is published. The
 * timer runs while the server listens, unreferenced; a tick without subscribers forgets the last reading and
 * reads nothing, so that a subscriber's first message covers one interval of its own, not the time before.
 */
export class DropsSampler {
  readonly #server: Server
  readonly #read: () => ServerDrops
  #timer: NodeJS.Timeout | undefined
  #intervalMs = dropsSampling.intervalMs
  #last: ServerDrops | null = null

  constructor(server: Server, read: () => ServerDrops) {
    this.#server = server
    this.#read = read
  }

  start(): void {
    this.stop()
    this.#intervalMs = dropsSampling.intervalMs
    if (serverDropsChannel.hasSubscribers) this.#last = this.#read()
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs).unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#last = null
  }

  #tick(): void {
    if (!serverDropsChannel.hasSubscribers) {
      this.#last = null
      return
    }
    const now = this.#read()
    const last = this.#last
    this.#last = now
    if (last === null) return
    let changed: Partial<ServerDrops> | undefined
    for (const cause of Object.keys(now) as (keyof ServerDrops)[]) {
      const delta = now[cause] - last[cause]
      if (delta !== 0) (changed ??= {})[cause] = delta
    }
    if (changed !== undefined) serverDropsChannel.publish({ server: this.#server, drops: changed, intervalMs: this.#intervalMs } satisfies ServerDropsMessage)
  }
}
