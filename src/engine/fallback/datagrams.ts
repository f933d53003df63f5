// The fallback engine's raw datagram sockets: what a DatagramSocket asks of its engine, on node:dgram, for
// where the native addon cannot load. Received datagrams reach the socket as the native engine hands them
// over (receive records in a slab, batchSize at most per batch, native/engine/layout.h), once per turn of the event
// loop; sends go to node:dgram at once, with back-pressure when too many are in flight.
import type dgram from 'node:dgram'
import { javascriptIp, type QueuedAddress } from '../../util/ip.ts'
import type { NativeSocketInfo, NativeSocketOptions } from '../native/addon.ts'
import { type EngineClient, SlabView } from '../engine.ts'
import { FallbackSockets, type OpeningClient, bindSocket, sharedInstance } from './sockets.ts'
import { checkNotExiting } from '../process-exit.ts'
import { surfaceLater } from '../../util/errors.ts'
import { Operation, align8, layout } from '../layout.ts'

/** Datagrams a socket may have handed to node:dgram and not seen sent; past it, send() returns false. */
export const maxInFlight = 4096

/** The stats fields of a socket, in the native order (engine.readStats). */
const Stat = { packetsIn: 0, bytesIn: 1, batchesIn: 2, packetsOut: 3, bytesOut: 4, batchesOut: 5, sendErrors: 6, receiveErrors: 7 } as const

interface RawSocket {
  readonly id: number
  readonly client: EngineClient
  readonly socket: dgram.Socket
  readonly ipv6: boolean
  readonly batchSize: number
  readonly stats: Float64Array
  /** Received and not yet handed over. */
  readonly received: { data: Buffer; rinfo: dgram.RemoteInfo }[]
  deliveryScheduled: boolean
  inFlight: number
  /** send() was refused: 'drain' once in-flight sends fall to half the bound. */
  blocked: boolean
  closing: boolean
  /** node:dgram's close() was called (a second call throws, from wherever it was made). */
  closed: boolean
}

export class FallbackDatagramEngine extends FallbackSockets<RawSocket> {
  /** Text to bytes and back, in JavaScript (the addon's parseIp and formatIp). */
  readonly ip = javascriptIp

  /** Opens and binds a socket; resolves once bound, or rejects with the bind's system error. */
  open(options: NativeSocketOptions, client: EngineClient): Promise<NativeSocketInfo> {
    const { entry, bound } = this.#newSocket(options, client)
    return this.whenOpen(entry, bound, options)
  }

  /**
   * open() returning at once, for the bind a send() makes (any address, any port): node:dgram keeps what is
   * sent meanwhile until the socket is bound.
   */
  openNow(options: NativeSocketOptions, client: OpeningClient): NativeSocketInfo {
    const { entry, bound } = this.#newSocket(options, client)
    return this.openingNow(entry, bound, options, client)
  }

  #newSocket(options: NativeSocketOptions, client: EngineClient): { entry: RawSocket; bound: Promise<void> } {
    const { socket, bound } = bindSocket(options)
    const entry: RawSocket = {
      id: this.nextId(),
      client,
      socket,
      ipv6: options.ipv6,
      batchSize: options.batchSize,
      stats: new Float64Array(layout.statsFields),
      received: [],
      deliveryScheduled: false,
      inFlight: 0,
      blocked: false,
      closing: false,
      closed: false,
    }
    void bound.then(
      () => {
        socket.on('error', (error: NodeJS.ErrnoException) => {
          entry.stats[Stat.receiveErrors]!++
          try {
            client.onError(error.errno ?? 0, 1, Operation.receive)
          } catch (thrown) {
            surfaceLater(thrown)
          }
        })
      },
      () => {},
    )
    socket.on('message', (data, rinfo) => this.#receive(entry, data, rinfo))
    this.add(entry)
    return { entry, bound }
  }

  readStats(id: number, out: Float64Array): boolean {
    const entry = this.sockets.get(id)
    if (entry === undefined) return false
    out.set(entry.stats)
    return true
  }

  /** Sends go to node:dgram as they are queued: nothing waits for a flush. */
  flush(): void {}

