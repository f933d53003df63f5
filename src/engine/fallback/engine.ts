// The fallback engine: what a Server or Client asks of its engine, done on node:dgram with the native engine's
// protocol cores built as WebAssembly (engine/fallback/protocols.ts), for where the native addon cannot load.
// This is their I/O: it hands Server and Client the records the native engine writes (the same
// layout, native/sockets/socket_protocol.h), keeps the same counters and takes the same control requests, so that
// both run unchanged on it, and puts the network simulator, when asked for, between a socket and the wire.
// The bytes on the wire are the same. It runs on the JavaScript thread: slower than the native engine.
import type dgram from 'node:dgram'
import { surfaceLater } from '../../util/errors.ts'
import type { NativeSocketInfo, NativeSocketOptions } from '../native/addon.ts'
import { type EngineClient, type ProtocolEngine, defaultLimits, drainWaiting, monotonicUs } from '../engine.ts'
import { FallbackProtocol, type ProtocolOutput } from './protocols.ts'
import { FallbackSockets, type OpeningClient, bindSocket, sharedInstance } from './sockets.ts'
import { checkNotExiting } from '../process-exit.ts'
import { ProtocolStat, layout, protocolStatsFields } from '../layout.ts'
import { RecordBatch } from '../record-batch.ts'
import { SimulatedNetwork } from './simulated-network.ts'
import { copyBytes } from '../../util/bytes.ts'


/** A timer this late (µs) means the thread was busy, not merely scheduled a little late. */
const stallUs = 100_000

interface OutgoingDatagram {
  host: string
  port: number
  data: Uint8Array
}

/**
 * Bytes handed to node:dgram and not yet sent, at most: what the native engine's send queue holds (its send
 * slabs). Past it a message is refused (send() returns false) until half of it has gone ('drain'), so that a
 * sender faster than the socket meets back-pressure rather than growing node:dgram's queue without bound.
 */
const maxBytesInFlight = defaultLimits.maxSendSlabs * layout.slabSize

interface ProtocolSocket {
  readonly id: number
  readonly client: EngineClient
  readonly socket: dgram.Socket
  readonly ipv6: boolean
  readonly records: RecordBatch
  /** Settles once the socket is bound and its protocol made. */
  ready: Promise<void>
  opened: boolean
  /** What was asked of the socket before it opened, in order. */
  readonly waiting: (() => void)[]
  /** Made as the socket opens (a client's) or once it is bound (a server's: its public address may name the port). */
  protocol?: FallbackProtocol
  /** The network simulator between the protocol and the wire, when asked for. */
  readonly simulator?: SimulatedNetwork<OutgoingDatagram>
  closing: boolean
  timer: NodeJS.Timeout | undefined
  /**
   * When the socket's latest timer falls or fell due, kept after it fires until the next one is set (a turn
   * later): how late the thread runs is measured against it (noticeStall).
   */
  timerDueUs: number
  /** The timerDueUs whose lateness the protocol was told of: told once. */
  stallToldForUs: number
  turnScheduled: boolean
  sendErrors: number
  /** Of the engine's bytes in flight, this socket's (given back whole when it closes). */
  bytesInFlight: number
}

export class FallbackEngine extends FallbackSockets<ProtocolSocket> implements ProtocolEngine {
  /** The sockets whose simulated networks hold datagrams: a late timer puts what they have due on the wire first. */
  readonly #holding = new Set<ProtocolSocket>()
  /** Bytes handed to node:dgram and not yet sent, all sockets (maxBytesInFlight). */
  #bytesInFlight = 0
  /** Whose message was refused for want of room: onDrain() once half of maxBytesInFlight is free. */
  readonly #waitingForDrain = new Set<EngineClient>()

  /**
   * Opens a protocol socket (a netcode server or client; options.protocol says which) and binds it; resolves
   * once it is bound, or rejects with the bind's system error.
   */
  open(options: NativeSocketOptions, client: EngineClient): Promise<NativeSocketInfo> {
    const entry = this.#newSocket(options, client)
    return this.whenOpen(entry, entry.ready, options)
  }

  /**
   * open(), returning at once (a client's socket: no address to report, any port): what is asked of the
   * socket meanwhile waits for it to be bound.
   */
  openNow(options: NativeSocketOptions, client: OpeningClient): NativeSocketInfo {
    const entry = this.#newSocket(options, client)
    return this.openingNow(entry, entry.ready, options, client)
  }

