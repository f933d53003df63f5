// The fallback engine: what a Server or Client asks of its engine, done on node:dgram with the TypeScript
// netcode cores (src/netcode/server-core.ts, client-core.ts) and libsodium-wrappers, for where the native
// addon cannot load. It hands its Server and Client the records the native engine writes (the same layout,
// native/socket_protocol.h), keeps the same counters and takes the same control requests, so that both run
// unchanged on it; the bytes on the wire are the same. It runs on the JavaScript thread: slower than the
// native engine, and so far without channels or a network simulator (choose.ts refuses those options).
import type dgram from 'node:dgram'
import { performance } from 'node:perf_hooks'
import { ClientCore, clientStateCodes } from '../netcode/client-core.ts'
import { ServerCore } from '../netcode/server-core.ts'
import { type ServerAddress, parseServerAddress, readDatagramSource } from '../netcode/server-address.ts'
import { type Sodium, loadSodium } from '../netcode/sodium.ts'
import { surfaceLater } from '../errors.ts'
import type { NativeSocketInfo, NativeSocketOptions } from './addon.ts'
import type { EngineClient, ProtocolEngine } from './engine.ts'
import { SlabView } from './engine.ts'
import { FallbackSockets, bindSocket, checkNotExiting, sharedInstance } from './fallback-sockets.ts'
import { PeerCounterField, PeerRecordKind, ProtocolControl, align8, layout, protocolStatsFields } from './layout.ts'

const peerSlotMask = (1 << layout.peerSlotBits) - 1

/** µs of a monotonic clock, as the cores take it. */
const monotonicUs = (): number => Math.floor(performance.now() * 1000)

/** A batch of records for JavaScript, in the native layout: u32 length | u8 kind | u8 code | u16 port | u32 peer | u8 family | u8[3] | u8[16] address | data. */
class RecordBatch {
  #bytes = new Uint8Array(4096)
  #view = new DataView(this.#bytes.buffer)
  #end = 0
  count = 0

  /** Appends a record; returns where its data goes in bytes(). */
  add(kind: number, code: number, peer: number, address: ServerAddress | null, data: Uint8Array | null, dataLength = data?.byteLength ?? 0): number {
    const size = align8(layout.peerRecordHeaderSize + dataLength)
    if (this.#end + size > this.#bytes.byteLength) {
      const grown = new Uint8Array(Math.max(this.#bytes.byteLength * 2, this.#end + size))
      grown.set(this.#bytes.subarray(0, this.#end))
      this.#bytes = grown
      this.#view = new DataView(grown.buffer)
    }
    const at = this.#end // never written before in this buffer: zero, padding included
    this.#view.setUint32(at, dataLength, true)
    this.#bytes[at + 4] = kind
    this.#bytes[at + 5] = code & 0xff
    this.#view.setUint16(at + 6, address?.port ?? 0, true)
    this.#view.setUint32(at + 8, peer >>> 0, true)
    if (address !== null) {
      this.#bytes[at + 12] = address.family
      this.#bytes.set(address.bytes, at + 16)
    }
    if (data !== null) this.#bytes.set(data, at + layout.peerRecordHeaderSize)
    this.#end = at + size
    this.count++
    return at + layout.peerRecordHeaderSize
  }

  get view(): DataView {
    return this.#view
  }

  /**
   * The records so far as a slab of their own, and a fresh batch begun. A handler may detach the slab's
   * buffer (transfer()): the slab then reopens over a new copy of the records, as the native engine's over
   * its memory, and the batch goes on.
   */
  take(): { slab: SlabView; count: number } {
    // The records stay where they were written (the next batch gets a buffer of its own): one copy each time
    // the slab opens over them.
    const kept = this.#bytes.subarray(0, this.#end)
    const taken = { slab: new SlabView(() => kept.slice().buffer), count: this.count }
    this.#bytes = new Uint8Array(this.#bytes.byteLength)
    this.#view = new DataView(this.#bytes.buffer)
    this.#end = 0
    this.count = 0
    return taken
  }
}

/** 'a.b.c.d:port' or '[v6]:port' as node:dgram's send takes it, on a socket of this family. */
function destination(to: string, socketIsV6: boolean): { host: string; port: number } {
  const colon = to.lastIndexOf(':')
  const host = to.slice(0, colon).replace(/^\[|\]$/g, '')
  return { host: socketIsV6 && !host.includes(':') ? `::ffff:${host}` : host, port: Number(to.slice(colon + 1)) }
}

/**
 * A datagram's source as the cores take it: an IPv4 sender to a dual-stack socket as a.b.c.d (unmapped, as
 * the native engine does); a link-local sender with its zone, which a reply to it needs.
 */
function sourceText(rinfo: dgram.RemoteInfo): string {
  if (rinfo.family === 'IPv4') return `${rinfo.address}:${rinfo.port}`
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(rinfo.address)) return `${rinfo.address.slice(7)}:${rinfo.port}`
  return `[${rinfo.address}]:${rinfo.port}`
}

/** A source text without its zone: for records, which carry none, and the client, whose server a token names without one. */
function withoutZone(from: string): string {
  return from.replace(/%[^\]]*\]/, ']')
}

