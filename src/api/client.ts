// A netcode 1.02 client on the native engine: connect with a token, then send and receive payloads.
// The client state machine runs on the I/O thread; its state changes arrive here as records (from the
// fallback engine, engine/fallback/engine.ts, where the addon cannot load).
import { EventEmitter } from 'node:events'
import type { NativeSocketInfo, NativeSocketOptions } from '../engine/native/addon.ts'
import { fallbackReason } from '../engine/choose.ts'
import { EngineHold, type ProtocolEngine, type SlabView, engineFor } from '../engine/engine.ts'
import { sharedFallbackEngine } from '../engine/fallback/engine.ts'
import type { OpeningClient } from '../engine/fallback/sockets.ts'
import { type ClientCoreState, clientStateCodes } from '../protocol/netcode/constants.ts'
import { DrainWaiters, FlushWaiters } from '../util/drain-waiters.ts'
import { LifetimeSignal } from '../util/lifetime-signal.ts'
import {
  BandwidthWindow,
  type DeliveryOptions,
  type DeliverySettings,
  type LinkStats,
  type RemoteChannels,
  SendQueue,
  type SendOptions,
  deliveryFields,
  deliveryOptionNames,
  deliverySettings,
  describeChannelsMismatch,
  peerClockMs,
  readLinkStats,
  readRemoteChannels,
} from './channels.ts'
import { ClientCounter, Operation, PeerRecordKind, ProtocolControl, ProtocolCounter, commonProtocolDrops, protocolStatsFields } from '../engine/layout.ts'
import { type NetworkSimulatorOption, type SimulatedNetworkStats, networkSimulatorFields, simulatedNetworkStats } from './network-simulator.ts'
import { type ConnectErrorCode, VolleyError, type VolleyErrorOptions, checkSignal, fromNativeError, settleUnlistening, surfaceLater, systemError } from '../util/errors.ts'
import { type SocketSettings, checkOptions, integerOption, numberOption, signalOnly, socketOptionNames, socketSettings } from '../util/options.ts'
import { connectTokenFromBase64, readConnectToken } from '../protocol/netcode/connect-token.ts'
import { forEachPeerRecord, recordAddress } from '../engine/peer-records.ts'
import { type AddressInfo, addressText } from '../util/ip.ts'
import { copyBytes } from '../util/bytes.ts'
import { netcodeDefaults } from '../protocol/netcode/constants.ts'
import { channelsHintChecks, warnIfServerHasChannels } from './channels-hint.ts'
import { type GuardedLogger, type VolleyLogger, loggerOption } from '../util/logger.ts'
import { type ClientConnectMessage, type ClientDisconnectMessage, clientConnectChannel, clientDisconnectChannel } from './diagnostics.ts'

// netcode's states are numbered as the engine's records number them (clientStateCodes).
/**
 * A client's state. While connecting: 'sending-connection-request', 'sending-connection-response'; then
 * 'connected'. A connection that ended: 'disconnected', 'connection-timed-out', or 'channels-mismatch' (the
 * server's channels do not work with this client's). An attempt that failed: 'connect-token-expired',
 * 'invalid-connect-token', 'connection-denied', 'connection-request-timed-out',
 * 'connection-response-timed-out'. A new client is 'disconnected'.
 */
export type ClientState = 'channels-mismatch' | ClientCoreState

/** How an established connection ends: the states a connected client moves to. */
export type ClientDisconnectReason = Extract<ClientState, 'disconnected' | 'connection-timed-out' | 'channels-mismatch'>

const stateByCode: Record<number, ClientState> = {
  // Not a netcode state: the connection ended because the server's channels do not work with this client's.
  [-7]: 'channels-mismatch',
  ...Object.fromEntries(Object.entries(clientStateCodes).map(([state, code]) => [code, state as ClientCoreState])),
}

const errorByState: Partial<Record<ClientState, [ConnectErrorCode, string]>> = {
  'connect-token-expired': ['ERR_CONNECT_TOKEN_EXPIRED', "The connect token expired before the connection was established (a server that had taken the challenge response meanwhile times the client out after the token's timeoutSeconds)"],
  'invalid-connect-token': ['ERR_INVALID_CONNECT_TOKEN', 'The connect token is not a valid netcode 1.02 token'],
  'connection-denied': ['ERR_CONNECTION_DENIED', 'The server denied the connection: it is full'],
  'connection-request-timed-out': [
    'ERR_CONNECTION_REQUEST_TIMED_OUT',
    // A netcode server answers no request it refuses: say what that silence may mean.
    'No server answered the connection request in time: it may be down, or it refused the token without a word, as netcode servers do ' +
      "(a protocolId other than the server's, counted in its stats().drops.wrongProtocol; a token expired by the server's clock, in " +
      "drops.tokenExpired; a private key other than the server's, the server's address not in the token, the client id connected " +
      'already, the token used before from another socket, in drops.tokenRefused)',
  ],
  'connection-response-timed-out': ['ERR_CONNECTION_RESPONSE_TIMED_OUT', 'The server did not confirm the challenge response in time'],
  'connection-timed-out': ['ERR_CONNECTION_TIMED_OUT', 'The server stopped answering'],
  // With channels, after the handshake: the engine reports 'disconnected' only so while connect() waits.
  disconnected: [
    'ERR_CONNECTION_CLOSED',
    "The server ended the connection before it was ready: it disconnected the client, or closed, while the client waited for the server's channel settings",
  ],
}

