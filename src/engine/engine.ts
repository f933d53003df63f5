// The JavaScript half of an engine: owns the slabs shared with the I/O thread, turns the engine's
// event list into calls on sockets (one native crossing per drain), and queues sends into send slabs
// that are handed over once per event-loop turn or when full.
import { checkNotExiting, exitingError, stopAtExit } from './process-exit.ts'
import { type Addon, type NativeEngine, type NativeSocketInfo, type NativeSocketOptions, loadAddon } from './native/addon.ts'
import { EventType, ProtocolControl, ReleasedSlabsWord, align8, layout } from './layout.ts'
import { fromNativeError, surfaceLater } from '../util/errors.ts'
import { reportCappedBuffers } from './socket-buffers.ts'
import type { QueuedAddress } from '../util/ip.ts'

/**
 * Payloads above this skip the send slabs (one native call each): slab records are datagram-sized (at most
 * layout.maxDatagramSize), and a large message would crowd a 256 KiB slab anyway.
 */
const largeSendBytes = 32 * 1024

/** What an engine calls on the sockets it serves. */
export interface EngineClient {
  onBatch(slab: SlabView, start: number, count: number): void
  onError(errno: number, count: number, operation: number): void
  onClosed(): void
  onDrain(): void
}

/**
 * What a Server or Client asks of its engine once its socket is open: the native engine (Engine), or the
 * fallback engine on node:dgram (engine/fallback/engine.ts) where the addon cannot load. Each opens sockets its own
 * way (the native open is synchronous, the fallback's binds asynchronously); choose.ts says which runs.
 */
export interface ProtocolEngine {
  readonly stopped: boolean
  releaseIfIdle(): void
  ref(): void
  unref(): void
  readProtocolStats(id: number, out: Float64Array): boolean
  peerCounters(id: number): Float64Array | null
  peerLinks(id: number): Float64Array | null
  control(id: number, op: number, arg?: number, data?: Uint8Array, suffix?: number): void
  enqueueToPeer(client: EngineClient, socketId: number, data: Uint8Array, peer: number, channel?: number): boolean
  takeLarge(id: number): ArrayBuffer | null
}

/**
 * Views over one slab. The memory is the addon's (native/engine/shared_memory.h): a buffer over it that JavaScript
 * detaches takes its share of the memory along, so the I/O thread never writes into freed memory, and the
 * slab is seen again through a new buffer over the same memory.
 */
export class SlabView {
  buffer!: ArrayBuffer
  u8!: Uint8Array
  u16!: Uint16Array
  u32!: Uint32Array
  /** For the 64-bit fields of records (client ids). */
  view!: DataView
  readonly #reopen: () => ArrayBuffer | null

  /** reopen: a new buffer over the slab's memory (null once the engine has stopped). */
  constructor(reopen: () => ArrayBuffer | null) {
    this.#reopen = reopen
    this.#open(reopen() ?? new ArrayBuffer(0))
  }

  /**
   * Views over the slab again if something detached its buffer: a handler passed a message's buffer to
   * ArrayBuffer.prototype.transfer() or to a BYOB stream read. What the I/O thread wrote is
   * still in the memory, so the batch goes on where it was. Cheap: one length check when nothing happened.
   */
  ensureAttached(): void {
    if (this.u8.byteLength !== 0) return
    const buffer = this.#reopen()
    if (buffer === null) return
    this.#open(buffer)
    warnDetached()
  }

  #open(buffer: ArrayBuffer): void {
    this.buffer = buffer
    this.u8 = new Uint8Array(buffer)
    this.u16 = new Uint16Array(buffer)
    this.u32 = new Uint32Array(buffer)
    this.view = new DataView(buffer)
  }
}

let detachedWarned = false