interface ProtocolSocket {
  readonly id: number
  readonly client: EngineClient
  readonly socket: dgram.Socket
  readonly ipv6: boolean
  readonly records: RecordBatch
  /** Settles once the socket is bound and its core made (libsodium-wrappers loads first). */
  ready: Promise<void>
  opened: boolean
  /** What was asked of the socket before it opened, in order. */
  readonly waiting: (() => void)[]
  server?: ServerCore
  clientCore?: ClientCore
  /** The connect() a client's state records belong to (JavaScript numbers them). */
  attempt: number
  stopping: boolean
  closing: boolean
  timer: NodeJS.Timeout | undefined
  timerDueUs: number
  deliveryScheduled: boolean
  sendErrors: number
}

export class FallbackEngine extends FallbackSockets<ProtocolSocket> implements ProtocolEngine {
  #unixSeconds = 0
  #unixSecondsBig = 0n

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
  openNow(options: NativeSocketOptions, client: EngineClient): NativeSocketInfo {
    const entry = this.#newSocket(options, client)
    return this.openingNow(entry, entry.ready, options, client)
  }

  #newSocket(options: NativeSocketOptions, client: EngineClient): ProtocolSocket {
    const protocol = options.protocol
    if (protocol === undefined) throw new TypeError('the fallback engine runs protocol sockets only')
    const { socket, bound } = bindSocket(options)
    const entry: ProtocolSocket = {
      id: this.nextId(),
      client,
      socket,
      ipv6: options.ipv6,
      records: new RecordBatch(),
      ready: Promise.resolve(),
      opened: false,
      waiting: [],
      attempt: 0,
      stopping: false,
      closing: false,
      timer: undefined,
      timerDueUs: Number.POSITIVE_INFINITY,
      deliveryScheduled: false,
      sendErrors: 0,
    }
    entry.ready = Promise.all([loadSodium(), bound]).then(([sodium]) => {
      if (protocol.kind === 'server') {
        // Port 0 in the public address: the port the socket bound.
        const text = protocol.publicAddress.endsWith(':0') ? `${protocol.publicAddress.slice(0, -2)}:${socket.address().port}` : protocol.publicAddress
        entry.server = this.#serverCore(sodium, entry, protocol, parseServerAddress(text))
      } else {
        entry.clientCore = this.#clientCore(sodium, entry, protocol)
      }
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
    if (entry.server !== undefined) {
      const c = entry.server.counters
      // native/netcode_sockets.cc (CopyCounters): 15 fields; sends the kernel would not take are send errors here.
      const fields = [c.packetsIn, c.bytesIn, c.packetsOut, c.bytesOut, c.malformed, c.replayed, c.decryptionFailed, c.unknownAddress, c.tokenRefused, c.denied, entry.server.connectedClients, 0, c.handshakesFull, c.wrongProtocol, c.tokenExpired]
      out.set(fields)
    } else if (entry.clientCore !== undefined) {
      const core = entry.clientCore
      const c = core.counters
      out.set([c.packetsIn, c.bytesIn, c.packetsOut, c.bytesOut, c.malformed, c.replayed, c.decryptionFailed, c.unknownAddress, core.clientIndex, core.maxClients, 0])
    }
    out[17] = entry.sendErrors
    return true
  }

  peerCounters(id: number): Float64Array | null {
    return this.sockets.get(id)?.server?.peerCounters ?? null
  }

  /** No link statistics: they come from the delivery layer, which this engine does not run yet. */
  peerLinks(): Float64Array | null {
    return null
  }

  /** No large messages: without channels a payload is at most 1,200 bytes. */
  takeLarge(): ArrayBuffer | null {
    return null
  }

  control(id: number, op: number, arg = 0, data?: Uint8Array): void {
    const entry = this.sockets.get(id)
    if (entry === undefined || entry.closing) return
    if (!entry.opened) {
      const copy = data?.slice()
      entry.waiting.push(() => this.control(id, op, arg, copy))
      return
    }
    const now = monotonicUs()
    if (entry.server !== undefined) {
      const slot = this.#currentSlot(entry, arg)
      if (op === ProtocolControl.disconnectPeer && slot !== undefined) entry.server.disconnect(slot, this.#serverClock(now))
      if (op === ProtocolControl.stop) {
        entry.stopping = true
        entry.server.stop(this.#serverClock(now))
      }
    } else if (entry.clientCore !== undefined) {
      if (op === ProtocolControl.connect && data !== undefined) {
        entry.attempt = arg
        entry.clientCore.connect(data, now)
      }
      if (op === ProtocolControl.disconnect || op === ProtocolControl.stop) {
        entry.clientCore.disconnect(now)
        if (op === ProtocolControl.stop) entry.stopping = true
      }
    }
    this.#afterWork(entry)
  }

  enqueueToPeer(_client: EngineClient, socketId: number, data: Uint8Array, peer: number): boolean {
    checkNotExiting()
    const entry = this.sockets.get(socketId)
    if (entry === undefined || entry.closing || entry.stopping) return true // gone as the native engine drops it
    if (!entry.opened) {
      const copy = data.slice()
      entry.waiting.push(() => this.enqueueToPeer(_client, socketId, copy, peer))
      return true
    }
    const now = monotonicUs()
    if (entry.server !== undefined) {
      const slot = this.#currentSlot(entry, peer)
      if (slot !== undefined) entry.server.sendPayload(slot, data, this.#serverClock(now))
    } else {
      entry.clientCore?.sendPayload(data, now)
    }
    this.#afterWork(entry)
    return true
  }

  #serverClock(now: number) {
    const seconds = Math.floor(Date.now() / 1000)
    if (seconds !== this.#unixSeconds) {
      this.#unixSeconds = seconds
      this.#unixSecondsBig = BigInt(seconds) // a BigInt a second, not one per datagram
    }
    return { monotonicUs: now, unixSeconds: this.#unixSecondsBig }
  }

  /** The slot JavaScript's name for a peer stands for, if that client still has it (native: NetcodeServerProtocol::Current). */
  #currentSlot(entry: ProtocolSocket, tagged: number): number | undefined {
    const slot = tagged & peerSlotMask
    const counters = (entry.server as ServerCore).peerCounters
    const clients = counters[slot * layout.peerCounterFields + PeerCounterField.clients]
    if (clients === undefined || Math.floor(tagged / 2 ** layout.peerSlotBits) !== ((clients - 1) & 0xfff)) return undefined
    return slot
  }

  #serverCore(sodium: Sodium, entry: ProtocolSocket, protocol: Extract<NonNullable<NativeSocketOptions['protocol']>, { kind: 'server' }>, publicAddress: ServerAddress): ServerCore {
    const config = {
      protocolId: protocol.protocolId,
      privateKey: protocol.privateKey,
      publicAddress,
      maxClients: protocol.maxClients,
      keepAliveIntervalUs: protocol.keepAliveIntervalUs,
      disconnectIntervalUs: protocol.disconnectIntervalUs,
      disconnectPackets: protocol.disconnectPackets,
    }
    return new ServerCore(sodium, config, sodium.randombytes_buf(32), {
      sendPacket: (to, data) => this.#send(entry, to, data),
      connected: (index, clientId, from, userData) => {
        const at = entry.records.add(PeerRecordKind.connect, 0, index, readDatagramSource(withoutZone(from)), null, 8 + userData.byteLength)
        entry.records.view.setBigUint64(at, clientId, true)
        new Uint8Array(entry.records.view.buffer).set(userData, at + 8)
      },
      disconnected: (index, reason) => {
        const codes = { timeout: 1, disconnected: 2, 'server-disconnect': 3, 'server-closed': 4 } as const
        entry.records.add(PeerRecordKind.disconnect, codes[reason], index, null, null)
      },
      payload: (index, data) => entry.records.add(PeerRecordKind.payload, 0, index, null, data),
    })
  }

  #clientCore(sodium: Sodium, entry: ProtocolSocket, protocol: Extract<NonNullable<NativeSocketOptions['protocol']>, { kind: 'client' }>): ClientCore {
    const config = {
      requestIntervalUs: protocol.requestIntervalUs,
      keepAliveIntervalUs: protocol.keepAliveIntervalUs,
      disconnectIntervalUs: protocol.disconnectIntervalUs,
      disconnectPackets: protocol.disconnectPackets,
    }
    return new ClientCore(sodium, config, {
      sendPacket: (to, data) => this.#send(entry, to, data),
      stateChanged: (state, server) => {
        entry.records.add(PeerRecordKind.clientState, clientStateCodes[state], entry.attempt, server ?? null, null)
      },
      payload: (data) => entry.records.add(PeerRecordKind.payload, 0, 0, null, data),
    })
  }

  #send(entry: ProtocolSocket, to: string, data: Uint8Array): void {
    const { host, port } = destination(to, entry.ipv6)
    // Port 0 (a token may list it): the kernel refuses it, as sendmmsg does on the native engine; counted.
    if (port === 0) {
      entry.sendErrors++
      return
    }
    try {
      entry.socket.send(data, port, host, (error) => {
        if (error !== null) entry.sendErrors++
      })
    } catch {
      entry.sendErrors++ // refused before it was queued (an address node:dgram will not take)
    }
  }

