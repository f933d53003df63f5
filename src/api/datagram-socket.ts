// Layer 0: a raw UDP socket on the native engine. Received datagrams arrive in batches (one event per
// recvmmsg batch, payloads as views valid during the callback); sends are queued and handed to the
// I/O thread once per event-loop turn, with back-pressure when the queue is full. Where the addon cannot
// load, the fallback engine (engine/fallback/datagrams.ts) does the same on node:dgram.
import { lookup } from 'node:dns/promises'
import { EventEmitter } from 'node:events'
import { type AddressInfo, AddressFormatter, type IpCodec, ipFamily, isIpv4Mapped, javascriptIp, maxIpv4DatagramSize, parseIp, type QueuedAddress } from '../util/ip.ts'
import { type NativeSocketInfo, type NativeSocketOptions, loadAddon, openError } from '../engine/native/addon.ts'
import { checkFallbackSupports, fallbackReason } from '../engine/choose.ts'
import { type FallbackDatagramEngine, maxInFlight, sharedFallbackDatagramEngine } from '../engine/fallback/datagrams.ts'
import type { OpeningClient } from '../engine/fallback/sockets.ts'
import { DrainWaiters } from '../util/drain-waiters.ts'
import { LifetimeSignal } from '../util/lifetime-signal.ts'
import { type Engine, type EngineClient, type SlabView, engineFor } from '../engine/engine.ts'
import { Operation, RecvFlag, align8, layout } from '../engine/layout.ts'
import { type Settled, booleanOption, checkOptions, integerOption, socketSettings } from '../util/options.ts'
import {
  VolleyError,
  VolleyRangeError,
  VolleyTypeError,
  describe,
  surfaceLater,
  systemError,
} from '../util/errors.ts'
import { checkAttached, copyBytes } from '../util/bytes.ts'

/** A socket's address family: 'udp4' (IPv4) or 'udp6' (IPv6, dual-stack unless ipv6Only). */
export type SocketType = 'udp4' | 'udp6'

/** createDatagramSocket()'s options. All are optional. */
export interface DatagramSocketOptions {
  /** 'udp4' (default) or 'udp6'. A udp6 socket is dual-stack unless ipv6Only is set. */
  type?: SocketType | undefined
  /** Datagrams read per recvmmsg call and delivered per 'messages' event: 1..1024, default 64. */
  batchSize?: number | undefined
  /** SO_RCVBUF in bytes (the kernel doubles it and caps it at net.core.rmem_max). */
  recvBufferSize?: number | undefined
  /** SO_SNDBUF in bytes (capped at net.core.wmem_max). */
  sendBufferSize?: number | undefined
  /** SO_REUSEPORT: several sockets may bind the same address and port; the kernel spreads datagrams. */
  reusePort?: boolean | undefined
  /** SO_REUSEADDR. */
  reuseAddr?: boolean | undefined
  /** IPV6_V6ONLY for udp6 sockets. */
  ipv6Only?: boolean | undefined
  /** 'shared' (default): one I/O thread for all sockets of this thread; 'dedicated': a thread of its own. */
  engine?: 'shared' | 'dedicated' | undefined
  /**
   * Interrupt moderation, in microseconds. When datagrams stream in, the I/O thread waits before its next
   * read, about as long as a full batch takes to arrive and at most this long, so that it hands over full
   * batches: far less CPU per datagram for at most this much added latency under load. A datagram that
   * arrives alone is never held back. 0 turns it off for this socket. Default 200.
   */
  coalesceUs?: number | undefined
  /**
   * Closes the socket when it aborts, as node:dgram's createSocket option does (a signal aborted already:
   * the socket starts closed). bind() and send() then fail with ERR_SOCKET_CLOSED, the signal's reason the cause.
   */
  signal?: AbortSignal | undefined
}

/** One received datagram, in a 'messages' batch. */
export interface Datagram {
  /** A view into the batch buffer: valid during the callback only, copy it to keep it. */
  data: Uint8Array
  address: string
  port: number
  family: 'IPv4' | 'IPv6'
  /** The datagram was larger than the receive buffer slot and was cut. */
  truncated: boolean
}

/** Where a datagram came from, as node:dgram's 'message' event gives it. */
export interface RemoteInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
  size: number
}