/** Once per process: the application keeps the engine's memory, which the engine goes on reusing. */
function warnDetached(): void {
  if (detachedWarned) return
  detachedWarned = true
  process.emitWarning(
    "A received message's buffer was detached (by transfer() or a BYOB read). It is volley's receive memory, " +
      'valid during the callback only: what was transferred will be overwritten by later messages. Copy a message to keep it ' +
      '(Uint8Array.prototype.slice or Buffer.from).',
    { type: 'VolleyWarning', code: 'VOLLEY_MESSAGE_BUFFER_DETACHED' },
  )
}

export interface EngineLimits {
  /** Receive slabs (256 KiB each) made at start; more are added when the I/O thread runs short. */
  initialReceiveSlabs: number
  maxReceiveSlabs: number
  /** Send slabs (256 KiB each): the send queue's capacity, shared by the engine's sockets. */
  maxSendSlabs: number
}

export const defaultLimits: EngineLimits = { initialReceiveSlabs: 8, maxReceiveSlabs: 64, maxSendSlabs: 32 }

/**
 * onDrain() for every client whose send the engine's full queue refused, and forgets them. Each gets its
 * 'drain' whatever another's listener throws: none would come again.
 */
export function drainWaiting(waitingForDrain: Set<EngineClient>): void {
  if (waitingForDrain.size === 0) return
  const waiting = [...waitingForDrain]
  waitingForDrain.clear()
  for (const client of waiting) {
    try {
      client.onDrain()
    } catch (error) {
      surfaceLater(error)
    }
  }
}