  #newSocket(options: NativeSocketOptions, client: EngineClient): ProtocolSocket {
    const protocol = options.protocol
    if (protocol === undefined) throw new TypeError('the fallback engine runs protocol sockets only')
    const records = new RecordBatch()
    const output: ProtocolOutput = {
      records,
      send: (host, port, data) => this.#send(entry, { host, port, data }),
    }
    const make = (boundPort: number): FallbackProtocol => new FallbackProtocol(protocol, boundPort, options.ipv6, output, monotonicUs())
    // A client's protocol at once, before its socket (openNow: its link statistics are taken as it returns; a
    // request it refuses throws with no socket left behind), a server's once the port is known (its public
    // address may name it); either reads from the bind on.
    const early = protocol.kind === 'client' ? make(0) : undefined
    const { socket, bound } = bindSocket(options)
    const entry: ProtocolSocket = {
      id: this.nextId(),
      client,
      socket,
      ipv6: options.ipv6,
      records,
      ready: Promise.resolve(),
      opened: false,
      waiting: [],
      ...(protocol.networkSimulator !== undefined && { simulator: new SimulatedNetwork<OutgoingDatagram>(protocol.networkSimulator) }),
      closing: false,
      timer: undefined,
      timerDueUs: Number.POSITIVE_INFINITY,
      stallToldForUs: Number.POSITIVE_INFINITY,
      turnScheduled: false,
      sendErrors: 0,
      bytesInFlight: 0,
      ...(early !== undefined && { protocol: early }),
    }
    entry.ready = bound.then(() => {
      entry.protocol ??= make(socket.address().port)
      socket.on('message', (data, rinfo) => this.#receive(entry, data, rinfo))
      socket.on('error', () => {
        entry.sendErrors++ // a send refused asynchronously (the send callbacks count the others)
      })
      this.#arm(entry)
    })
    // Outside the chain above: what waited runs once the socket is open, in order, and its own failure is not
    // taken for the bind's.
    entry.ready.then(() => {
      entry.opened = true
      for (const run of entry.waiting.splice(0)) {
        try {
          run()
        } catch (error) {
          surfaceLater(error)
        }
      }
    }, () => {})
    this.add(entry) // with the reference the native engine's open() takes too: EngineHold gives it back
    return entry
  }

  readProtocolStats(id: number, out: Float64Array): boolean {
    const entry = this.sockets.get(id)
    if (entry === undefined) return false
    out.fill(0, 0, protocolStatsFields)
    entry.protocol?.copyCounters(out)
    out[ProtocolStat.sendErrors] = entry.sendErrors
    out[ProtocolStat.receiveBufferFull] = entry.protocol?.dropped ?? 0
    const simulated = entry.simulator?.counters
    if (simulated !== undefined) out.set([simulated.lost, simulated.duplicated, simulated.reordered, simulated.overflowed], ProtocolStat.simulatorLost)
    return true
  }

  peerCounters(id: number): Float64Array | null {
    return this.sockets.get(id)?.protocol?.peerCounters ?? null
  }

  peerLinks(id: number): Float64Array | null {
    return this.sockets.get(id)?.protocol?.links ?? null
  }

  /** None: the cores put every delivered message in a record, large or not (no send slab to keep small here). */
  takeLarge(): ArrayBuffer | null {
    return null
  }

  control(id: number, op: number, arg = 0, data?: Uint8Array): void {
    const entry = this.sockets.get(id)
    if (entry === undefined || entry.closing) return
    if (!entry.opened) {
      const copy = data === undefined ? undefined : copyBytes(data)
      entry.waiting.push(() => this.control(id, op, arg, copy))
      return
    }
    // What was sent before goes first (the native engine ends each batch of sends before a command): a
    // disconnect or a stop would otherwise end the connection with this turn's messages still unsent.
    const now = monotonicUs()
    entry.protocol?.endBatch(now)
    entry.protocol?.control(op, arg, data, now)
    this.#afterWork(entry)
  }