/** A Client's options (a ClientPool takes the same). All are optional. */
export interface ClientOptions extends DeliveryOptions, NetworkSimulatorOption {
  /** Resend period of connection requests and responses, ms (default 100: 10 Hz). */
  requestIntervalMs?: number | undefined
  /** Keep-alive period when nothing else was sent, ms (default 100). */
  keepAliveIntervalMs?: number | undefined
  /** Redundant disconnect packets on close (default 10, at disconnectIntervalMs, default 100). */
  disconnectPackets?: number | undefined
  disconnectIntervalMs?: number | undefined
  recvBufferSize?: number | undefined
  sendBufferSize?: number | undefined
  coalesceUs?: number | undefined
  engine?: 'shared' | 'dedicated' | undefined
  /**
   * Closes the client when it aborts, as close() does: a connection is ended with the redundant disconnects,
   * a pending connect() rejects with ABORT_ERR (the signal's reason the cause). A signal aborted already: the
   * client starts closed.
   */
  signal?: AbortSignal | undefined
  /**
   * A pino-compatible logger (docs/diagnostics.md): debug when the client connects and when its connection
   * ends, warn for what would otherwise be a process warning about this client, error for a socket error.
   */
  logger?: VolleyLogger | undefined
}

/** The events a Client emits, with their listeners' arguments. */
export interface ClientEvents {
  /** The state changed. */
  state: [state: ClientState]
  /** data is a view valid during the callback (copy it to keep it); channel: its index in the channels option. */
  message: [data: Uint8Array, channel: number]
  /**
   * The connection ended after it was established: by the server ('disconnected'), a timeout
   * ('connection-timed-out'), close() ('disconnected'), or channels that do not work with the server's
   * ('channels-mismatch': a connected server that sent a payload outside the delivery layer).
   */
  disconnect: [reason: ClientDisconnectReason]
  /** send() takes messages again after it returned false. */
  drain: []
  /** A socket error (a failed receive, say). */
  error: [error: Error]
}

/** The connection's link statistics (the delivery layer's, with channels), and the netcode client's drops. */
export interface ClientStats extends LinkStats {
  /**
   * Datagrams dropped, by cause: received ones refused by a check; receiveBufferFull, the ones the kernel
   * dropped because the socket's receive buffer was full; sendBufferFull, the client's own that the kernel
   * would not take (its send buffer was full).
   */
  drops: {
    malformed: number
    /** Seen already, within the replay window: a duplicate (the network's, or a simulated one) or a replay. */
    replayed: number
    /**
     * Older than the replay window (256 packets behind the newest): delayed or reordered that far (a
     * simulator's jitter at bulk rates does it), or a replay. The delivery layer counts them as lost.
     */
    tooOld: number
    decryptionFailed: number
    unknownAddress: number
    receiveBufferFull: number
    sendBufferFull: number
  }
  /** Datagrams the kernel refused to send with an error (an unreachable network, for one). */
  errors: { send: number }
  /** What the networkSimulator option did to this socket's datagrams; null without one. */
  networkSimulator: SimulatedNetworkStats | null
  clientIndex: number
  maxClients: number
  /**
   * SO_RCVBUF and SO_SNDBUF of the connection's socket as the kernel reads them back (twice what it granted,
   * as node:dgram's getRecvBufferSize()); 0 before the first connect().
   */
  recvBufferSize: number
  sendBufferSize: number
}

/** Why a connect() failed: its code, and the client state the attempt ended in. */
export class ConnectError extends VolleyError {
  declare readonly code: ConnectErrorCode
  constructor(
    code: ConnectErrorCode,
    message: string,
    /** The client state the attempt ended in. */
    readonly state: ClientState,
    options?: VolleyErrorOptions,
  ) {
    super(code, message, options)
  }
}

/** ABORT_ERR (as errors.ts's abortedError, the signal's reason the cause) for a connect() that a signal or close() ended. */
function connectAborted(message: string, signal: AbortSignal | undefined): ConnectError {
  return new ConnectError('ABORT_ERR', message, 'disconnected', { cause: signal?.reason })
}

/** The options a Client takes (a ClientPool takes the same). */
export const clientOptionNames: ReadonlySet<string> = new Set([
  'requestIntervalMs',
  'keepAliveIntervalMs',
  'disconnectPackets',
  'disconnectIntervalMs',
  'networkSimulator',
  'signal',
  'logger',
  ...socketOptionNames,
  ...deliveryOptionNames,
])

/** A connect() waiting for the engine to report how its attempt ended. */
interface PendingConnect {
  resolve: () => void
  reject: (error: Error) => void
}