/** CLOCK_MONOTONIC in µs: the clock the engine's I/O thread reads. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

export class Engine implements ProtocolEngine {
  readonly addon: Addon
  readonly #native: NativeEngine
  readonly #limits: EngineLimits
  /** The event list the addon writes before each onEvents call (its memory, as the slabs'). */
  readonly #control: Int32Array
  readonly #clients = new Map<number, EngineClient>()
  readonly #receiveSlabs: SlabView[] = []
  readonly #sendSlabs: SlabView[] = []
  readonly #freeSendSlabs: number[] = []
  /** Send slabs the I/O thread has finished with (native/engine/released_slabs.h), and how many were taken back. */
  readonly #released: Int32Array
  #releasedTaken = 0
  readonly #waitingForDrain = new Set<EngineClient>()
  readonly #onIdle: (engine: Engine) => void
  readonly #forgetAtExit: () => void
  #currentSendSlab = -1
  #sendCursor = 0
  #flushScheduled = false
  #openSockets = 0
  #refSockets = 0
  #stopped = false

  constructor(limits: EngineLimits, onIdle: (engine: Engine) => void) {
    checkNotExiting() // a thread started now would send nothing, and outlive the joins
    this.addon = loadAddon()
    this.#limits = limits
    this.#onIdle = onIdle
    try {
      this.#native = new this.addon.Engine((count) => this.#onEvents(count)) // epoll, eventfd, timerfd, thread
    } catch (error) {
      throw fromNativeError(error) // EMFILE and the like, with their code
    }
    this.#control = this.#native.events()
    this.#released = this.#native.releasedSlabs()
    this.#native.setRef(false)
    try {
      for (let i = 0; i < limits.initialReceiveSlabs; i++) this.#addReceiveSlab()
    } catch (error) {
      this.#native.shutdown() // its I/O thread runs already: no engine would ever stop it
      throw fromNativeError(error)
    }
    // process.exit() skips the environment's cleanup hooks: the I/O thread is joined at 'exit' instead.
    this.#forgetAtExit = stopAtExit(() => this.stopNow())
  }

  get stopped(): boolean {
    return this.#stopped
  }

  /** Opens and binds a socket; throws the addon's system error on failure. */
  open(options: NativeSocketOptions, client: EngineClient): NativeSocketInfo {
    const info = this.#native.openSocket(options)
    reportCappedBuffers(
      { receive: options.receiveBufferSize, send: options.sendBufferSize },
      { receive: info.receiveBufferSize, send: info.sendBufferSize },
    )
    this.#clients.set(info.id, client)
    this.#openSockets++
    this.ref()
    return info
  }

  /** Stops an engine that has no socket (for example after its only bind failed). */
  releaseIfIdle(): void {
    if (this.#openSockets === 0 && !this.#stopped) this.#shutdown()
  }

  close(id: number): void {
    this.flush()
    this.#native.closeSocket(id)
  }

  ref(): void {
    if (this.#refSockets++ === 0) this.#native.setRef(true)
  }

  unref(): void {
    if (--this.#refSockets === 0) this.#native.setRef(false)
  }

  readStats(id: number, out: Float64Array): boolean {
    return this.#native.socketStats(id, out)
  }

  readProtocolStats(id: number, out: Float64Array): boolean {
    return this.#native.protocolStats(id, out)
  }

  /**
   * The packet, byte and drop counters of a protocol socket's client slots (layout.peerCounterFields each:
   * PeerCounterField), live; null for a socket without them.
   */
  peerCounters(id: number): Float64Array | null {
    return this.#native.peerCounters(id)
  }

  /** A control request for a protocol socket; queued sends go first. */
  control(id: number, op: number, arg = 0, data?: Uint8Array, suffix?: number): void {
    this.flush()
    this.#native.control(id, op, arg, data, suffix)
  }

  /**
   * Queues one datagram. Returns false, queuing nothing, when every send slab is in flight;
   * the client then gets onDrain() once one comes back.
   */
  enqueue(client: EngineClient, socketId: number, data: Uint8Array, port: number, address: QueuedAddress): boolean {
    const at = this.#write(client, socketId, data, port, address.family, address.scopeId)
    if (at < 0) return false
    ;(this.#sendSlabs[this.#currentSendSlab] as SlabView).u8.set(address.bytes, at + 16)
    return true
  }

  /**
   * Queues a payload for a protocol socket's peer (its client index; 0 on a client socket) on a channel.
   * Messages too large for a send slab go in a control request of their own, after what is queued.
   */
  enqueueToPeer(client: EngineClient, socketId: number, data: Uint8Array, peer: number, channel = 0): boolean {
    if (data.byteLength > largeSendBytes) {
      this.#checkRunning()
      this.control(socketId, ProtocolControl.sendLarge, peer, data, channel)
      return true
    }
    const at = this.#write(client, socketId, data, 0, 0, peer)
    if (at < 0) return false
    ;(this.#sendSlabs[this.#currentSendSlab] as SlabView).u8[at + 11] = channel
    return true
  }

  /** The link statistics of a protocol socket's peers (layout.linkFields each), live; null without channels. */
  peerLinks(id: number): Float64Array | null {
    return this.#native.peerLinks(id)
  }

  /** The bytes of a large-payload record (taken once). */
  takeLarge(id: number): ArrayBuffer | null {
    return this.#native.takeLarge(id)
  }

  /** The bytes of large messages waiting for JavaScript to take them (past 64 MiB the engine stops reading). */
  largeBytes(): number {
    return this.#native.largeBytes()
  }

  /** Small sends this thread left to the I/O thread because that thread had woken and waited for its turn (0 once stopped). */
  inlineSendsYielded(): number {
    return this.#native.inlineSendsYielded()
  }

  /** Whether the I/O thread has left reading the sockets to this thread, between light turns (for tests). */
  receivingInline(): boolean {
    return this.#native.receivingInline()
  }

  /** Looks for a next datagram after a turn of this thread's own, and those that found one (for tests). */
  busyPollCounts(): { spins: number; found: number } {
    const [spins, found] = this.#native.busyPollCounts()
    return { spins, found }
  }

  /** Writes a send record's header and data; returns its offset in the current slab, or -1 when full. */
  #write(client: EngineClient, socketId: number, data: Uint8Array, port: number, family: number, scopeId: number): number {
    this.#checkRunning()
    const need = align8(layout.sendHeaderSize + data.byteLength)
    if (this.#currentSendSlab < 0 || this.#sendCursor + need > layout.slabSize) {
      if (!this.#nextSendSlab()) {
        this.#waitingForDrain.add(client)
        return -1
      }
    }
    const slab = this.#sendSlabs[this.#currentSendSlab] as SlabView
    const at = this.#sendCursor
    slab.u32[at >>> 2] = socketId
    slab.u32[(at + 4) >>> 2] = data.byteLength
    slab.u16[(at + 8) >>> 1] = port
    slab.u8[at + 10] = family
    slab.u8[at + 11] = 0
    slab.u32[(at + 12) >>> 2] = scopeId
    slab.u8.set(data, at + layout.sendHeaderSize)
    this.#sendCursor = at + need
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      queueMicrotask(this.#flushTask)
    }
    return at
  }

  /** A send on a stopped engine: stopped under an open socket only at process exit (an 'exit' handler after volley's own). */
  #checkRunning(): void {
    if (this.#stopped) throw exitingError()
  }

  /** Hands the partly filled send slab to the I/O thread now. */
  flush(): void {
    if (this.#currentSendSlab >= 0 && this.#sendCursor > 0 && !this.#stopped) {
      this.#native.submit(this.#currentSendSlab, this.#sendCursor)
      this.#currentSendSlab = -1
      this.#sendCursor = 0
    }
  }

  readonly #flushTask = (): void => {
    this.#flushScheduled = false
    this.flush()
  }

  #nextSendSlab(): boolean {
    this.flush()
    let slab = this.#freeSendSlabs.pop()
    if (slab === undefined) {
      this.#takeReleasedSlabs()
      slab = this.#freeSendSlabs.pop()
    }
    if (slab === undefined && this.#sendSlabs.length < this.#limits.maxSendSlabs) {
      const id = this.#native.addSendSlab()
      this.#sendSlabs[id] = new SlabView(() => this.#native.sendSlab(id))
      slab = id
    }
    if (slab === undefined) {
      // Every slab is with the I/O thread: ask for a SEND_DONE event at the next one it finishes, then look
      // once more, in case it finished one before it could see the request.
      Atomics.store(this.#released, ReleasedSlabsWord.wanted, 1)
      this.#takeReleasedSlabs()
      slab = this.#freeSendSlabs.pop()
      if (slab === undefined) return false
    }
    this.#currentSendSlab = slab
    this.#sendCursor = 0
    return true
  }

  /** Moves the slabs the I/O thread has finished with to the free list (no native call). */
  #takeReleasedSlabs(): void {
    const ring = this.#released
    const written = Atomics.load(ring, ReleasedSlabsWord.written)
    while (this.#releasedTaken !== written) {
      this.#freeSendSlabs.push(ring[ReleasedSlabsWord.ids + (this.#releasedTaken & (layout.releasedSlabsCapacity - 1))]!)
      this.#releasedTaken = (this.#releasedTaken + 1) | 0
    }
  }

  #addReceiveSlab(): void {
    const id = this.#native.addReceiveSlab()
    this.#receiveSlabs[id] = new SlabView(() => this.#native.receiveSlab(id))
  }

  #onEvents(count: number): void {
    const control = this.#control
    for (let i = 0; i < count; i++) {
      const at = i * layout.eventWords
      try {
        // The socket id unsigned: an engine that has opened 2^31 sockets gives ids past int32's range.
        this.#dispatch(control[at]!, control[at + 1]! >>> 0, control[at + 2]!, control[at + 3]!, control[at + 4]!)
      } catch (error) {
        // A throwing handler must not cost other sockets their events (closes, drained slabs).
        surfaceLater(error)
      }
    }
  }

  #dispatch(type: number, a: number, b: number, c: number, d: number): void {
    switch (type) {
      case EventType.batch: {
        const slab = this.#receiveSlabs[b] as SlabView
        slab.ensureAttached() // an earlier batch's handler may have detached it
        this.#clients.get(a)?.onBatch(slab, c, d)
        return
      }
      case EventType.sendDone: {
        // Sent only while a slab was wanted; the slab itself is in the ring.
        this.#takeReleasedSlabs()
        drainWaiting(this.#waitingForDrain)
        return
      }
      case EventType.closed: {
        const client = this.#clients.get(a)
        this.#clients.delete(a)
        try {
          if (client !== undefined) {
            this.#waitingForDrain.delete(client)
            client.onClosed() // reads the socket's final counters, which the engine then forgets
          }
        } finally {
          this.#native.forgetSocket(a)
          if (--this.#openSockets === 0) this.#shutdown()
        }
        return
      }
      case EventType.error:
        this.#clients.get(a)?.onError(b, c, d)
        return
      case EventType.starved:
        if (this.#receiveSlabs.length < this.#limits.maxReceiveSlabs) {
          const add = Math.min(this.#limits.initialReceiveSlabs, this.#limits.maxReceiveSlabs - this.#receiveSlabs.length)
          for (let i = 0; i < add; i++) this.#addReceiveSlab()
        }
        return
    }
  }

  #shutdown(): void {
    this.#stopped = true
    this.#forgetAtExit()
    this.#native.shutdown()
    // The I/O thread is gone: let the garbage collector have the slabs even if sockets are still held.
    this.#receiveSlabs.length = 0
    this.#sendSlabs.length = 0
    this.#freeSendSlabs.length = 0
    this.#currentSendSlab = -1
    this.#onIdle(this)
  }

  /** Stops the I/O thread now, whatever its sockets are doing (process exit). */
  stopNow(): void {
    if (!this.#stopped) this.#shutdown()
  }
}

/**
 * What one Server or Client holds of its engine's reference count (which keeps the process alive): a
 * reference while it is busy, unless unref()ed. The engine's open() takes one for the new socket.
 */
export class EngineHold {
  #engine: ProtocolEngine | undefined
  #held = false
  #unreferenced = false
  #closing = false

  /** The socket was opened on this engine: open() took a reference for it. */
  opened(engine: ProtocolEngine): void {
    this.#engine = engine
    this.#held = true
  }

  /** unref() (true) or ref() (false) by the owner's user; then as update(). */
  setUnreferenced(unreferenced: boolean, busy: boolean): void {
    this.#unreferenced = unreferenced
    this.update(busy)
  }

  /**
   * close() was called: the process stays alive until the socket has closed (its disconnects or queued
   * datagrams sent), unref() or not, as node's handles do.
   */
  closing(): void {
    this.#closing = true
    this.update(true)
  }

  /** Holds a reference while busy and not unref()ed (or closing), none otherwise. */
  update(busy: boolean): void {
    const hold = busy && (!this.#unreferenced || this.#closing)
    if (this.#engine === undefined || hold === this.#held) return
    this.#held = hold
    if (hold) this.#engine.ref()
    else this.#engine.unref()
  }

  /** The socket closed: whatever was held goes back. */
  closed(): void {
    if (this.#held) this.#engine?.unref()
    this.#held = false
    this.#engine = undefined
  }
}

let shared: Engine | undefined

/** The process's (this thread's) shared engine, started on first use and stopped when its last socket closes. */
export function sharedEngine(): Engine {
  if (shared === undefined || shared.stopped) {
    shared = new Engine(defaultLimits, (engine) => {
      if (shared === engine) shared = undefined
    })
  }
  return shared
}

export function dedicatedEngine(limits: EngineLimits = defaultLimits): Engine {
  return new Engine(limits, () => {})
}

/** Engines given to a Server, Client or DatagramSocket in place of a dedicated engine of its own (ClientPool's: one thread for all its clients). */
const engineSources = new WeakMap<object, () => Engine>()

/** Makes `owner` (a Server, Client or DatagramSocket with `engine: 'dedicated'`) open its sockets on engine(). */
export function useDedicatedEngine(owner: object, engine: () => Engine): void {
  engineSources.set(owner, engine)
}

/** The engine a socket of `owner` opens on: its own dedicated one, the one useDedicatedEngine gave it, or the shared one. */
export function engineFor(owner: object, mode: 'shared' | 'dedicated'): Engine {
  if (mode === 'shared') return sharedEngine()
  return engineSources.get(owner)?.() ?? dedicatedEngine()
}
