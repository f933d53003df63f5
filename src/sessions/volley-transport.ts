// SessionTransport over a Volley connection's channel (reliable, or unreliable for a protocol that resends
// what is lost by itself): ClientTransport over a connected Client, and
// PeerTransports, which gives each peer of a Server a PeerTransport, with one listener per server event
// for all of them (10,000 peers are not tens of thousands of listeners).
import { Client, type ClientDisconnectReason } from '../api/client.ts'
import type { RemoteChannels } from '../api/channels.ts'
import { VolleyError, VolleyRangeError, VolleyTypeError, describe, surfaceLater } from '../util/errors.ts'
import { fragmentBytes } from '../protocol/delivery/wire-format.ts'
import { checkOptions, integerOption } from '../util/options.ts'
import type { Peer } from '../api/peer.ts'
import { type DisconnectReason, Server, type ServerState } from '../api/server.ts'
import { TransportBase, type TransportBaseOptions, maxHeldBytesOption } from './transport.ts'

/** The channel modes a session protocol can run on. */
export type SessionChannelMode = 'reliable' | 'unreliable'

/** The options of the transports over a Volley channel: ClientTransport, PeerTransports and serveSessions(). */
export interface VolleyTransportOptions extends TransportBaseOptions {
  /** The channel the messages go on: its index in the channels option (default 0). */
  channel?: number | undefined
  /**
   * The mode the channel must have (default 'reliable': every message once, in order). 'unreliable' is for a
   * protocol that resends what is lost by itself (agent sync): its messages may be lost or reordered, and
   * one up to `datagramMessageBytes` travels in a single packet.
   */
  channelMode?: SessionChannelMode | undefined
}

/** The largest message that travels in one packet (larger ones go in fragments: all lost if one is). */
export const datagramMessageBytes = fragmentBytes

const volleyTransportOptionNames: ReadonlySet<string> = new Set(['channel', 'channelMode', 'maxHeldBytes'])

interface SettledTransportOptions {
  channel: number
  channelMode: SessionChannelMode
  maxHeldBytes: number
}