/** What socket.stats() returns. */
export interface DatagramSocketStats {
  packetsIn: number
  bytesIn: number
  /** recvmmsg calls that returned datagrams; packetsIn / batchesIn is the mean batch size. */
  batchesIn: number
  // Between light turns the engine's I/O thread leaves reading to JavaScript's own event loop, until a turn
  // finds more than a few datagrams waiting.
  /**
   * Of batchesIn, those read on the JavaScript thread itself rather than the I/O thread: under light
   * (request/response) traffic, which saves a thread wake-up per datagram.
   */
  batchesInInline: number
  packetsOut: number
  bytesOut: number
  /** sendmmsg calls. */
  batchesOut: number
  /**
   * Of batchesOut, those sent from the JavaScript thread itself: a small flush (up to 2 KiB of datagrams)
   * while the I/O thread is idle, and replies sent while reading inline (batchesInInline).
   */
  batchesOutInline: number
  drops: {
    // The kernel's SO_MEMINFO counter, read as a queue that may have been full drains.
    /** Dropped by the kernel because the receive buffer was full. */
    receiveBufferFull: number
    /** send() calls refused because the send queue was full (the caller was told: send returned false). */
    sendQueueFull: number
    /** Queued datagrams discarded because the socket closed before they could be sent. */
    closed: number
    /** Received datagrams cut to the receive slot size. */
    truncated: number
    /**
     * Datagrams send() accepted while the socket was binding (a host name resolving, or the fallback engine
     * binding in the background), discarded because that bind failed.
     */
    bindFailed: number
  }
  errors: { send: number; receive: number }
  queue: {
    /** Datagrams accepted by send() and not yet handed to the kernel. */
    depth: number
  }
  /** Effective kernel buffer sizes, as the kernel reports them. */
  recvBufferSize: number
  sendBufferSize: number
}

/** The events a DatagramSocket emits, with their listeners' arguments. */
export interface DatagramSocketEvents {
  /** A batch of received datagrams (their data valid during the callback only). */
  messages: [batch: Datagram[]]
  /** One received datagram, as node:dgram's 'message': a copy of its bytes, the caller's to keep. */
  message: [data: Buffer, rinfo: RemoteInfo]
  /** The socket is bound. */
  listening: []
  /** send() takes datagrams again after it returned false. */
  drain: []
  /** A socket error (a failed send or receive). */
  error: [error: Error]
  /** The socket closed. */
  close: []
}

type State = 'unbound' | 'bound' | 'closing' | 'closed'

/** A bind() under way: whether close() came meanwhile. */
interface Binding {
  closeAfter: boolean
}

/** A datagram send() accepted while a bind() was under way (copied), to go to the engine once bound. */
interface HeldSend {
  data: Uint8Array
  port: number
  destination: QueuedAddress
}

/**
 * How long a close() waits for held datagrams that the engine's queue has no room for (the kernel refusing
 * its sends: their path is down) before it drops them, counted: as the engine waits for its own (1 s).
 */
const heldCloseWaitMs = 1000

const knownOptions = new Set([
  'type',
  'batchSize',
  'recvBufferSize',
  'sendBufferSize',
  'reusePort',
  'reuseAddr',
  'ipv6Only',
  'engine',
  'coalesceUs',
  'signal',
])

/**
 * A UDP socket in the manner of node:dgram that reads and sends datagrams in batches, on the native I/O
 * thread (or the fallback engine). 'messages' delivers a whole batch per event; 'message' one datagram at a
 * time, as node:dgram does.
 */