/** The queue of a connection that has ended: what it held will never be released. */
const ended = { depth: 0, bytes: 0 } as const

/**
 * A client: connects to a Server with a connect token (connect()), then sends and receives messages. One
 * connection at a time; it can connect again after a connection ends, until close(). Events: {@link ClientEvents}.
 */
export class Client extends EventEmitter<ClientEvents> {
  readonly #settings: { requestIntervalMs: number; keepAliveIntervalMs: number; disconnectPackets: number; disconnectIntervalMs: number }
  readonly #socket: SocketSettings
  readonly #counters = new Float64Array(protocolStatsFields)
  readonly #delivery: DeliverySettings | null
  readonly #simulator: ReturnType<typeof networkSimulatorFields>
  #links: Float64Array | null = null
  #queue: SendQueue
  /** The engine's wait for the server's settings, when it ended the connection for their lateness (ms). */
  #settingsWaitedMs = 0
  /** Payloads of this connection still to look at for a server's channels, without channels of its own. */
  #channelsHintChecks = 0
  #reading = new BandwidthWindow()
  #engine: ProtocolEngine | undefined
  #id = 0
  readonly #lifetime: LifetimeSignal
  #state: ClientState = 'disconnected'
  /** Whether the state is that of a connection that ended, not of an attempt that failed or of none (for errors). */
  #connectionEnded = false
  /** The token's server this client tries or is connected to. */
  #server: AddressInfo | null = null
  /** The server tried last: what a failed attempt's error names. */
  #lastServer: AddressInfo | null = null
  #open = false
  #bufferSizes = { recv: 0, send: 0 }
  /** The open socket is IPv6 (dual-stack: it reaches IPv4 servers too). */
  #ipv6 = false
  /** The number of the latest connect(): the engine's state records say which attempt they belong to. */
  #attempt = 0
  /** drops.unknownAddress as the latest attempt began: what came from elsewhere meanwhile explains a timeout. */
  #strayAtStart = 0
  /** Keeps the process alive while connecting, connected or closing, unless unref()ed. */
  readonly #hold = new EngineHold()
  #closing: Promise<void> | undefined
  #resolveClosed: (() => void) | undefined
  /** Set while the socket closes to reopen as IPv6: what runs once it has closed. */
  #afterReopen: (() => void) | undefined
  /**
   * The connect() waiting before it can start, until it is aborted or close() is called: for that socket to close,
   * or for the fallback engine's crypto to load.
   */
  #reopening: PendingConnect | undefined
  #pending: PendingConnect | undefined
  /** drained(): whether a send was refused since the last 'drain', and who waits for the next. */
  readonly #drain = new DrainWaiters()
  /** flushed(): who waits for the queue to empty. */
  readonly #flush = new FlushWaiters(
    () => (this.#closing === undefined ? this.bufferedAmount : 0), // bufferedAmount: 0 unless connected
    () => (this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.watchFlush),
  )
  readonly #client: OpeningClient
  /** The fallback engine could not bind the socket (it binds in the background): what the pending connect() rejects with. */
  #openFailure: Error | undefined
  readonly #log: GuardedLogger | undefined