/** The options of a Volley adapter, checked, with their defaults. */
function volleyTransportOptions(options: VolleyTransportOptions): SettledTransportOptions {
  checkOptions('"options" argument', options, volleyTransportOptionNames)
  const { channelMode = 'reliable' } = options
  if (channelMode !== 'reliable' && channelMode !== 'unreliable') {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "channelMode" option must be 'reliable' or 'unreliable'. Received ${describe(channelMode)}`)
  }
  return { channel: integerOption('channel', options.channel, 0, 0, 254), channelMode, maxHeldBytes: maxHeldBytesOption(options.maxHeldBytes) }
}

/**
 * Why `channel` cannot carry sessions on a connection whose other side announced `remote`; undefined when it
 * can, or when the other side lacks the channel (`missing` says so then, for the caller to decide).
 * Connected, the two sides agree on the mode of every channel both have (else Volley ends the connection with
 * 'channels-mismatch'): the other side's announcement tells this side's own mode.
 */
function channelProblem(remote: RemoteChannels | null, channel: number, expected: SessionChannelMode, who: string): Error | 'missing' | undefined {
  const needed = `${expected === 'reliable' ? 'a' : 'an'} '${expected}' channel`
  if (remote === null) {
    return new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The ${who} has no channels configured: sessions need ${needed} (the "channels" option of Server and Client)`)
  }
  const mode = remote.channels[channel]?.mode
  if (mode === undefined) return 'missing'
  if (mode !== expected) {
    const why = expected === 'reliable' ? 'every message once, in order' : 'the channelMode option'
    return new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Channel ${channel} of the ${who} is '${mode}': sessions need ${needed} (${why})`)
  }
  return undefined
}

/**
 * What the two Volley adapters share: a message checked against the other side's largest before it is
 * taken, and the errors of the connection below, which reach the caller of send() when it is the one
 * sending, and end the transport when a held message goes at a drain or an orderly close (no caller then
 * to throw to).
 */
export abstract class ChannelTransport extends TransportBase {
  /** The channel the messages go on (its index in the channels option). */
  readonly channel: number
  /** Whether that channel is reliable: on an unreliable one, messages may be lost or reordered. */
  readonly reliable: boolean
  /** The other side's largest message (its maxMessageBytes): a larger one is refused at send(). */
  readonly maxMessageBytes: number
  protected readonly sendOptions: { channel: number }
  /** Whose maxMessageBytes it is ("the server's"), for the error that refuses a larger message. */
  readonly #otherSide: string
  /** Inside a caller's send() (not a drain's sending of held messages). */
  #callerSends = false

  protected constructor(channel: number, reliable: boolean, maxMessageBytes: number, otherSide: string, maxHeldBytes: number) {
    super({ maxHeldBytes })
    this.channel = channel
    this.reliable = reliable
    this.maxMessageBytes = maxMessageBytes
    this.sendOptions = { channel }
    this.#otherSide = otherSide
  }

  protected override get messageBound(): string {
    return `${this.#otherSide} maxMessageBytes option`
  }

  /**
   * Sends one message (1 to maxMessageBytes bytes), as SessionTransport's contract says; false: wait for
   * 'drain'. The connection's own refusal of a message sent at once (over this side's own maxMessageBytes)
   * throws too.
   */
  override send(data: Uint8Array): boolean {
    const outer = this.#callerSends
    this.#callerSends = true
    try {
      return super.send(data)
    } finally {
      this.#callerSends = outer
    }
  }

  /** Hands a message to the connection: false when its queue is full (nothing queued). */
  protected abstract sendBelow(data: Uint8Array): boolean

  protected trySend(data: Uint8Array): boolean {
    try {
      return this.sendBelow(data)
    } catch (error) {
      if (this.#callerSends) throw error
      // A held message refused as it goes (over this side's own maxMessageBytes, which the adapters cannot
      // read beforehand), at a drain or an orderly close: the transport ends with the error.
      this.close(error as Error)
      return true
    }
  }
}

/**
 * A SessionTransport over a connected Client's channel (options.channel, default 0), reliable unless
 * options.channelMode says 'unreliable'. Messages on the client's other channels are not its own: it ignores them (another protocol may use them).
 *
 * send() hands each message to client.send(); when the client's queue is full (client.send() returned false,
 * queuing nothing) the transport holds it and what follows, up to options.maxHeldBytes (default 1 MiB; past
 * it the transport ends with ERR_SEND_BACKLOG_FULL), and sends them at the client's 'drain'. close()
 * closes the client (client.close(): the connection and its socket), since the connection is the session's
 * own; the connection's end ('disconnect') is the transport's 'close' (timeouts and mismatches with an error).
 */
export class ClientTransport extends ChannelTransport {
  readonly client: Client

  constructor(client: Client, options: VolleyTransportOptions = {}) {
    if (!(client instanceof Client)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "client" argument must be a Client. Received ${describe(client)}`)
    const { channel, channelMode, maxHeldBytes } = volleyTransportOptions(options)
    if (client.state !== 'connected' || client.connecting) {
      throw new VolleyError('ERR_CLIENT_NOT_CONNECTED', `A ClientTransport needs a connected client (once connect() has resolved); it is '${client.state}'`)
    }
    const remote = client.remoteChannels
    const problem = channelProblem(remote, channel, channelMode, 'client')
    if (problem === 'missing') {
      throw new VolleyRangeError('ERR_NO_SUCH_CHANNEL', `The server has ${remote?.channels.length} channels: there is no channel ${channel} to carry sessions`)
    }
    if (problem !== undefined) throw problem
    super(channel, channelMode === 'reliable', (remote as RemoteChannels).maxMessageBytes, "the server's", maxHeldBytes)
    this.client = client
    client.on('message', this.#onMessage)
    client.on('drain', this.#onDrain)
    client.on('disconnect', this.#onDisconnect)
  }

  protected sendBelow(data: Uint8Array): boolean {
    try {
      return this.client.send(data, this.sendOptions)
    } catch (error) {
      // Closed or disconnected before its 'disconnect' came (close() called on the client itself): the
      // message is lost with the connection, as on any, and the 'disconnect' that follows ends the transport.
      if (error instanceof VolleyError && (error.code === 'ERR_CLIENT_CLOSED' || error.code === 'ERR_CLIENT_NOT_CONNECTED')) return true
      throw error
    }
  }

  protected closeBelow(): void {
    this.#detach()
    void this.client.close()
  }

  // Guarded: a handler that throws must not cost the client the rest of its batch (the reliable channel's
  // next messages); its error surfaces on its own.
  readonly #onMessage = (data: Uint8Array, channel: number): void => {
    if (channel !== this.channel) return
    try {
      this.deliver(data)
    } catch (error) {
      surfaceLater(error)
    }
  }

  readonly #onDrain = (): void => {
    guarded(() => this.sendHeld())
  }

  readonly #onDisconnect = (reason: ClientDisconnectReason): void => {
    this.#detach()
    guarded(() => this.ended(clientEndError(reason)))
  }

  #detach(): void {
    this.client.off('message', this.#onMessage)
    this.client.off('drain', this.#onDrain)
    this.client.off('disconnect', this.#onDisconnect)
  }
}

function clientEndError(reason: ClientDisconnectReason): Error | undefined {
  switch (reason) {
    case 'disconnected':
      return undefined
    case 'connection-timed-out':
      return new VolleyError('ERR_CONNECTION_TIMED_OUT', "The server stopped answering: the client's connection timed out")
    case 'channels-mismatch':
      return new VolleyError('ERR_CHANNELS_MISMATCH', "The server's channels do not work with the client's: the connection was ended ('channels-mismatch')")
  }
}

function peerEndError(reason: DisconnectReason, peer: Peer): Error | undefined {
  switch (reason) {
    case 'disconnected':
    case 'server-disconnect':
    case 'server-closed':
      return undefined
    case 'timeout':
      return new VolleyError('ERR_CONNECTION_TIMED_OUT', `Client ${peer.clientId} stopped answering: its connection timed out`)
    case 'channels-mismatch':
      return new VolleyError('ERR_CHANNELS_MISMATCH', `Client ${peer.clientId}'s channels do not work with the server's: the connection was ended ('channels-mismatch')`)
    case 'reassembly-stalled':
      return new VolleyError('ERR_CONNECTION_CLOSED', `Client ${peer.clientId} started a reliable message and sent no more of it: the server ended the connection ('reassembly-stalled')`)
  }
}

/** What a PeerTransport needs of the PeerTransports that made it. */
interface PeerTransportOwner {
  /** A send was refused: the transport waits for a drain. */
  blocked(transport: PeerTransport): void
  /** The transport has closed: it is routed no more. */
  forget(transport: PeerTransport): void
}

/** The first argument of PeerTransport's constructor: only PeerTransports makes them (it routes their events). */
const peerTransportConstruction: unique symbol = Symbol('volley.PeerTransport')

/**
 * A SessionTransport over one peer's channel (reliable, or unreliable: channelMode); PeerTransports makes one for each peer at the server's
 * 'connect', and routes its messages, drains and disconnect to it. close() disconnects the peer.
 */
export class PeerTransport extends ChannelTransport {
  /** The peer whose channel it runs on. */
  readonly peer: Peer
  readonly #owner: PeerTransportOwner

  /** PeerTransports makes them; there is no public constructor. @hidden */
  constructor(
    construction: typeof peerTransportConstruction,
    owner: PeerTransportOwner,
    peer: Peer,
    channel: number,
    reliable: boolean,
    maxMessageBytes: number,
    maxHeldBytes: number,
  ) {
    if (construction !== peerTransportConstruction) {
      throw new VolleyTypeError('ERR_ILLEGAL_CONSTRUCTOR', 'PeerTransport has no public constructor: serveSessions() or new PeerTransports() makes one for each peer')
    }
    super(channel, reliable, maxMessageBytes, `client ${peer.clientId}'s`, maxHeldBytes)
    this.#owner = owner
    this.peer = peer
  }

  protected sendBelow(data: Uint8Array): boolean {
    // Disconnected (by peer.disconnect() or server.close(), ahead of its 'disconnect'): lost with the connection.
    if (!this.peer.connected) return true
    if (this.peer.send(data, this.sendOptions)) return true
    this.#owner.blocked(this)
    return false
  }

  protected closeBelow(): void {
    this.#owner.forget(this)
    this.peer.disconnect()
  }

  /** @internal A message on the transport's channel. */
  onPeerMessage(data: Uint8Array): void {
    this.deliver(data)
  }

  /** @internal The queue that refused a send has room again. */
  onPeerDrain(): void {
    this.sendHeld()
  }

  /** @internal The connection ended (error: why, when it was not an orderly end). */
  onPeerDisconnect(error?: Error): void {
    this.#owner.forget(this)
    this.ended(error)
  }
}

/** Runs an event's delivery; an error thrown by a handler surfaces on its own, as an uncaught exception. */
function guarded(run: () => void): void {
  try {
    run()
  } catch (error) {
    surfaceLater(error)
  }
}

/** Called with each peer's transport, as the peer connects. */
export type OnPeerTransport = (transport: PeerTransport, peer: Peer) => void

/**
 * Serves session protocols on a Server's channel (options.channel, default 0; reliable unless
 * options.channelMode says 'unreliable'): a PeerTransport for
 * each peer as it connects (and at once for those connected already), given to onTransport. One listener on
 * each of the server's 'connect', 'message', 'disconnect', 'drain' and 'state' events, whatever the number of
 * peers, routing by peer. Messages on other channels are not its own: it ignores them. Each transport holds
 * what its peer's queue refuses up to options.maxHeldBytes (default 1 MiB), as a ClientTransport does.
 *
 * A peer whose client lacks the channel gets no transport (it speaks another protocol). A channel not in the
 * channelMode expected, or a server without channels, is a mistake in the server's options, found at the first
 * peer (the server's own channels show only in what its peers announce): it surfaces as an uncaught
 * exception, and serving stops.
 */
export class PeerTransports {
  /** The server it serves on. */
  readonly server: Server
  /** The channel's index in the server's channels option. */
  readonly channel: number
  /** The mode the channel must have. */
  readonly channelMode: SessionChannelMode
  /** Each transport's bound of held bytes (the maxHeldBytes option). */
  readonly maxHeldBytes: number
  readonly #onTransport: OnPeerTransport
  readonly #byPeer = new Map<Peer, PeerTransport>()
  /** Transports whose send was refused: an engine-wide 'drain' (no peer) is theirs. */
  readonly #blocked = new Set<PeerTransport>()
  #stopped = false
  readonly #owner: PeerTransportOwner = {
    blocked: (transport) => this.#blocked.add(transport),
    forget: (transport) => {
      if (this.#byPeer.get(transport.peer) === transport) this.#byPeer.delete(transport.peer)
      this.#blocked.delete(transport)
    },
  }

  constructor(server: Server, options: VolleyTransportOptions, onTransport: OnPeerTransport) {
    if (!(server instanceof Server)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "server" argument must be a Server. Received ${describe(server)}`)
    const settled = volleyTransportOptions(options)
    this.channel = settled.channel
    this.channelMode = settled.channelMode
    this.maxHeldBytes = settled.maxHeldBytes
    if (typeof onTransport !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "onTransport" argument must be a function. Received ${describe(onTransport)}`)
    }
    this.server = server
    this.#onTransport = onTransport
    server.on('connect', this.#onConnect)
    server.on('message', this.#onMessage)
    server.on('disconnect', this.#onDisconnect)
    server.on('drain', this.#onDrain)
    server.on('state', this.#onState)
    for (const peer of server.peers.values()) {
      if (this.#stopped) break
      if (peer.connected) this.#onConnect(peer)
    }
  }

  /** The transport of a peer; undefined for one it does not serve (or no longer: it closed). */
  get(peer: Peer): PeerTransport | undefined {
    return this.#byPeer.get(peer)
  }

  /** The transports open now. */
  get size(): number {
    return this.#byPeer.size
  }

  /** Stops serving: the listeners go, and every transport still open closes (its peer disconnected). */
  close(): void {
    if (this.#stopped) return
    this.#stopped = true
    const server = this.server
    server.off('connect', this.#onConnect)
    server.off('message', this.#onMessage)
    server.off('disconnect', this.#onDisconnect)
    server.off('drain', this.#onDrain)
    server.off('state', this.#onState)
    for (const transport of [...this.#byPeer.values()]) transport.close()
  }

  readonly #onConnect = (peer: Peer): void => {
    if (this.#stopped) return
    const remote = peer.remoteChannels
    const problem = channelProblem(remote, this.channel, this.channelMode, 'server')
    if (problem === 'missing') return
    if (problem !== undefined) {
      // Thrown here it would cost the server the rest of the batch this 'connect' came in.
      this.close()
      surfaceLater(problem)
      return
    }
    const transport = new PeerTransport(
      peerTransportConstruction, this.#owner, peer, this.channel, this.channelMode === 'reliable', (remote as RemoteChannels).maxMessageBytes, this.maxHeldBytes,
    )
    this.#byPeer.set(peer, transport)
    // Guarded, as the events are: a callback that throws must not cost the server the rest of its batch.
    guarded(() => this.#onTransport(transport, peer))
  }

  // Each transport's events run guarded: a session's handler that throws must not cost the other peers the
  // rest of the server's batch (its error surfaces on its own).
  readonly #onMessage = (peer: Peer, data: Uint8Array, channel: number): void => {
    if (channel !== this.channel) return
    const transport = this.#byPeer.get(peer)
    if (transport === undefined) return
    // Not guarded(): no closure per message.
    try {
      transport.onPeerMessage(data)
    } catch (error) {
      surfaceLater(error)
    }
  }

  readonly #onDisconnect = (peer: Peer, reason: DisconnectReason): void => {
    const transport = this.#byPeer.get(peer)
    if (transport !== undefined) guarded(() => transport.onPeerDisconnect(peerEndError(reason, peer)))
  }

  readonly #onDrain = (peer?: Peer): void => {
    if (peer !== undefined) {
      const transport = this.#byPeer.get(peer)
      if (transport === undefined) return
      this.#blocked.delete(transport)
      guarded(() => transport.onPeerDrain())
      return
    }
    // The engine's queue has room: every transport that waits tries again (one still refused waits anew).
    const waiting = [...this.#blocked]
    this.#blocked.clear()
    for (const transport of waiting) guarded(() => transport.onPeerDrain())
  }

  readonly #onState = (state: ServerState): void => {
    // A stopped server has dropped its peers, those it reported no 'disconnect' for included.
    if (state !== 'stopped') return
    for (const transport of [...this.#byPeer.values()]) guarded(() => transport.onPeerDisconnect())
  }
}

/**
 * Serves session protocols on a Server's channel: new PeerTransports(server, options, onTransport).
 * Returns what stops serving (PeerTransports.close(): every transport still open closes, its peer disconnected).
 */
export function serveSessions(server: Server, options: VolleyTransportOptions, onTransport: OnPeerTransport): () => void {
  const transports = new PeerTransports(server, options, onTransport)
  return () => transports.close()
}