export class DatagramSocket extends EventEmitter<DatagramSocketEvents> {
  /** 'udp4' or 'udp6'. */
  readonly type: SocketType
  readonly #options: Settled<Omit<DatagramSocketOptions, 'type' | 'signal'>>
  #engine: Engine | FallbackDatagramEngine | undefined
  /** bind() is under way (a host name resolving, the fallback engine binding): sends wait, and a close() waits for it. */
  #binding: Binding | undefined
  /**
   * Datagrams accepted while bind() was under way, in order: they go to the engine once bound, as far as its
   * queue takes them, and the rest at its next 'drain' (what send() accepts meanwhile queues behind them).
   */
  #held: HeldSend[] = []
  /** send() refused a datagram for the held ones (their count at maxInFlight): its caller waits for a 'drain'. */
  #heldRefused = false
  /** close() waits for held datagrams until this fires (heldCloseWaitMs), then drops them. */
  #heldCloseTimer: NodeJS.Timeout | undefined
  /** Held datagrams a close() dropped (counted in drops.closed, as the engine counts its own). */
  #heldDropped = 0
  /** The fallback engine could not make the bind a send() asked for (it binds in the background). */
  #openFailure: Error | undefined
  /** Datagrams send() accepted while a bind was under way that then failed: never sent. */
  #bindFailed = 0
  #id = 0
  #state: State = 'unbound'
  #local: AddressInfo | undefined
  #formatter: AddressFormatter | undefined
  #closed: Promise<void> | undefined
  #resolveClosed: (() => void) | undefined
  #referenced = true
  /** This socket holds one of its engine's references (from open to close, while referenced). */
  #holdsReference = false
  #accepted = 0
  #refused = 0
  /** drained(): whether a send was refused since the last 'drain', and who waits for the next. */
  readonly #drain = new DrainWaiters()
  #bufferSizes = { recv: 0, send: 0 }
  readonly #statsScratch = new Float64Array(layout.statsFields)
  #finalStats: Float64Array | undefined
  readonly #client: OpeningClient
  /**
   * The fallback engine is still binding for a send() ('listening' to come), and whether a 'drain' came
   * meanwhile: node:dgram reports its first sends before the bind resolves, and 'drain' waits for 'listening'.
   */
  #bindingForSend: { drained: boolean } | undefined
  readonly #lifetime: LifetimeSignal