  constructor(options: ClientOptions = {}) {
    super()
    checkOptions('"options" argument', options, clientOptionNames)
    this.#lifetime = new LifetimeSignal(options.signal)
    this.#log = loggerOption(options.logger)
    this.#settings = {
      requestIntervalMs: numberOption('requestIntervalMs', options.requestIntervalMs, netcodeDefaults.requestIntervalMs, 1, 60_000, ' ms'),
      keepAliveIntervalMs: numberOption('keepAliveIntervalMs', options.keepAliveIntervalMs, netcodeDefaults.keepAliveIntervalMs, 1, 60_000, ' ms'),
      disconnectPackets: integerOption('disconnectPackets', options.disconnectPackets, netcodeDefaults.disconnectPackets, 0, 100),
      disconnectIntervalMs: numberOption('disconnectIntervalMs', options.disconnectIntervalMs, netcodeDefaults.disconnectIntervalMs, 1, 60_000, ' ms'),
    }
    this.#socket = socketSettings(options, 256 << 10)
    this.#delivery = deliverySettings(options)
    this.#simulator = networkSimulatorFields(options.networkSimulator)
    this.#queue = new SendQueue(this.#delivery, () => this.#links, 0, 'the server')
    this.#client = {
      onBatch: (slab, start, count) => this.#onBatch(slab, start, count),
      onError: (errno, count, operation) => {
        const error = systemError(errno, operation === Operation.send ? 'sendmmsg' : 'recvmmsg', { count })
        this.#log?.error({ err: error }, 'volley client socket error')
        this.emit('error', error)
      },
      onClosed: () => this.#onClosed(),
      onDrain: () => this.#onDrain(),
      onOpened: (info) => {
        this.#bufferSizes = { recv: info.receiveBufferSize, send: info.sendBufferSize }
      },
      onOpenFailed: (error) => {
        this.#openFailure = error
      },
    }
    this.#lifetime.watch(() => void this.close())
  }

  /**
   * The connection's state. An attempt shows as 'sending-connection-request' a moment after connect() is
   * called, once it has started (`connecting` is true at once).
   */
  get state(): ClientState {
    return this.#awaitingSettings ? 'sending-connection-response' : this.#state
  }

  /**
   * With channels: the engine's connection is up and connect() still waits for the server's settings (a
   * connect() without channels resolves as it connects). Until they are in, the client reports the state
   * before (nothing may be sent: send() could not check it against the server's channels), as the server
   * announces a client only once its settings are in.
   */
  get #awaitingSettings(): boolean {
    return this.#state === 'connected' && this.#pending !== undefined
  }

  /** Connected, and with channels the server's settings in: messages may go. */
  get #ready(): boolean {
    return this.#state === 'connected' && this.#pending === undefined
  }

  /** True from a connect() call until it settles (as net.Socket's `connecting`). */
  get connecting(): boolean {
    return this.#pending !== undefined || this.#reopening !== undefined
  }

  /**
   * The server, of those the connect token lists, that this client is trying or is connected to; null when
   * no attempt or connection is under way. A token lists up to 32: the client moves to the next when one
   * fails ('state' reports 'sending-connection-request' again).
   */
  get serverAddress(): AddressInfo | null {
    return this.#server === null ? null : { ...this.#server }
  }

  /**
   * Connects with a connect token (2048 bytes, or its base64). Resolves once connected; rejects with a
   * ConnectError whose code says why (denied, timed out, expired, invalid), or ABORT_ERR when
   * options.signal aborts or close() is called first. A token that does not parse is a bad argument: a
   * TypeError with code ERR_INVALID_CONNECT_TOKEN, before any attempt. A client can connect again after a
   * connection ended: it keeps its socket, and so its address, until close().
   */
  connect(token: Uint8Array | string, options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    try {
      return this.#connect(token, options)
    } catch (error) {
      return Promise.reject(error) // bad arguments reject too, as the promise API promises
    }
  }

  #connect(token: Uint8Array | string, options: { signal?: AbortSignal | undefined }): Promise<void> {
    checkOptions('"options" argument', options, signalOnly)
    const { signal } = options
    checkSignal(signal)
    const given = typeof token === 'string' ? connectTokenFromBase64(token) : token
    const parsed = readConnectToken(given) // typed errors for a token that is not one
    // A copy: the attempt reads the token later too (the next server address), and the caller may wipe its own.
    const bytes = typeof token === 'string' ? given : copyBytes(given)
    // A signal aborted already is checked first, as Node's own APIs do (and drained(), flushed()).
    if (signal?.aborted === true) return Promise.reject(connectAborted('The connection attempt was aborted', signal))
    if (this.#closing !== undefined) {
      return Promise.reject(this.#closedError('The client was closed; make a new Client to connect again'))
    }
    if (this.#pending !== undefined || this.#reopening !== undefined || this.#state === 'connected') {
      return Promise.reject(new VolleyError('ERR_CLIENT_BUSY', `connect() needs an idle client; it is ${this.#state === 'connected' ? 'connected' : 'connecting'}`))
    }
    this.#connectionEnded = false
    // The engine of a socket this attempt opens: chosen as the call begins, not once crypto has loaded or the
    // old socket has closed (VOLLEY_ENGINE may have changed by then).
    let fallback: string | undefined
    try {
      fallback = fallbackReason()
    } catch (error) {
      return Promise.reject(fromNativeError(error))
    }
    const ipv6 = parsed.serverAddresses.some((address) => address.family === 6)
    if ((this.#open && ipv6 && !this.#ipv6) || this.#afterReopen !== undefined) {
      // This socket is IPv4 (its first token listed IPv4 servers only) and cannot reach this token's
      // IPv6 servers: close it, then connect on a new dual-stack one. (A socket still closing for an attempt
      // that was aborted meanwhile: this one waits for it instead.) The abort and close() end the wait at
      // once, as they end an attempt under way: the old socket may take a second to send its disconnects.
      return new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          if (this.#reopening === entry) this.#abandonReopen(connectAborted('The connection attempt was aborted', signal))
        }
        const entry: PendingConnect = settleUnlistening(signal, onAbort, () => void this.#start(bytes, ipv6, signal, fallback).then(resolve, reject), reject)
        this.#reopening = entry
        if (this.#afterReopen !== undefined) return // the old socket is closing already
        this.#afterReopen = () => {
          const waiting = this.#reopening
          this.#reopening = undefined
          waiting?.resolve()
        }
        this.#updateReference() // busy while the old socket closes
        ;(this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.stop)
      })
    }
    return this.#start(bytes, ipv6, signal, fallback)
  }

  /**
   * For an attempt that timed out: the datagrams that came meanwhile from an address other than the server's
   * (dropped, as netcode drops them). A server that answers from another of its host's addresses (bound to
   * 0.0.0.0 or [::] where it cannot name its source) looks silent otherwise.
   */
  #strayAnswers(state: ClientState): string {
    if (state !== 'connection-request-timed-out' && state !== 'connection-response-timed-out') return ''
    const stray = this.stats().drops.unknownAddress - this.#strayAtStart
    if (stray <= 0) return ''
    return (
      `; meanwhile ${stray} datagram${stray === 1 ? '' : 's'} came from addresses other than the server's and ${stray === 1 ? 'was' : 'were'} dropped ` +
      "(stats().drops.unknownAddress): a server that answers from another address than the one its tokens list (one bound to 0.0.0.0 or [::] on a host with several addresses may) cannot be reached"
    )
  }

  /** Ends the connect() that waits for the socket to reopen, here and now (abort, close). */
  #abandonReopen(error: Error): void {
    const waiting = this.#reopening as PendingConnect
    this.#reopening = undefined
    waiting.reject(error)
  }

  /** fallback: why the fallback engine runs a socket this opens (fallbackReason()), undefined for the native one. */
  #start(bytes: Uint8Array, ipv6: boolean, signal: AbortSignal | undefined, fallback: string | undefined): Promise<void> {
    if (!this.#open) {
      let engine: ProtocolEngine | undefined
      try {
        const options: NativeSocketOptions = {
          ipv6,
          ipv6Only: false,
          reuseAddress: false,
          reusePort: false,
          receiveBufferSize: this.#socket.recvBufferSize,
          sendBufferSize: this.#socket.sendBufferSize,
          address: '',
          port: 0,
          batchSize: 64,
          coalesceUs: this.#socket.coalesceUs,
          protocol: {
            kind: 'client',
            requestIntervalUs: Math.round(this.#settings.requestIntervalMs * 1000),
            keepAliveIntervalUs: Math.round(this.#settings.keepAliveIntervalMs * 1000),
            disconnectIntervalUs: Math.round(this.#settings.disconnectIntervalMs * 1000),
            disconnectPackets: this.#settings.disconnectPackets,
            ...deliveryFields(this.#delivery),
            ...this.#simulator,
          },
        }
        let info: NativeSocketInfo
        if (fallback !== undefined) {
          const fallbackEngine = sharedFallbackEngine()
          engine = fallbackEngine
          info = fallbackEngine.openNow(options, this.#client)
        } else {
          // Made here, in the try: an engine that cannot start (out of file descriptors) rejects this attempt.
          const native = engineFor(this, this.#socket.engine)
          engine = native
          info = native.open(options, this.#client)
        }
        this.#engine = engine
        this.#id = info.id
        this.#bufferSizes = { recv: info.receiveBufferSize, send: info.sendBufferSize }
        this.#links = engine.peerLinks(info.id)
        // A new socket's counts start from 0: so does the bandwidth's last reading.
        this.#reading = new BandwidthWindow()
        this.#open = true
        this.#ipv6 = ipv6
        this.#hold.opened(engine)
      } catch (error) {
        engine?.releaseIfIdle()
        return Promise.reject(fromNativeError(error))
      }
    }
    const attempt = (this.#attempt = (this.#attempt + 1) >>> 0)
    this.#strayAtStart = this.stats().drops.unknownAddress
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        if (this.#pending !== entry) return
        ;(this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.disconnect)
        this.#abandonAttempt(entry, connectAborted('The connection attempt was aborted', signal))
      }
      const entry: PendingConnect = settleUnlistening(signal, onAbort, resolve, reject)
      this.#pending = entry
      this.#updateReference()
      ;(this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.connect, attempt, bytes)
    })
  }

  /**
   * Sends a message on a channel (options.channel, default 0): with channels configured, up to
   * maxMessageBytes; without, a raw payload of 1 to 1200 bytes. Returns false, queuing nothing, when the
   * connection's send queue (sendQueueBytes) or the engine's is full: 'drain' follows, and the message, not
   * sent, can be sent again then (`while (!client.send(data)) await client.drained()`). Throws
   * ERR_CLIENT_CLOSED from the close() call on.
   */
  send(data: Uint8Array, options?: SendOptions): boolean {
    // The state says 'connected' until the engine reports the end, but what is sent after the stop is lost.
    if (this.#closing !== undefined) throw this.#closedError('The client was closed: send() after close()')
    if (!this.#ready) throw new VolleyError('ERR_CLIENT_NOT_CONNECTED', this.#notConnectedMessage())
    const channel = this.#queue.check(data, options)
    if (!this.#queue.admit(data.byteLength)) {
      ;(this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.watchPeer, 0, this.#queue.refused(data.byteLength))
      this.#drain.block()
      return false
    }
    let enqueued: boolean
    try {
      enqueued = (this.#engine as ProtocolEngine).enqueueToPeer(this.#client, this.#id, data, 0, channel)
    } catch (error) {
      this.#queue.cancel(data.byteLength) // never the engine's (out of memory, a process exiting): else counted queued for good
      throw error
    }
    if (enqueued) return true
    this.#queue.cancel(data.byteLength)
    this.#drain.block()
    return false
  }

  /**
   * Resolves when the client can take messages again: at once unless a send() was refused since the last
   * 'drain', else at the 'drain' that follows. Rejects with ERR_CLIENT_NOT_CONNECTED when the connection
   * ends first (or was not up), ERR_CLIENT_CLOSED once close() was called, and ABORT_ERR when
   * options.signal aborts.
   */
  drained(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    return this.#drain.wait(options, this.#ready && this.#closing === undefined ? null : this.#notConnectedError())
  }

  #onDrain(): void {
    // From close() on nothing more can be sent: its waiters end with ERR_CLIENT_CLOSED once the socket closes.
    if (this.#closing !== undefined) return
    this.#drain.drain()
    this.emit('drain')
  }

  /**
   * Resolves once everything sent so far has left the queue (bufferedAmount 0): sent, and acknowledged by
   * the server on the reliable channels. At once with nothing queued, and without channels. Before close(),
   * so that reliable messages in flight are not lost with the connection. Rejects as drained() does.
   */
  flushed(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    return this.#flush.wait(options, this.#ready && this.#closing === undefined ? null : this.#notConnectedError())
  }

  #notConnectedError(): VolleyError {
    // As send() says it: once close() was called, the client is closed, whatever its connection's state.
    if (this.#closing !== undefined) return this.#closedError('The client was closed: nothing drains after close()')
    return new VolleyError('ERR_CLIENT_NOT_CONNECTED', this.#notConnectedMessage())
  }

  #closedError(message: string): VolleyError {
    return this.#lifetime.closedError('ERR_CLIENT_CLOSED', message)
  }

  #notConnectedMessage(): string {
    if (this.connecting) return 'The client is still connecting: send once connect() has resolved'
    if (this.#state !== 'channels-mismatch') {
      if (this.#connectionEnded) return `The client's connection has ended ('${this.#state}'): connect() again to send`
      if (this.#state === 'disconnected') return 'The client is not connected: connect() first, and send once it has resolved'
      return `The client is not connected: its connect() failed ('${this.#state}')`
    }
    return `The client is not connected: its channels do not work with the server's ('channels-mismatch': ${describeChannelsMismatch(this.#delivery, this.#queue.remote, 'the server')})`
  }

  /**
   * With channels: the channels and largest message the server announced (connect() resolves once they are
   * in); null until then, and without channels.
   * send() checks messages against them. Kept once the connection has ended, until the next one: what a
   * 'channels-mismatch' was.
   */
  get remoteChannels(): RemoteChannels | null {
    return this.#queue.remote // the connection's queue, kept until the next connection's
  }

  /**
   * Bytes handed to send() that the connection has not yet released: not yet acknowledged on a reliable
   * channel, not yet sent on the others (as WebSocket.bufferedAmount), each message counted 64 bytes more
   * than its size, as sendQueueBytes counts it. 0 without channels, and 0 once the connection has ended or
   * close() was called (as peer.bufferedAmount after disconnect()): what it still held will never be released.
   */
  get bufferedAmount(): number {
    return this.#queueLive() ? this.#queue.queued : 0
  }

  /** The send queue still stands for a connection: connected, and not closing. */
  #queueLive(): boolean {
    return this.#state === 'connected' && this.#closing === undefined
  }

  /**
   * The synchronised clock: the server's, as estimated from the ping/pong exchanges of the delivery layer
   * (ms, sub-millisecond resolution; the local monotonic clock without channels). peer.time() on the
   * server reads the same clock. Each exchange corrects the estimate, forwards or back (within the error
   * bound, stats().clock.errorBoundMs), and time() follows: a schedule that must never run backwards keeps
   * the largest it has read.
   */
  time(): number {
    return peerClockMs(this.#links, 0)
  }

  /** The connection's counters, drops and link statistics, as of now. */
  stats(): ClientStats {
    const c = this.#counters
    if (this.#engine !== undefined && this.#open) this.#engine.readProtocolStats(this.#id, c)
    return {
      ...readLinkStats(
        this.#links,
        0,
        { packetsIn: c[ProtocolCounter.packetsIn]!, bytesIn: c[ProtocolCounter.bytesIn]!, packetsOut: c[ProtocolCounter.packetsOut]!, bytesOut: c[ProtocolCounter.bytesOut]! },
        this.#reading,
        this.#queueLive() ? this.#queue.outstanding() : ended,
      ),
      ...commonProtocolDrops(c, ClientCounter.sendDropped),
      clientIndex: c[ClientCounter.clientIndex]!,
      maxClients: c[ClientCounter.maxClients]!,
      networkSimulator: simulatedNetworkStats(c, this.#simulator.networkSimulator?.seed),
      recvBufferSize: this.#bufferSizes.recv,
      sendBufferSize: this.#bufferSizes.send,
    }
  }

  /**
   * Lets the process exit while this client is connecting or connected (as socket.unref() does). A client
   * that is idle (never connected, or its connection ended) never keeps the process alive.
   */
  unref(): this {
    this.#hold.setUnreferenced(true, this.#busy())
    return this
  }

  /** Undoes unref(). */
  ref(): this {
    this.#hold.setUnreferenced(false, this.#busy())
    return this
  }

  /**
   * Disconnects (redundant disconnect packets go out first) and releases the socket; a connect() still
   * pending rejects with ABORT_ERR. Harmless twice. A closed client cannot connect again.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing
    this.#lifetime.release()
    const pending = this.#pending
    if (!this.#open) {
      this.#closing = Promise.resolve()
    } else {
      this.#closing = new Promise((resolve) => {
        this.#resolveClosed = resolve
      })
      this.#hold.closing() // the disconnects go out, unref() or not
      // A reopen in progress has sent its stop already; its socket's close ends this one too.
      if (this.#afterReopen === undefined) (this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.stop)
    }
    const why = this.#lifetime.explain('The client was closed while connecting')
    if (pending !== undefined) this.#abandonAttempt(pending, connectAborted(why, this.#lifetime.abortedBy))
    if (this.#reopening !== undefined) this.#abandonReopen(connectAborted(why, this.#lifetime.abortedBy))
    this.#updateReference()
    return this.#closing
  }

  /**
   * Ends the pending connect() here and now (abort, close): its promise rejects, the state is
   * 'disconnected', and whatever the engine still reports of that attempt (its handshake may have
   * completed meanwhile) is ignored, as the attempt number moves on.
   */
  #abandonAttempt(pending: PendingConnect, error: Error, state: ClientState = 'disconnected'): void {
    const changed = this.state !== state
    this.#pending = undefined
    this.#attempt = (this.#attempt + 1) >>> 0
    const wasConnected = this.#state === 'connected' // waiting for the server's settings
    this.#state = state
    this.#server = null
    this.#updateReference()
    pending.reject(error)
    if (wasConnected) {
      this.#failWaiters()
    }
    // A 'state' handler that throws must not make close() or the abort throw: its error surfaces later.
    if (changed) {
      try {
        this.emit('state', state)
      } catch (thrown) {
        surfaceLater(thrown)
      }
    }
  }

  /** drained() and flushed() callers: the connection they waited on has ended. */
  #failWaiters(): void {
    this.#drain.fail(() => this.#notConnectedError())
    this.#flush.fail(() => this.#notConnectedError())
  }

  #busy(): boolean {
    return this.#open && (this.#pending !== undefined || this.#state === 'connected' || this.#closing !== undefined || this.#afterReopen !== undefined)
  }

  #updateReference(): void {
    this.#hold.update(this.#busy())
  }

  #onBatch(slab: SlabView, start: number, count: number): void {
    forEachPeerRecord(slab, start, count, (kind, code, peer, at, length, record) => {
      // Messages stop at close(), as sends do: what arrives while the disconnects go out is not news.
      if (kind === PeerRecordKind.payload) {
        if (this.#state === 'connected' && this.#closing === undefined) {
          const data = new Uint8Array(slab.buffer, at, length)
          if (this.#channelsHintChecks > 0) this.#lookForServerChannels(data)
          this.emit('message', data, code)
        }
      } else if (kind === PeerRecordKind.largePayload) {
        const bytes = (this.#engine as ProtocolEngine).takeLarge(slab.u32[at >>> 2]!)
        if (this.#state === 'connected' && this.#closing === undefined && bytes !== null) this.emit('message', new Uint8Array(bytes), code)
      } else if (kind === PeerRecordKind.drain) {
        this.#onDrain()
      } else if (kind === PeerRecordKind.flushed) {
        this.#flush.emptied()
      } else if (kind === PeerRecordKind.settings) {
        if (this.#state !== 'connected') return // of a connection that has ended
        this.#queue.remote = readRemoteChannels(slab.u8, at, length)
        // connect() resolves now, unless they do not work with this client's (code 1): the engine ends the
        // connection then, and connect() rejects with its state.
        const pending = this.#pending
        if (pending !== undefined && code === 0) {
          this.#pending = undefined
          pending.resolve()
          this.#reportConnected()
          this.emit('state', 'connected')
        }
      } else if (kind === PeerRecordKind.clientState) {
        // The end of an attempt that a later connect() replaced (it was aborted) is not news.
        if (peer !== this.#attempt) return
        // The record names the server while an attempt or a connection is under way (family 0: none).
        this.#server = slab.u8[record + 12] === 0 ? null : recordAddress(slab, record)
        if (this.#server !== null) this.#lastServer = this.#server
        this.#settingsWaitedMs = length >= 4 ? slab.u32[at >>> 2]! : 0
        this.#onState(stateByCode[(code << 24) >> 24] ?? 'disconnected')
      }
    })
  }

  /** Without channels: the server's delivery packets would come as messages, and it would end the connection unexplained. */
  #lookForServerChannels(payload: Uint8Array): void {
    const server = this.#server ?? this.#lastServer
    const found = warnIfServerHasChannels(payload, server === null ? 'its address' : addressText(server), this.#log)
    this.#channelsHintChecks = found ? 0 : this.#channelsHintChecks - 1
  }

  // Promises settle before the events go out: a handler that throws cannot leave connect() hanging.
  #onState(state: ClientState): void {
    const previous = this.#state
    const pending = this.#pending
    this.#state = state
    if (state === 'connected') {
      this.#queue = new SendQueue(this.#delivery, () => this.#links, 0, 'the server') // the I/O thread's counts start again
      this.#channelsHintChecks = this.#delivery === null ? channelsHintChecks : 0
      if (this.#delivery !== null && pending !== undefined) {
        // With channels, connect() resolves, and 'state' says 'connected', once the server's settings show
        // they match (they come with its first packet, usually in this same batch): a mismatch, or no
        // settings within the engine's wait, rejects it rather than ending a connection it reported.
        return
      }
      this.#pending = undefined
      pending?.resolve()
      this.#reportConnected()
      this.emit('state', state)
      return
    }
    if (state === 'sending-connection-request' || state === 'sending-connection-response') {
      this.emit('state', state)
      return
    }
    this.#pending = undefined
    this.#updateReference() // idle: the process may exit
    const ended = pending === undefined && previous === 'connected'
    // Before the waiters fail and 'state' goes out: their errors, and a send() in a 'state' handler, say it ended.
    if (ended) this.#connectionEnded = true
    if (previous === 'connected') {
      this.#failWaiters()
    }
    if (pending !== undefined) {
      const [code, message] =
        state !== 'channels-mismatch'
          ? (errorByState[state] ?? ['ERR_CONNECTION_CLOSED' as const, `The connection attempt ended: ${state}`])
          : this.#settingsWaitedMs > 0
            ? ([
                'ERR_CHANNELS_MISMATCH',
                `The server sent no delivery settings in the ${this.#settingsWaitedMs} ms after connecting: it has no channels configured, which this client has (or the network lost all it sent)`,
              ] as const)
            : (['ERR_CHANNELS_MISMATCH', `The server's channels do not work with this client's: ${describeChannelsMismatch(this.#delivery, this.#queue.remote, 'the server')}`] as const)
      const last = this.#lastServer
      const where = last === null ? '' : addressText(last)
      const at = where === '' || state === 'connect-token-expired' ? '' : ` (at ${where}, the last address tried)`
      pending.reject(new ConnectError(code, `${message}${at}${this.#strayAnswers(state)}`, state))
    }
    // Each handler's error surfaces on its own: one that throws does not hide the other's.
    try {
      this.emit('state', state)
    } catch (error) {
      surfaceLater(error)
    }
    if (ended) {
      const reason = state === 'connection-timed-out' || state === 'channels-mismatch' ? state : 'disconnected'
      this.#reportDisconnect(reason)
      this.emit('disconnect', reason)
    }
  }

  /** volley:client:connect and the logger: the connection is up (and with channels, the server's settings in). */
  #reportConnected(): void {
    const server = this.#server ?? this.#lastServer
    if (server === null) return // never so: the engine's record names the server it connected to
    if (clientConnectChannel.hasSubscribers) clientConnectChannel.publish({ client: this, serverAddress: { ...server } } satisfies ClientConnectMessage)
    this.#log?.debug({ serverAddress: addressText(server) }, 'volley client connected')
  }

  /** volley:client:disconnect and the logger, before the 'disconnect' event. */
  #reportDisconnect(reason: ClientDisconnectReason): void {
    if (clientDisconnectChannel.hasSubscribers) clientDisconnectChannel.publish({ client: this, reason } satisfies ClientDisconnectMessage)
    this.#log?.debug({ serverAddress: this.#lastServer === null ? undefined : addressText(this.#lastServer), reason }, 'volley client disconnected')
  }

  #onClosed(): void {
    if (this.#engine !== undefined) this.#engine.readProtocolStats(this.#id, this.#counters)
    this.#hold.closed()
    this.#open = false
    const reopen = this.#afterReopen
    this.#afterReopen = undefined
    const wasReady = this.#ready
    const pending = this.#pending
    this.#pending = undefined
    const wasConnected = this.#state === 'connected' // (or waiting for the server's settings)
    if (wasConnected) this.#state = 'disconnected'
    if (wasReady) this.#connectionEnded = true
    this.#server = null
    this.#failWaiters()
    // As a native engine's connect() rejects when it cannot open the socket (EMFILE, say).
    const openFailure = this.#openFailure
    this.#openFailure = undefined
    pending?.reject(openFailure ?? connectAborted('The client was closed while connecting', undefined))
    this.#resolveClosed?.()
    reopen?.()
    if (wasConnected) {
      try {
        this.emit('state', 'disconnected')
      } catch (error) {
        surfaceLater(error)
      }
    }
    if (wasReady) {
      this.#reportDisconnect('disconnected')
      this.emit('disconnect', 'disconnected')
    }
  }
}