  #receive(entry: ProtocolSocket, data: Buffer, rinfo: dgram.RemoteInfo): void {
    if (entry.closing) return
    const now = monotonicUs()
    const from = sourceText(rinfo)
    if (entry.server !== undefined) entry.server.receive(from, data, this.#serverClock(now))
    else entry.clientCore?.receive(withoutZone(from), data, now)
    this.#afterWork(entry)
  }

  /** After the core did something: its records go to JavaScript at the end of this turn, its timer is set again. */
  #afterWork(entry: ProtocolSocket): void {
    if (!entry.deliveryScheduled && (entry.records.count > 0 || this.#finished(entry))) {
      entry.deliveryScheduled = true
      // Once per turn of the event loop: the datagrams node:dgram hands over in one poll phase make one batch.
      setImmediate(() => this.#deliver(entry))
    }
    this.#arm(entry)
  }

  #finished(entry: ProtocolSocket): boolean {
    if (!entry.stopping) return false
    return entry.server !== undefined ? entry.server.stopped : !(entry.clientCore?.hasPendingDisconnects ?? false)
  }

  #deliver(entry: ProtocolSocket): void {
    entry.deliveryScheduled = false
    if (entry.records.count > 0) {
      const { slab, count } = entry.records.take()
      try {
        entry.client.onBatch(slab, 0, count)
      } catch (error) {
        surfaceLater(error) // the socket's close below must still happen
      }
    }
    if (this.#finished(entry) && !entry.closing) this.#close(entry)
  }