  enqueueToPeer(_client: EngineClient, socketId: number, data: Uint8Array, peer: number, channel = 0): boolean {
    checkNotExiting()
    const entry = this.sockets.get(socketId)
    if (entry === undefined || entry.closing || (entry.protocol?.finished ?? false)) return true // gone as the native engine drops it
    if (!entry.opened) {
      const copy = copyBytes(data)
      entry.waiting.push(() => this.enqueueToPeer(_client, socketId, copy, peer, channel))
      return true
    }
    if (this.#bytesInFlight >= maxBytesInFlight) {
      this.#waitingForDrain.add(entry.client)
      return false
    }
    entry.protocol?.send(peer, channel, data, monotonicUs())
    this.#afterWork(entry)
    return true
  }

  /** A datagram the protocol sends: through the simulator when there is one, else to the socket. */
  #send(entry: ProtocolSocket, datagram: OutgoingDatagram): void {
    if (entry.simulator === undefined) {
      this.#sendNow(entry, datagram)
      return
    }
    const now = monotonicUs()
    entry.simulator.submit(datagram, datagram.data.byteLength, now)
    this.#releaseSimulated(entry, now)
  }

  /** What the simulated network has due on the wire now; the sockets whose simulated networks still hold some stay in #holding. */
  #releaseSimulated(entry: ProtocolSocket, nowUs: number): void {
    const simulator = entry.simulator
    if (simulator === undefined) return
    for (const datagram of simulator.release(nowUs)) this.#sendNow(entry, datagram)
    if (simulator.nextReleaseUs === Number.POSITIVE_INFINITY) this.#holding.delete(entry)
    else this.#holding.add(entry)
  }

  #sendNow(entry: ProtocolSocket, { host, port, data }: OutgoingDatagram): void {
    if (entry.closing) return
    // Port 0 (a token may list it): the kernel refuses it, as sendmmsg does on the native engine; counted.
    if (port === 0) {
      entry.sendErrors++
      return
    }
    const size = data.byteLength + layout.sendHeaderSize // as a send slab holds it
    try {
      entry.socket.send(data, port, host, (error) => {
        if (error !== null) entry.sendErrors++
        this.#sent(entry, size)
      })
    } catch {
      entry.sendErrors++ // refused before it was queued (an address node:dgram will not take)
      return
    }
    entry.bytesInFlight += size
    this.#bytesInFlight += size
  }

  /** node:dgram is done with a datagram (or the socket closed with it: #close gave back what it had). */
  #sent(entry: ProtocolSocket, size: number): void {
    if (entry.bytesInFlight === 0) return
    entry.bytesInFlight -= size
    this.#bytesInFlight -= size
    this.#drainIfRoom()
  }

  #drainIfRoom(): void {
    if (this.#bytesInFlight <= maxBytesInFlight / 2) drainWaiting(this.#waitingForDrain)
  }

  #receive(entry: ProtocolSocket, data: Buffer, rinfo: dgram.RemoteInfo): void {
    if (entry.closing) return
    const now = monotonicUs()
    this.#noticeStall(entry, now) // the first datagrams read after a stall come before the late timer fires
    // As the native engine: no protocol packet is this large, and what one is counted as does not depend on
    // its bytes (a forged header could make it look like the packet of a connected peer).
    const protocol = entry.protocol!
    const packet = data.byteLength <= layout.receiveHeadSize ? data : data.subarray(0, 0)
    protocol.receive(rinfo.address, rinfo.port, packet, data.byteLength)
    // The protocol takes it at the end of the turn, which sets the timer again: nothing moves it before.
    if (!entry.turnScheduled) {
      entry.turnScheduled = true
      setImmediate(() => this.#endTurn(entry))
    }
  }

  /**
   * The socket's timer is late by much: the thread was busy (a long handler, a GC pause). The protocol hears
   * of it once per timer, from the first datagram read after it or from the timer itself, whichever comes first.
   */
  #noticeStall(entry: ProtocolSocket, nowUs: number): void {
    const lateUs = nowUs - entry.timerDueUs
    if (lateUs <= stallUs || entry.stallToldForUs === entry.timerDueUs) return
    entry.stallToldForUs = entry.timerDueUs
    entry.protocol?.stalled(lateUs, nowUs)
  }

  /**
   * After the protocol did something: the end of this turn flushes its connections and hands its records to
   * JavaScript (once per turn of the event loop: the datagrams node:dgram hands over in one poll phase make
   * one batch); its timer is set again.
   */
  #afterWork(entry: ProtocolSocket): void {
    const protocol = entry.protocol
    if (!entry.turnScheduled && (entry.records.count > 0 || protocol?.pending === true || this.#finished(entry))) {
      entry.turnScheduled = true
      setImmediate(() => this.#endTurn(entry))
    }
    this.#arm(entry)
  }

  #endTurn(entry: ProtocolSocket): void {
    entry.turnScheduled = false
    if (entry.closing) return
    entry.protocol?.endBatch(monotonicUs())
    if (entry.records.count > 0) {
      const { slab, count } = entry.records.take()
      try {
        entry.client.onBatch(slab, 0, count)
      } catch (error) {
        surfaceLater(error) // the socket's close below must still happen
      }
    }
    // What a handler's call wrote meanwhile (a close()'s 'disconnect' events, a client's 'disconnected') goes
    // in the next turn, which that call scheduled, before the socket may close: the native engine hands it
    // over in its next batch, before its closed event.
    if (entry.records.count === 0 && this.#finished(entry)) this.#close(entry)
    else this.#afterWork(entry)
  }

  /** The protocol has stopped and the simulated network has put on the wire all it held: the socket may close. */
  #finished(entry: ProtocolSocket): boolean {
    return entry.protocol?.finished === true && (entry.simulator?.nextReleaseUs ?? Number.POSITIVE_INFINITY) === Number.POSITIVE_INFINITY
  }

  /** Sets the socket's timer for the protocol's or the simulator's next deadline (one timer per socket, moved only when that changes). */
  #arm(entry: ProtocolSocket): void {
    if (entry.closing) return
    const due = Math.min(entry.protocol?.nextDeadlineUs() ?? Number.POSITIVE_INFINITY, entry.simulator?.nextReleaseUs ?? Number.POSITIVE_INFINITY)
    // A timer due no later stays: it fires early and re-arms, where a new Timeout for each deadline a message
    // moved later (a keep-alive's, at every payload) cost one per message.
    if (entry.timer !== undefined && entry.timerDueUs <= due) return
    clearTimeout(entry.timer)
    entry.timerDueUs = due
    entry.timer = undefined
    if (!Number.isFinite(due)) return
    entry.timer = setTimeout(() => this.#fire(entry), Math.max(0, Math.ceil((due - monotonicUs()) / 1000)))
    entry.timer.unref()
  }

  #fire(entry: ProtocolSocket): void {
    if (!entry.closing) this.#noticeStall(entry, monotonicUs())
    entry.timer = undefined
    if (entry.closing) return
    // The protocol's timers run after this turn's poll phase: when the thread was busy past a deadline
    // (a long handler, a GC pause), the datagrams that came meanwhile are read first, as the native engine
    // on its own thread read them when they came; else a wait for a peer's settings, say, would end for
    // want of a packet that had arrived. Datagrams the simulated networks of this engine's sockets hold
    // (the other end may be in this process) go on the wire first, whichever socket's timer fires first.
    const now = monotonicUs()
    for (const each of this.#holding) {
      if (each.simulator!.nextReleaseUs > now) continue
      this.#releaseSimulated(each, now)
      if (each !== entry) this.#afterWork(each) // its last held datagram out: a stopping socket may close now
    }
    setImmediate(() => {
      if (entry.closing) return
      entry.protocol?.update(monotonicUs())
      this.#afterWork(entry)
    })
  }

  #close(entry: ProtocolSocket): void {
    entry.closing = true
    this.#holding.delete(entry) // (empty: a socket closes once its simulated network is)
    clearTimeout(entry.timer)
    this.#waitingForDrain.delete(entry.client)
    entry.socket.close(() => {
      // What node:dgram had not sent goes with the socket, its send callbacks or not.
      this.#bytesInFlight -= entry.bytesInFlight
      entry.bytesInFlight = 0
      this.#drainIfRoom()
      try {
        entry.client.onClosed() // reads the socket's final counters first
      } finally {
        entry.protocol?.closed()
        this.remove(entry)
      }
    })
  }
}

/** The process's fallback engine, made on first use and forgotten when its last socket closes. */
export const sharedFallbackEngine = sharedInstance((onIdle) => new FallbackEngine(onIdle))
