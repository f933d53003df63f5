// A netcode 1.02 client on the native engine: connect with a token, then send and receive payloads.
// The client state machine runs on the I/O thread; its state changes arrive here as records.
import { EventEmitter } from 'node:events'
import { type Engine, type EngineClient, type SlabView, dedicatedEngine, sharedEngine } from './engine/engine.ts'
import { type DeliveryOptions, type DeliverySettings, type LinkStats, SendQueue, type SendOptions, deliveryFields, deliverySettings, peerClockMs, readLinkStats } from './delivery.ts'
import { PeerRecordKind, ProtocolControl, protocolStatsFields } from './engine/layout.ts'
import { type NetworkSimulatorOption, networkSimulatorFields } from './network-simulator.ts'
import { VolleyError, VolleyRangeError, VolleyTypeError, type VolleyErrorCode, describe, fromNativeError, systemError } from './errors.ts'
import { connectTokenFromBase64, readConnectToken } from './netcode/connect-token.ts'
import { forEachPeerRecord } from './peer-records.ts'

export type ClientState =
  | 'connect-token-expired'
  | 'invalid-connect-token'
  | 'connection-timed-out'
  | 'connection-response-timed-out'
  | 'connection-request-timed-out'
  | 'connection-denied'
  | 'disconnected'
  | 'sending-connection-request'
  | 'sending-connection-response'
  | 'connected'

const stateByCode: Record<number, ClientState> = {
  [-6]: 'connect-token-expired',
  [-5]: 'invalid-connect-token',
  [-4]: 'connection-timed-out',
  [-3]: 'connection-response-timed-out',
  [-2]: 'connection-request-timed-out',
  [-1]: 'connection-denied',
  0: 'disconnected',
  1: 'sending-connection-request',
  2: 'sending-connection-response',
  3: 'connected',
}

const errorByState: Partial<Record<ClientState, [VolleyErrorCode, string]>> = {
  'connect-token-expired': ['ERR_CONNECT_TOKEN_EXPIRED', 'The connect token expired before a server accepted it'],
  'invalid-connect-token': ['ERR_INVALID_CONNECT_TOKEN', 'The connect token is not a valid netcode 1.02 token'],
  'connection-denied': ['ERR_CONNECTION_DENIED', 'The server denied the connection: it is full'],
  'connection-request-timed-out': ['ERR_CONNECTION_REQUEST_TIMED_OUT', 'No server answered the connection request in time'],
  'connection-response-timed-out': ['ERR_CONNECTION_RESPONSE_TIMED_OUT', 'The server did not confirm the challenge response in time'],
  'connection-timed-out': ['ERR_CONNECTION_TIMED_OUT', 'The server stopped answering'],
}

export interface ClientOptions extends DeliveryOptions, NetworkSimulatorOption {
  /** Resend period of connection requests and responses, ms (default 100: 10 Hz). */
  requestIntervalMs?: number
  /** Keep-alive period when nothing else was sent, ms (default 100). */
  keepAliveIntervalMs?: number
  /** Redundant disconnect packets on close (default 10, at disconnectIntervalMs, default 100). */
  disconnectPackets?: number
  disconnectIntervalMs?: number
  recvBufferSize?: number
  sendBufferSize?: number
  coalesceUs?: number
  engine?: 'shared' | 'dedicated'
}

export interface ClientEvents {
  state: [state: ClientState]
  /** data is a view valid during the callback (copy it to keep it); channel: its index in the channels option. */
  message: [data: Uint8Array, channel: number]
  /** The connection ended after it was established: by the server, a timeout, or close(). */
  disconnect: [state: ClientState]
  drain: []
  error: [error: Error]
}

/** The connection's link statistics (the delivery layer's, with channels), and the netcode client's drops. */
export interface ClientStats extends LinkStats {
  drops: { malformed: number; replayed: number; decryptionFailed: number; unknownAddress: number }
  clientIndex: number
  maxClients: number
}

export class ConnectError extends VolleyError {
  constructor(
    code: VolleyErrorCode,
    message: string,
    /** The client state the attempt ended in. */
    readonly state: ClientState,
  ) {
    super(code, message)
  }
}