  constructor(options: DatagramSocketOptions = {}) {
    super()
    checkOptions('"options" argument', options, knownOptions)
    this.#lifetime = new LifetimeSignal(options.signal)
    const type = options.type === undefined ? 'udp4' : options.type // (null is refused, as node:dgram does)
    if (type !== 'udp4' && type !== 'udp6') {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "type" option must be 'udp4' or 'udp6'. Received ${describe(type)}`)
    }
    if (type === 'udp4' && options.ipv6Only === true) {
      // node:dgram's bind fails with a bare EINVAL; the native engine would ignore it.
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "ipv6Only" option applies to 'udp6' sockets only; this one is 'udp4'`)
    }
    this.type = type
    this.#options = {
      batchSize: integerOption('batchSize', options.batchSize, 64, 1, layout.maxBatchSize),
      ...socketSettings(options, 0), // buffer sizes 0: the kernel's defaults
      reusePort: booleanOption('reusePort', options.reusePort),
      reuseAddr: booleanOption('reuseAddr', options.reuseAddr),
      ipv6Only: booleanOption('ipv6Only', options.ipv6Only),
    }
    const socket = this
    this.#client = {
      onBatch: (slab, start, count) => socket.#onBatch(slab, start, count),
      onError: (errno, count, operation) => {
        socket.emit('error', systemError(errno, operation === Operation.send ? 'sendmmsg' : 'recvmmsg', { count }))
      },
      onClosed: () => socket.#onClosed(),
      onDrain: () => {
        if (socket.#held.length > 0) {
          // The engine's queue refused a held datagram: it has room again.
          if (!socket.#sendHeld()) return
          if (socket.#state === 'closing') return socket.#closeInEngine()
          if (!socket.#heldRefused) return // no caller was told false
          socket.#heldRefused = false
        }
        if (socket.#state !== 'bound') return
        if (socket.#bindingForSend !== undefined) {
          socket.#bindingForSend.drained = true
          return
        }
        socket.#drain.drain()
        socket.emit('drain')
      },
      // The bind a send() made, on the fallback engine: where it is bound, now that it is.
      onOpened: (info) => {
        const drained = socket.#bindingForSend?.drained === true
        socket.#bindingForSend = undefined
        socket.#takeBound(info)
        socket.#announce()
        if (drained) socket.#client.onDrain()
      },
      onOpenFailed: (error) => {
        socket.#bindingForSend = undefined
        socket.#openFailure = error
      },
    }
    this.#lifetime.watch(() => void this.close())
  }

  /**
   * Binds to a port (0: any free port) and address (default: every address of the socket's family). What is
   * sent meanwhile (while a host name resolves, or the fallback engine binds) is sent once bound, as
   * node:dgram does; a close() meanwhile lets the bind finish, sends that, then closes the socket.
   */
  async bind(port = 0, address?: string): Promise<AddressInfo> {
    refuseCallback('bind', arguments)
    validatePort(port, true)
    if (address !== undefined && typeof address !== 'string') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "address" argument must be of type string. Received ${describe(address)}`)
    }
    this.#assertCanBind()
    // Chosen as the call begins, not after a host name resolves (VOLLEY_ENGINE may have changed by then).
    const fallback = fallbackReason()
    const binding: Binding = { closeAfter: false }
    this.#binding = binding
    let engine: Engine | FallbackDatagramEngine | undefined
    let info: NativeSocketInfo
    try {
      const literal = await this.#bindAddress(address ?? '', fallback)
      if (fallback !== undefined) {
        engine = this.#fallbackEngine(fallback)
        info = await engine.open(this.#socketOptions(port, literal), this.#client)
      } else {
        engine = engineFor(this, this.#options.engine)
        info = openNative(engine, this.#socketOptions(port, literal), this.#client)
      }
    } catch (error) {
      engine?.releaseIfIdle()
      this.#binding = undefined
      // Accepted by send(), never sent: the bind that would have sent them failed.
      this.#accepted -= this.#held.length
      this.#bindFailed += this.#held.length
      this.#held = []
      if (this.#heldRefused) this.#drain.drain() // nothing is queued now: what send() refused may be sent again
      this.#heldRefused = false
      if (binding.closeAfter) this.#closeUnbound()
      throw error
    }
    this.#binding = undefined
    // A close() meanwhile: what was sent before it goes out, then the socket closes (no 'listening': it is
    // closing by the next tick).
    const local = this.#takeBound(info)
    this.#opened(engine, info, 'never')
    // The held datagrams go before 'listening', whose listener may close the socket. What the engine's queue
    // has no room for goes at its 'drain'; a send refused meanwhile waits for that, else for one now.
    if (this.#sendHeld() && this.#heldRefused && !binding.closeAfter) {
      this.#heldRefused = false
      process.nextTick(() => this.#client.onDrain())
    }
    if (binding.closeAfter) this.#beginClose()
    else this.#announce()
    return local
  }

  /** The address to bind: '' (any), or an IP literal of the socket's family, a host name resolved to one. */
  async #bindAddress(address: string, fallback: string | undefined): Promise<string> {
    let literal = address
    if (literal !== '' && ipFamily(literal) === 0) {
      // A host name: resolve it once, to an address of the socket's family.
      literal = (await lookup(literal, { family: this.type === 'udp4' ? 4 : 6 })).address
    }
    if (literal !== '' && ipFamily(literal) === 6 && this.type === 'udp4') {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Cannot bind a udp4 socket to the IPv6 address '${literal}'`)
    }
    if (literal !== '' && ipFamily(literal) === 4 && this.type === 'udp6') {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Cannot bind a udp6 socket to the IPv4 address '${literal}' (use '::ffff:${literal}')`)
    }
    if (literal !== '' && parseIp(this.#ipCodec({ fallback }), literal) === null) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "address" argument must be an IP address, with a scope that names an interface of this machine. Received '${literal}'`)
    }
    return literal
  }

  /**
   * What turns addresses into bytes and back: the open engine's; before one is open, the addon's, or on the
   * fallback engine its JavaScript equivalent (chosen: the engine a bind() under way chose, else asked now).
   */
  #ipCodec(chosen?: { fallback: string | undefined }): IpCodec {
    const engine = this.#engine
    if (engine !== undefined) return 'ip' in engine ? engine.ip : engine.addon
    const fallback = chosen === undefined ? fallbackReason() : chosen.fallback
    return fallback === undefined ? loadAddon() : javascriptIp
  }

  /**
   * Queues a datagram. Returns false when the send queue is full: the datagram was not queued; send it
   * again after 'drain'. Throws on invalid arguments and after close().
   */
  send(data: Uint8Array | ArrayBufferView | string, port: number, address: string): boolean {
    refuseCallback('send', arguments)
    if (arguments.length > 3) {
      throw new VolleyTypeError(
        'ERR_INVALID_ARG_TYPE',
        `send() takes (data, port, address): node:dgram's offset and length are not taken (send a subarray). Received ${arguments.length} arguments`,
      )
    }
    if (this.#closedOrClosing()) {
      throw this.#closedError('Socket is closed: send() after close()')
    }
    const bytes = toBytes(data)
    // Checked before the address is parsed, against the largest this socket's family can send.
    if (this.type === 'udp4' && bytes.byteLength > maxIpv4DatagramSize) {
      throw new VolleyRangeError(
        'ERR_DATAGRAM_TOO_LARGE',
        `A datagram from a udp4 socket carries at most ${maxIpv4DatagramSize} bytes. Received ${bytes.byteLength}`,
      )
    }
    if (bytes.byteLength > layout.maxDatagramSize) {
      throw new VolleyRangeError(
        'ERR_DATAGRAM_TOO_LARGE',
        `A datagram from a udp6 socket carries at most ${layout.maxDatagramSize} bytes (${maxIpv4DatagramSize} to an IPv4 address). Received ${bytes.byteLength}`,
      )
    }
    validatePort(port, false)
    if (typeof address !== 'string') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "address" argument must be of type string. Received ${describe(address)}`)
    }
    const destination = parseIp(this.#ipCodec(), address)
    if (destination === null) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "address" argument must be an IP address literal. Received '${address}'`)
    }
    if (destination.family === 6 && this.type === 'udp4') {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `A udp4 socket cannot send to the IPv6 address '${address}'`)
    }
    // IPv4 (an IPv4-mapped IPv6 address included) counts its own header in the 65,535: 20 bytes fewer.
    if (bytes.byteLength > maxIpv4DatagramSize && (destination.family === 4 || isIpv4Mapped(destination.bytes))) {
      throw new VolleyRangeError(
        'ERR_DATAGRAM_TOO_LARGE',
        `A datagram to an IPv4 address carries at most ${maxIpv4DatagramSize} bytes. Received ${bytes.byteLength}`,
      )
    }
    if (this.#binding !== undefined || this.#held.length > 0) {
      // bind() is under way, or what it held is not all in the engine's queue yet: sent once it is bound and
      // after those, as node:dgram does, up to what the fallback engine takes in flight (then false, and
      // 'drain' once they are sent).
      if (this.#held.length >= maxInFlight) {
        this.#refused++
        this.#heldRefused = true
        this.#drain.block()
        return false
      }
      this.#held.push({ data: copyBytes(bytes), port, destination })
      this.#accepted++
      return true
    }
    // Checked first: a send refused for its address binds nothing.
    if (this.#state === 'unbound' && !this.#bindForSend()) {
      this.#bindFailed++ // taken, as node:dgram takes it, and never sent
      return true
    }
    const engine = this.#engine as Engine | FallbackDatagramEngine
    if (engine.enqueue(this.#client, this.#id, bytes, port, destination)) {
      this.#accepted++
      return true
    }
    this.#refused++
    this.#drain.block()
    return false
  }

  /**
   * Resolves at once unless a send was refused since the last 'drain', else at the next 'drain' (as
   * client.drained() and peer.drained()). Rejects with ERR_SOCKET_CLOSED once close() was called, and
   * ABORT_ERR when options.signal aborts.
   */
  drained(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    return this.#drain.wait(options, this.#closedOrClosing() ? this.#closedError('Socket is closed: nothing drains after close()') : null)
  }

  /** close() was called (while the fallback engine bound the socket, too). */
  #closedOrClosing(): boolean {
    return this.#state === 'closing' || this.#state === 'closed' || this.#binding?.closeAfter === true
  }

  #closedError(message: string): VolleyError {
    return this.#lifetime.closedError('ERR_SOCKET_CLOSED', message)
  }

  /**
   * Hands queued datagrams to the I/O thread now instead of at the end of this event-loop turn (up to 2 KiB of
   * them, while that thread sleeps, are sent before this returns).
   */
  flush(): void {
    if (this.#state === 'bound') this.#engine?.flush()
  }

  /** Where the socket is bound. Throws ERR_SOCKET_NOT_BOUND before bind() resolves and after close(). */
  address(): AddressInfo {
    if (this.#local === undefined || this.#state !== 'bound') {
      throw new VolleyError('ERR_SOCKET_NOT_BOUND', 'The socket is not bound')
    }
    return { ...this.#local }
  }

  /** Closes the socket after the datagrams queued so far are sent. Closing twice is harmless. */
  close(): Promise<void> {
    refuseCallback('close', arguments)
    if (this.#closed) return this.#closed
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#lifetime.release()
    if (this.#binding !== undefined) {
      this.#binding.closeAfter = true // bind() is under way: closed once it ends
    } else if (this.#state === 'unbound') {
      this.#closeUnbound()
    } else {
      this.#beginClose()
    }
    return this.#closed
  }

  /** close() of a socket never bound: at once. */
  #closeUnbound(): void {
    this.#state = 'closed'
    // 'close' before the promise settles, as for a bound socket: an await of close() finds it emitted.
    process.nextTick(() => {
      this.emit('close')
      this.#resolveClosed?.()
    })
  }

  /** close() of a bound socket: the engine closes it once the datagrams queued so far are out. */
  #beginClose(): void {
    this.#state = 'closing'
    this.#drain.fail(() => this.#closedError('Socket is closed: nothing drains after close()'))
    // The queued datagrams go out and the promise settles, unref() or not (as node:dgram's close).
    const engine = this.#engine as Engine | FallbackDatagramEngine
    if (!this.#holdsReference) {
      this.#holdsReference = true
      engine.ref()
    }
    // Held datagrams the engine's queue had no room for: closed once they are in it (the client's onDrain),
    // or once heldCloseWaitMs have passed, without those still held.
    if (this.#held.length === 0) return this.#closeInEngine()
    this.#heldCloseTimer = setTimeout(() => {
      this.#heldDropped += this.#held.length
      this.#held = []
      this.#closeInEngine()
    }, heldCloseWaitMs)
  }

  #closeInEngine(): void {
    clearTimeout(this.#heldCloseTimer)
    ;(this.#engine as Engine | FallbackDatagramEngine).close(this.#id)
  }

  /** Hands the held datagrams to the engine, in order, as far as its queue takes them: whether all went. */
  #sendHeld(): boolean {
    const engine = this.#engine as Engine | FallbackDatagramEngine
    const held = this.#held
    let sent = 0
    try {
      while (sent < held.length) {
        const { data, port, destination } = held[sent] as HeldSend
        if (!engine.enqueue(this.#client, this.#id, data, port, destination)) break // its 'drain' goes on
        sent++
      }
    } finally {
      held.splice(0, sent) // (an engine stopped at exit throws: what it took is not held again)
    }
    return held.length === 0
  }

  /** Lets the process exit while this socket is open (as node:dgram's unref). */
  unref(): this {
    if (this.#referenced) {
      this.#referenced = false
      if (this.#state === 'bound' && this.#holdsReference) {
        this.#holdsReference = false
        this.#engine?.unref()
      }
    }
    return this
  }

  /** Undoes unref(). */
  ref(): this {
    if (!this.#referenced) {
      this.#referenced = true
      if (this.#state === 'bound' && !this.#holdsReference) {
        this.#holdsReference = true
        this.#engine?.ref()
      }
    }
    return this
  }

  /** The socket's counters: packets, bytes, batches, drops by cause, errors and the send queue. */
  stats(): DatagramSocketStats {
    let counters = this.#finalStats
    if (counters === undefined) {
      counters = this.#statsScratch
      if (this.#engine === undefined || !this.#engine.readStats(this.#id, counters)) counters.fill(0)
    }
    const [packetsIn, bytesIn, batchesIn, packetsOut, bytesOut, batchesOut, sendErrors, receiveErrors, kernelDrops, truncated, sendDropped, batchesOutInline, batchesInInline] =
      counters as unknown as number[]
    return {
      packetsIn: packetsIn!,
      bytesIn: bytesIn!,
      batchesIn: batchesIn!,
      batchesInInline: batchesInInline!,
      packetsOut: packetsOut!,
      bytesOut: bytesOut!,
      batchesOut: batchesOut!,
      batchesOutInline: batchesOutInline!,
      drops: { receiveBufferFull: kernelDrops!, sendQueueFull: this.#refused, closed: sendDropped! + this.#heldDropped, truncated: truncated!, bindFailed: this.#bindFailed },
      errors: { send: sendErrors!, receive: receiveErrors! },
      queue: { depth: Math.max(0, this.#accepted - packetsOut! - sendErrors! - sendDropped! - this.#heldDropped) },
      recvBufferSize: this.#bufferSizes.recv,
      sendBufferSize: this.#bufferSizes.send,
    }
  }

  #assertCanBind(): void {
    if (this.#state === 'bound' || this.#binding !== undefined) throw new VolleyError('ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound')
    if (this.#state !== 'unbound') throw this.#closedError('Socket is closed')
  }

  #socketOptions(port: number, address: string): NativeSocketOptions {
    return {
      ipv6: this.type === 'udp6',
      ipv6Only: this.#options.ipv6Only,
      reuseAddress: this.#options.reuseAddr,
      reusePort: this.#options.reusePort,
      receiveBufferSize: this.#options.recvBufferSize,
      sendBufferSize: this.#options.sendBufferSize,
      address,
      port,
      batchSize: this.#options.batchSize,
      coalesceUs: this.#options.coalesceUs,
    }
  }

  /**
   * The bind a send() makes (any address, any port), as node:dgram does. On the fallback engine it completes
   * in the background: 'listening' comes once it has, and a failure is reported then (#onClosed). False when
   * it failed at once (the native engine, out of file descriptors say): an 'error' event carries the system
   * error, as node:dgram's, and the next send() binds anew.
   */
  #bindForSend(): boolean {
    const fallback = fallbackReason()
    const options = this.#socketOptions(0, '')
    if (fallback !== undefined) {
      // Where it lands is known at onOpened: until then address() throws, as node:dgram's does.
      const engine = this.#fallbackEngine(fallback)
      const info = engine.openNow(options, this.#client)
      this.#bindingForSend = { drained: false }
      this.#opened(engine, info, 'when-bound')
      return true
    }
    const engine = engineFor(this, this.#options.engine)
    let info: NativeSocketInfo
    try {
      info = openNative(engine, options, this.#client)
    } catch (error) {
      process.nextTick(() => this.emit('error', error as Error))
      return false
    }
    this.#takeBound(info)
    // Not inside the send() that binds, before its datagram is queued.
    this.#opened(engine, info, 'next-tick')
    return true
  }

  /** The fallback engine, if it runs this socket's options (reusePort needs a Node whose node:dgram has it: ERR_FALLBACK_UNSUPPORTED). */
  #fallbackEngine(fallback: string): FallbackDatagramEngine {
    checkFallbackSupports({ reusePort: this.#options.reusePort }, fallback)
    return sharedFallbackDatagramEngine()
  }

  /**
   * The socket is open: 'listening' now (bind(): before it resolves, as node:dgram emits it before its bind
   * callback; a listener that throws does not fail the bind that succeeded), on the next tick, once the
   * fallback engine has bound it (onOpened), or never (closing already).
   */
  #opened(engine: Engine | FallbackDatagramEngine, info: NativeSocketInfo, listening: 'now' | 'next-tick' | 'when-bound' | 'never'): void {
    this.#engine = engine
    this.#id = info.id
    this.#formatter = new AddressFormatter(this.#ipCodec())
    this.#state = 'bound'
    this.#holdsReference = true // open() took one
    if (!this.#referenced) {
      this.#holdsReference = false
      engine.unref()
    }
    if (listening === 'now') this.#announce()
    else if (listening === 'next-tick') process.nextTick(() => this.#announce())
  }

  /** Where the socket is bound, and the buffer sizes the kernel granted. */
  #takeBound(info: NativeSocketInfo): AddressInfo {
    this.#local = { address: info.address, family: info.family === 4 ? 'IPv4' : 'IPv6', port: info.port }
    this.#bufferSizes = { recv: info.receiveBufferSize, send: info.sendBufferSize }
    return { ...this.#local }
  }

  #announce(): void {
    if (this.#state !== 'bound') return
    try {
      this.emit('listening')
    } catch (error) {
      surfaceLater(error)
    }
  }

  #onBatch(slab: SlabView, start: number, count: number): void {
    if (this.#state !== 'bound') return
    const wantBatch = this.listenerCount('messages') > 0
    const wantEach = this.listenerCount('message') > 0
    if (!wantBatch && !wantEach) return
    const { u8, u16, u32, buffer } = slab
    const formatter = this.#formatter as AddressFormatter
    const batch: Datagram[] = wantBatch ? new Array<Datagram>(count) : []
    let at = start
    // A throwing 'message' handler costs nobody the rest of the batch (surfaceLater).
    for (let i = 0; i < count; i++) {
      const length = u32[at >>> 2]!
      const port = u16[(at + 4) >>> 1]!
      const v4 = u8[at + 6] === 4
      const datagram: Datagram = {
        data: new Uint8Array(buffer, at + layout.recvHeaderSize, length),
        address: v4 ? formatter.v4(u8, u32, at + 8) : formatter.v6(u8, u32, at + 8),
        port,
        family: v4 ? 'IPv4' : 'IPv6',
        truncated: (u8[at + 7]! & RecvFlag.truncated) !== 0,
      }
      if (wantBatch) batch[i] = datagram
      if (wantEach) {
        try {
          this.emit('message', Buffer.copyBytesFrom(datagram.data), {
            address: datagram.address,
            family: datagram.family,
            port,
            size: length,
          })
        } catch (error) {
          surfaceLater(error)
        }
        if (this.#state !== 'bound') break
      }
      at += align8(layout.recvHeaderSize + length)
    }
    if (wantBatch && this.#state === 'bound') this.emit('messages', batch)
  }

  #onClosed(): void {
    const engine = this.#engine as Engine | FallbackDatagramEngine
    const final = new Float64Array(layout.statsFields)
    // The engine forgets the socket's counters after this event: keep the last reading.
    this.#finalStats = engine.readStats(this.#id, final) ? final : this.#statsScratch
    // What this socket holds, whatever ref() or unref() said while it closed.
    if (this.#holdsReference) engine.unref()
    this.#holdsReference = false
    const openFailure = this.#openFailure
    this.#openFailure = undefined
    if (openFailure !== undefined) {
      // The fallback engine could not make the bind a send() asked for: what send() took was never sent.
      this.#bindFailed += this.#accepted
      this.#accepted = 0
      if (this.#state === 'bound') {
        // As node:dgram: an 'error' event, and unbound again (the next send() binds anew).
        this.#engine = undefined
        this.#local = undefined
        this.#formatter = undefined
        this.#finalStats = undefined
        this.#state = 'unbound'
        this.#drain.drain() // nothing is queued now: what send() refused may be sent again
        this.emit('error', openFailure)
        return
      }
    }
    this.#state = 'closed'
    this.#resolveClosed?.()
    this.emit('close')
  }
}

/**
 * node:dgram's bind(), send() and close() take a callback; these return a promise (bind, close) or a
 * boolean (send). Code ported from node:dgram that passes one would wait for a call that never comes.
 */
function refuseCallback(method: 'bind' | 'send' | 'close', given: IArguments): void {
  for (let i = 0; i < given.length; i++) {
    if (typeof given[i] !== 'function') continue
    const instead = method === 'send' ? "it returns false when the queue is full ('drain' follows) and reports a refused datagram as an 'error' event" : 'it returns a promise'
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `Unlike node:dgram's, ${method}() takes no callback: ${instead}. Received a function as argument ${i + 1}`)
  }
}

/** A native engine's open; its failure as a system error naming the address, the engine let go if it has no socket. */
function openNative(engine: Engine, options: NativeSocketOptions, client: EngineClient): NativeSocketInfo {
  try {
    return engine.open(options, client)
  } catch (error) {
    engine.releaseIfIdle()
    throw openError(error, options)
  }
}

/** A new DatagramSocket (as node:dgram's createSocket, with options only). */
export function createDatagramSocket(options?: DatagramSocketOptions): DatagramSocket {
  return new DatagramSocket(options)
}

function validatePort(port: unknown, allowZero: boolean): asserts port is number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new VolleyRangeError(
      'ERR_SOCKET_BAD_PORT',
      `Port should be an integer from ${allowZero ? 0 : 1} to 65535. Received ${describe(port)}`,
    )
  }
}

function toBytes(data: unknown): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data)
  if (!ArrayBuffer.isView(data)) {
    throw new VolleyTypeError(
      'ERR_INVALID_ARG_TYPE',
      `The "data" argument must be a string, a Buffer, a TypedArray or a DataView. Received ${describe(data)}`,
    )
  }
  checkAttached(data)
  return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}