  /** Sets the socket's timer for the core's next deadline (one timer per socket, moved only when that changes). */
  #arm(entry: ProtocolSocket): void {
    if (entry.closing) return
    const due = entry.server?.nextDeadlineUs() ?? entry.clientCore?.nextDeadlineUs() ?? Number.POSITIVE_INFINITY
    if (due === entry.timerDueUs) return
    clearTimeout(entry.timer)
    entry.timerDueUs = due
    entry.timer = undefined
    if (!Number.isFinite(due)) return
    entry.timer = setTimeout(() => this.#fire(entry), Math.max(0, Math.ceil((due - monotonicUs()) / 1000)))
    entry.timer.unref()
  }

  #fire(entry: ProtocolSocket): void {
    entry.timer = undefined
    entry.timerDueUs = Number.POSITIVE_INFINITY
    if (entry.closing) return
    const now = monotonicUs()
    if (entry.server !== undefined) entry.server.update(this.#serverClock(now))
    else entry.clientCore?.update(now)
    this.#afterWork(entry)
  }

  #close(entry: ProtocolSocket): void {
    entry.closing = true
    clearTimeout(entry.timer)
    entry.socket.close(() => {
      try {
        entry.client.onClosed() // reads the socket's final counters first
      } finally {
        this.remove(entry)
      }
    })
  }
}

/** The process's fallback engine, made on first use and forgotten when its last socket closes. */
export const sharedFallbackEngine = sharedInstance((onIdle) => new FallbackEngine(onIdle))