export class Client extends EventEmitter<ClientEvents> {
  readonly #options: ClientOptions
  readonly #counters = new Float64Array(protocolStatsFields)
  readonly #delivery: DeliverySettings | null
  readonly #simulator: ReturnType<typeof networkSimulatorFields>
  #links: Float64Array | null = null
  #queue: SendQueue
  readonly #reading = { atMs: performance.now(), bytesIn: 0, bytesOut: 0 }
  #engine: Engine | undefined
  #id = 0
  #state: ClientState = 'disconnected'
  #open = false
  #closing: Promise<void> | undefined
  #resolveClosed: (() => void) | undefined
  #pending: { resolve: () => void; reject: (error: Error) => void } | undefined
  readonly #client: EngineClient

  constructor(options: ClientOptions = {}) {
    super()
    if (typeof options !== 'object' || options === null) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "options" argument must be an object. Received ${describe(options)}`)
    }
    for (const name of ['requestIntervalMs', 'keepAliveIntervalMs', 'disconnectIntervalMs'] as const) {
      const value = options[name]
      if (value !== undefined && !(typeof value === 'number' && value >= 1 && value <= 60_000)) {
        throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}" option must be from 1 to 60000 ms. Received ${describe(value)}`)
      }
    }
    this.#options = options
    this.#delivery = deliverySettings(options)
    this.#simulator = networkSimulatorFields(options.networkSimulator)
    this.#queue = new SendQueue(this.#delivery, () => this.#links, 0)
    this.#client = {
      onBatch: (slab, start, count) => this.#onBatch(slab, start, count),
      onError: (errno, count) => this.emit('error', systemError(errno, 'sendmmsg', { count })),
      onClosed: () => this.#onClosed(),
      onDrain: () => this.emit('drain'),
    }
  }

  get state(): ClientState {
    return this.#state
  }

  /**
   * Connects with a connect token (2048 bytes, or its base64). Resolves once connected; rejects with a
   * ConnectError whose code says why (denied, timed out, expired, invalid), or ERR_ABORTED.
   */
  connect(token: Uint8Array | string, options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      return this.#connect(token, options)
    } catch (error) {
      return Promise.reject(error) // bad arguments reject too, as the promise API promises
    }
  }

  #connect(token: Uint8Array | string, options: { signal?: AbortSignal }): Promise<void> {
    const bytes = typeof token === 'string' ? connectTokenFromBase64(token) : token
    const parsed = readConnectToken(bytes) // typed errors for a token that is not one
    if (this.#pending !== undefined || this.#state === 'connected' || this.#closing !== undefined) {
      return Promise.reject(new VolleyError('ERR_CLIENT_BUSY', `connect() needs an idle client; it is ${this.#state}`))
    }
    options.signal?.throwIfAborted()
    if (!this.#open) {
      const ipv6 = parsed.serverAddresses.some((address) => address.family === 6)
      const engine = this.#options.engine === 'dedicated' ? dedicatedEngine() : sharedEngine()
      try {
        const info = engine.open(
          {
            ipv6,
            ipv6Only: false,
            reuseAddress: false,
            reusePort: false,
            receiveBufferSize: this.#options.recvBufferSize ?? 256 << 10,
            sendBufferSize: this.#options.sendBufferSize ?? 256 << 10,
            address: '',
            port: 0,
            batchSize: 64,
            coalesceUs: this.#options.coalesceUs ?? 200,
            protocol: {
              kind: 'client',
              requestIntervalUs: Math.round((this.#options.requestIntervalMs ?? 100) * 1000),
              keepAliveIntervalUs: Math.round((this.#options.keepAliveIntervalMs ?? 100) * 1000),
              disconnectIntervalUs: Math.round((this.#options.disconnectIntervalMs ?? 100) * 1000),
              disconnectPackets: this.#options.disconnectPackets ?? 10,
              ...deliveryFields(this.#delivery),
              ...this.#simulator,
            },
          },
          this.#client,
        )
        this.#engine = engine
        this.#id = info.id
        this.#links = engine.peerLinks(info.id)
        this.#open = true
      } catch (error) {
        engine.releaseIfIdle()
        return Promise.reject(fromNativeError(error))
      }
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#pending = undefined
        ;(this.#engine as Engine).control(this.#id, ProtocolControl.disconnect)
        reject(new VolleyError('ERR_ABORTED', 'The connection attempt was aborted', { cause: options.signal?.reason }))
      }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending = {
        resolve: () => {
          options.signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (error) => {
          options.signal?.removeEventListener('abort', onAbort)
          reject(error)
        },
      }
      ;(this.#engine as Engine).control(this.#id, ProtocolControl.connect, 0, bytes)
    })
  }

  /**
   * Sends a message on a channel (options.channel, default 0): with channels configured, up to
   * maxMessageBytes; without, a raw payload of 1 to 1200 bytes. Returns false, queuing nothing, when the
   * connection's send queue (sendQueueBytes) or the engine's is full: 'drain' follows.
   */
  send(data: Uint8Array, options?: SendOptions): boolean {
    if (this.#state !== 'connected') throw new VolleyError('ERR_CLIENT_NOT_CONNECTED', `The client is ${this.#state}, not connected`)
    const channel = this.#queue.check(data, options)
    if (!this.#queue.admit(data.byteLength)) {
      ;(this.#engine as Engine).control(this.#id, ProtocolControl.watchPeer)
      return false
    }
    if ((this.#engine as Engine).enqueueToPeer(this.#client, this.#id, data, 0, channel)) return true
    this.#queue.cancel(data.byteLength)
    return false
  }

  /**
   * Bytes handed to send() that the connection has not yet released: not yet acknowledged on a reliable
   * channel, not yet sent on the others (as WebSocket.bufferedAmount). 0 without channels.
   */
  get bufferedAmount(): number {
    return this.#queue.queued
  }

  /**
   * The synchronised clock: the server's, as estimated from the ping/pong exchanges of the delivery layer
   * (ms, sub-millisecond resolution; the local monotonic clock without channels). peer.time() on the
   * server reads the same clock.
   */
  time(): number {
    return peerClockMs(this.#links, 0)
  }

  stats(): ClientStats {
    const c = this.#counters
    if (this.#engine !== undefined && this.#open) this.#engine.readProtocolStats(this.#id, c)
    return {
      ...readLinkStats(this.#links, 0, { packetsIn: c[0]!, bytesIn: c[1]!, packetsOut: c[2]!, bytesOut: c[3]! }, this.#reading),
      drops: { malformed: c[4]!, replayed: c[5]!, decryptionFailed: c[6]!, unknownAddress: c[7]! },
      clientIndex: c[8]!,
      maxClients: c[9]!,
    }
  }

  /** Disconnects (redundant disconnect packets go out first) and releases the socket. Harmless twice. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing
    if (!this.#open) {
      this.#closing = Promise.resolve()
      return this.#closing
    }
    this.#closing = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    ;(this.#engine as Engine).control(this.#id, ProtocolControl.stop)
    return this.#closing
  }

  #onBatch(slab: SlabView, start: number, count: number): void {
    forEachPeerRecord(slab, start, count, (kind, code, _peer, at, length) => {
      if (kind === PeerRecordKind.payload) {
        if (this.#state === 'connected') this.emit('message', new Uint8Array(slab.buffer, at, length), code)
      } else if (kind === PeerRecordKind.largePayload) {
        const bytes = (this.#engine as Engine).takeLarge(slab.u32[at >>> 2]!)
        if (this.#state === 'connected' && bytes !== null) this.emit('message', new Uint8Array(bytes), code)
      } else if (kind === PeerRecordKind.drain) {
        this.emit('drain')
      } else if (kind === PeerRecordKind.clientState) {
        this.#onState(stateByCode[(code << 24) >> 24] ?? 'disconnected')
      }
    })
  }

  #onState(state: ClientState): void {
    const previous = this.#state
    this.#state = state
    this.emit('state', state)
    if (state === 'connected') {
      this.#queue = new SendQueue(this.#delivery, () => this.#links, 0) // the I/O thread's counts start again
      const pending = this.#pending
      this.#pending = undefined
      pending?.resolve()
      return
    }
    if (state === 'sending-connection-request' || state === 'sending-connection-response') return
    const failure = errorByState[state]
    if (this.#pending !== undefined) {
      const pending = this.#pending
      this.#pending = undefined
      const [code, message] = failure ?? ['ERR_CONNECTION_TIMED_OUT' as const, `The connection attempt ended: ${state}`]
      pending.reject(new ConnectError(code, message, state))
    } else if (previous === 'connected') {
      this.emit('disconnect', state)
    }
  }

  #onClosed(): void {
    if (this.#engine !== undefined) this.#engine.readProtocolStats(this.#id, this.#counters)
    this.#open = false
    if (this.#state === 'connected') {
      this.#state = 'disconnected'
      this.emit('state', 'disconnected')
      this.emit('disconnect', 'disconnected')
    }
    this.#pending?.reject(new VolleyError('ERR_ABORTED', 'The client was closed while connecting'))
    this.#pending = undefined
    this.#resolveClosed?.()
  }
}