  /**
   * Sends one datagram (copied: the caller may reuse its buffer). False, sending nothing, when maxInFlight
   * are on their way already; the client then gets onDrain() once half of them are.
   */
  enqueue(_client: EngineClient, socketId: number, data: Uint8Array, port: number, address: QueuedAddress): boolean {
    checkNotExiting()
    const entry = this.sockets.get(socketId)
    if (entry === undefined || entry.closing) return true // as the native engine drops it
    if (entry.inFlight >= maxInFlight) {
      entry.blocked = true
      return false
    }
    let host = this.ip.formatIp(address.bytes, address.family, address.scopeId)
    if (address.family === 4 && entry.ipv6) host = `::ffff:${host}`
    const bytes = Buffer.from(data)
    entry.inFlight++
    try {
      entry.socket.send(bytes, port, host, (error) => this.#sent(entry, bytes.byteLength, error))
    } catch (error) {
      this.#sent(entry, 0, error as Error)
    }
    return true
  }

  #sent(entry: RawSocket, size: number, error: Error | null): void {
    entry.inFlight--
    if (error === null) {
      entry.stats[Stat.packetsOut]!++
      entry.stats[Stat.bytesOut]! += size
      entry.stats[Stat.batchesOut]!++
    } else {
      entry.stats[Stat.sendErrors]!++
      // Reported as the native engine reports a send the kernel refused: an 'error' event.
      try {
        entry.client.onError((error as NodeJS.ErrnoException).errno ?? 0, 1, Operation.send)
      } catch (thrown) {
        surfaceLater(thrown)
      }
    }
    if (entry.blocked && entry.inFlight <= maxInFlight / 2) {
      entry.blocked = false
      try {
        entry.client.onDrain()
      } catch (thrown) {
        surfaceLater(thrown) // as the native engine's 'drain': not out of node:dgram's callback
      }
    }
    // The 'error' or 'drain' handler above may have closed the socket already.
    if (entry.closing && entry.inFlight === 0) this.#finishClose(entry)
  }

  /** Closes a socket once what was sent on it is out (as the native engine's close). */
  close(id: number): void {
    const entry = this.sockets.get(id)
    if (entry === undefined || entry.closing) return
    entry.closing = true
    if (entry.inFlight === 0) this.#finishClose(entry)
  }

  #finishClose(entry: RawSocket): void {
    if (entry.closed) return
    entry.closed = true
    entry.socket.close(() => {
      try {
        entry.client.onClosed() // reads the socket's last counters first, and gives back its reference
      } finally {
        this.remove(entry)
      }
    })
  }

  #receive(entry: RawSocket, data: Buffer, rinfo: dgram.RemoteInfo): void {
    if (entry.closing) return
    entry.received.push({ data, rinfo })
    if (entry.deliveryScheduled) return
    entry.deliveryScheduled = true
    // Once per turn of the event loop: the datagrams node:dgram hands over in one poll phase make batches.
    setImmediate(() => this.#deliver(entry))
  }

  #deliver(entry: RawSocket): void {
    entry.deliveryScheduled = false
    while (entry.received.length > 0 && !entry.closing) {
      const batch = entry.received.splice(0, entry.batchSize)
      let size = 0
      for (const { data } of batch) size += align8(layout.recvHeaderSize + data.byteLength)
      const bytes = new Uint8Array(size)
      const view = new DataView(bytes.buffer)
      let at = 0
      // The sender's address as the kernel reports it (an IPv4 one to a dual-stack socket as ::ffff:a.b.c.d), as
      // the native engine does: parsed once for a run of datagrams from the same address, then copied.
      let lastAddress = ''
      let lastAt = 0
      for (const { data, rinfo } of batch) {
        view.setUint32(at, data.byteLength, true)
        view.setUint16(at + 4, rinfo.port, true)
        if (rinfo.address === lastAddress) {
          bytes[at + 6] = bytes[lastAt + 6]!
          bytes.copyWithin(at + 8, lastAt + 8, lastAt + 28)
        } else {
          const family = this.ip.parseIp(rinfo.address, bytes.subarray(at + 8, at + 28))
          bytes[at + 6] = family === 0 ? (rinfo.family === 'IPv4' ? 4 : 6) : family
          lastAddress = rinfo.address
          lastAt = at
        }
        bytes.set(data, at + layout.recvHeaderSize)
        entry.stats[Stat.packetsIn]!++
        entry.stats[Stat.bytesIn]! += data.byteLength
        at += align8(layout.recvHeaderSize + data.byteLength)
      }
      entry.stats[Stat.batchesIn]!++
      // A handler may detach the slab's buffer (transfer()): it reopens over a new copy, and the batch goes on.
      try {
        entry.client.onBatch(new SlabView(() => bytes.slice().buffer), 0, batch.length)
      } catch (error) {
        surfaceLater(error) // a throwing handler costs the batches after it nothing
      }
    }
  }
}

/** The process's fallback engine for datagram sockets, made on first use and forgotten when its last socket closes. */
export const sharedFallbackDatagramEngine = sharedInstance((onIdle) => new FallbackDatagramEngine(onIdle))
