// The netcode server and client as the fallback engine runs them on a socket: native/sockets/netcode_sockets.cc
// itself, the native engine's socket protocols with the delivery layer on their connections, built as
// WebAssembly (wasm-cores.ts). This is the part between them and node:dgram: it puts received datagrams and
// sends into the module, and takes out the datagrams to send and the records for JavaScript (the native
// engine's layout, native/sockets/socket_protocol.h). engine/fallback/engine.ts is the I/O around it.
import { formatIpv4, isIpv4Mapped, javascriptIp, parseIp } from '../../util/ip.ts'
import { VolleyRangeError, VolleyTypeError } from '../../util/errors.ts'
import type { NativeClientProtocol, NativeServerProtocol } from '../native/addon.ts'
import { linkFields } from '../layout.ts'
import type { RecordBatch } from '../record-batch.ts'
import { monotonicUs } from '../engine.ts'
import { type Cores, type Pointer, loadCores } from './wasm-cores.ts'

/** What a protocol gives its socket: records for JavaScript and datagrams to send. */
export interface ProtocolOutput {
  readonly records: RecordBatch
  /** A datagram to send to host:port (as node:dgram takes them); the protocol does not touch `data` again. */
  send(host: string, port: number, data: Uint8Array): void
}

/** Counters JavaScript reads from a protocol's socket: the native engine's order (src/engine/layout.ts). */
const maxCounters = 64
/** A received datagram in the receive area: its sender's 16 address bytes and 4 of padding, then its bytes. */
const receivedHeader = 20
/** A socket's receive area: its first size, and the most it grows to (a busy server's turn: 256 KiB). */
const initialReceiveArea = 8 * 1024
const maxReceiveArea = 256 * 1024

/** Frees a closed socket's peer counters once no view on them is left. */
const released = new FinalizationRegistry<{ cores: Cores; socket: Pointer }>(({ cores, socket }) => cores.exports._vp_release(socket))

/** A protocol of a fallback socket, as the engine drives it (native/sockets/socket_protocol.h's SocketProtocol). */
export class FallbackProtocol {
  readonly #cores: Cores
  readonly #socket: Pointer
  readonly #output: ProtocolOutput
  /** Scratch memory in the module for what goes in (a datagram, a message, a control's data); grown as needed. */
  #scratch: Pointer = 0
  #scratchBytes = 0
  /** Received datagrams of this turn, in the module's memory until receiveEnd(). */
  #received: Pointer = 0
  #receivedBytes = 0
  #receivedUsed = 0
  #counters: Pointer
  #closed = false
  /** Sent to or received from since the last endBatch(). */
  pending = false
  /** Datagrams dropped for want of room in the module's memory to take them in (counted as receiveBufferFull). */
  dropped = 0
  /** The per-peer counters (a server's) and link statistics (with channels), written in place by the module. */
  readonly peerCounters: Float64Array | null
  readonly links: Float64Array | null

  /**
   * boundPort: the port the socket bound (a server's publicAddress ending in ':0' stands for it). Throws the
   * TypeError or RangeError the native engine throws for a request it refuses. cores: the process's module, or
   * another instance (a test's, of a testing build).
   */
  constructor(
    protocol: NativeServerProtocol | NativeClientProtocol,
    boundPort: number,
    socketIsV6: boolean,
    output: ProtocolOutput,
    nowUs: number,
    cores: Cores = loadCores(),
  ) {
    const api = cores.exports
    this.#cores = cores
    this.#output = output
    const request = api._vp_request_new(protocol.kind === 'server' ? 1 : 0)
    const strings: Pointer[] = []
    try {
      const fields = protocol as unknown as Record<string, unknown>
      cores.requestFields.forEach((name, index) => {
        const value = fields[name]
        api._vp_request_number(request, index, typeof value === 'number' ? value : Number.NaN)
      })
      for (const mode of protocol.channels ?? []) {
        const text = cores.string(String(mode))
        strings.push(text)
        if (api._vp_request_channel(request, text) === 0) {
          throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `channels[${strings.length - 1}] must be 'reliable', 'unreliable' or 'sequenced'`)
        }
      }
      const skew = protocol.networkSimulator
      if (skew !== undefined) api._vp_request_clock_skew(request, skew.clockOffsetUs ?? Number.NaN, skew.clockDriftPpm ?? Number.NaN)
      if (protocol.kind === 'server') this.#serverRequest(request, protocol, strings)
      this.#socket = api._vp_make(request, boundPort, socketIsV6 ? 1 : 0, nowUs)
    } finally {
      api._vp_request_free(request) // wipes the keys it holds
      for (const text of strings) api._free(text)
    }
    if (this.#socket === 0) {
      const message = cores.readString(api._vp_error())
      throw api._vp_error_kind() === 2 ? new VolleyRangeError('ERR_OUT_OF_RANGE', message) : new VolleyTypeError('ERR_INVALID_ARG_VALUE', message)
    }
    this.#counters = api._malloc(maxCounters * 8)
    const peers = api._vp_peer_count(this.#socket)
    const counters = api._vp_peer_counters(this.#socket)
    this.peerCounters = protocol.kind === 'server' && counters !== 0 ? new Float64Array(cores.heap.buffer, counters, peers * cores.peerCounterFields) : null
    const links = api._vp_links(this.#socket)
    this.links = links !== 0 ? new Float64Array(cores.heap.buffer, links, peers * linkFieldsOf(protocol)) : null
    const views = { cores, socket: this.#socket }
    // The counters stay while a view on them may be read (a Server's stats after its close).
    released.register(this.peerCounters ?? this.links ?? this, views)
  }

  #serverRequest(request: Pointer, protocol: NativeServerProtocol, strings: Pointer[]): void {
    const api = this.#cores.exports
    const id = protocol.protocolId
    if (typeof id === 'bigint') api._vp_request_protocol_id(request, Number(BigInt.asUintN(32, id)), Number(BigInt.asUintN(32, id >> 32n)))
    const key = this.#bytes(protocol.privateKey)
    if (protocol.privateKey instanceof Uint8Array && protocol.privateKey.byteLength === 32) api._vp_request_private_key(request, key)
    for (const previous of protocol.previousKeys ?? []) {
      const at = this.#bytes(previous.key)
      api._vp_request_previous_key(request, at, previous.untilUs)
    }
    this.#cores.heap.fill(0, this.#scratch, this.#scratch + this.#scratchBytes) // the keys' copies
    const address = this.#cores.string(protocol.publicAddress)
    strings.push(address)
    api._vp_request_public_address(request, address)
  }

  /** `data` copied into the scratch memory; where it is. */
  #bytes(data: Uint8Array): Pointer {
    if (data.byteLength > this.#scratchBytes) {
      const api = this.#cores.exports
      if (this.#scratch !== 0) api._free(this.#scratch)
      this.#scratchBytes = Math.max(2048, data.byteLength)
      this.#scratch = api._malloc(this.#scratchBytes)
    }
    this.#cores.heap.set(data, this.#scratch)
    return this.#scratch
  }

  /**
   * A received datagram (address as node:dgram gives it), handed over with the others of this turn by
   * receiveEnd(). wireBytes: its length on the wire, where it was too large to be a packet and comes empty.
   */
  receive(address: string, port: number, data: Uint8Array, wireBytes: number): void {
    if (this.#closed) return
    const ip = parseIp(javascriptIp, address)
    if (ip === null) return
    const size = (receivedHeader + data.byteLength + 7) & ~7
    if (this.#receivedUsed + size > this.#receivedBytes && !this.#growReceived(size)) {
      this.dropped++ // as a full kernel buffer drops it
      return
    }
    const heap = this.#cores.heap
    const at = this.#received + this.#receivedUsed
    this.#receivedUsed += size
    // A dual-stack socket's IPv4 sender as IPv4, as the native engine takes it (UnmapIpv4).
    const mapped = ip.family === 6 && isIpv4Mapped(ip.bytes)
    heap.set(ip.bytes, at)
    if (mapped) heap.copyWithin(at, at + 12, at + 16).fill(0, at + 4, at + 16) // IPv4 fills the first 4, the rest are 0
    heap.set(data, at + receivedHeader)
    this.#cores.exports._vp_receive(this.#socket, mapped ? 4 : ip.family, at, ip.scopeId, port, at + receivedHeader, data.byteLength, wireBytes)
    this.pending = true
  }

  /**
   * Room for a datagram of `size` more bytes: the area starts small (an idle client's stays so) and doubles,
   * up to maxReceiveArea, each time a turn's datagrams filled it. What it holds is handed over first: the
   * module holds pointers into it until receiveEnd(). False when the module's memory (fixed: scripts/build-wasm.sh) is full.
   */
  #growReceived(size: number): boolean {
    const api = this.#cores.exports
    this.receiveEnd(monotonicUs())
    const wanted = Math.max(size, Math.min(maxReceiveArea, this.#receivedBytes * 2 || initialReceiveArea))
    if (wanted <= this.#receivedBytes) return true
    if (this.#received !== 0) api._free(this.#received)
    this.#received = api._malloc(wanted)
    this.#receivedBytes = this.#received === 0 ? 0 : wanted
    return this.#received !== 0
  }

  /** The datagrams received since the last call, to the protocol in one batch. */
  receiveEnd(nowUs: number): void {
    if (this.#receivedUsed === 0 || this.#closed) return
    this.#cores.exports._vp_receive_end(this.#socket, nowUs)
    this.#receivedUsed = 0
    this.#takeOutput()
  }

  // What was received goes first, in update(), send() and control(): as it came.
  update(nowUs: number): void {
    if (this.#closed) return
    this.receiveEnd(nowUs)
    this.#cores.exports._vp_update(this.#socket, nowUs)
    this.#takeOutput()
  }

  /** When update() is due next (monotonic µs; Infinity: never). */
  nextDeadlineUs(): number {
    return this.#closed ? Number.POSITIVE_INFINITY : this.#cores.exports._vp_next_deadline(this.#socket)
  }

  send(peer: number, channel: number, data: Uint8Array, nowUs: number): void {
    if (this.#closed) return
    this.receiveEnd(nowUs)
    this.#cores.exports._vp_send(this.#socket, peer, channel, this.#bytes(data), data.byteLength, nowUs)
    this.pending = true
    this.#takeOutput()
  }

  /** Flushes what this turn's receives and sends left: one flush (shared packets, the ACKs that are due) per connection. */
  endBatch(nowUs: number): void {
    this.receiveEnd(nowUs)
    if (!this.pending || this.#closed) return
    this.pending = false
    this.#cores.exports._vp_end_batch(this.#socket, nowUs)
    this.#takeOutput()
  }

  control(op: number, arg: number, data: Uint8Array | undefined, nowUs: number): void {
    if (this.#closed) return
    this.receiveEnd(nowUs)
    const bytes = data ?? new Uint8Array(0)
    this.#cores.exports._vp_control(this.#socket, op, arg, this.#bytes(bytes), bytes.byteLength, nowUs)
    this.#cores.heap.fill(0, this.#scratch, this.#scratch + bytes.byteLength) // a rotated key's copy
    data?.fill(0)
    this.#takeOutput()
  }

  /**
   * The thread was busy for about `us` until nowUs (a timer fell due that long ago): the peers' packets waited
   * in the kernel meanwhile, as while the native engine's reading is paused. That time does not count against
   * a peer's wait for settings, and the packets sent before nowUs give no RTT sample.
   */
  stalled(us: number, nowUs: number): void {
    if (this.#closed) return
    const api = this.#cores.exports
    api._vp_reading_paused(this.#socket, 1, Math.max(0, nowUs - us))
    api._vp_reading_paused(this.#socket, 0, nowUs)
  }

  /** Stopped: the socket may close. */
  get finished(): boolean {
    return this.#closed || this.#cores.exports._vp_finished(this.#socket) !== 0
  }

  /** The socket has closed: the protocol goes, and a server's keys with it. */
  closed(): void {
    if (this.#closed) return
    this.#closed = true
    const api = this.#cores.exports
    api._vp_close(this.#socket)
    for (const pointer of [this.#scratch, this.#received, this.#counters]) if (pointer !== 0) api._free(pointer)
    this.#scratch = this.#received = this.#counters = 0
  }

  /** The protocol's counters, in the native engine's order. */
  copyCounters(out: Float64Array): void {
    if (this.#closed) return
    const count = this.#cores.exports._vp_copy_counters(this.#socket, this.#counters, Math.min(out.length, maxCounters))
    out.set(new Float64Array(this.#cores.heap.buffer, this.#counters, count))
  }

  /** The datagrams and records the last call made: to the socket and to JavaScript. */
  #takeOutput(): void {
    const api = this.#cores.exports
    const socket = this.#socket
    const datagrams = api._vp_outbox_count(socket)
    if (datagrams > 0) {
      const { heap, view, datagram } = this.#cores
      let at = api._vp_outbox(socket)
      for (let i = 0; i < datagrams; i++, at += datagram.stride) {
        const name = at + datagram.name
        const port = view.getUint16(name + 2) // network order
        const size = view.getUint16(at + datagram.size, true)
        const data = heap.slice(at + datagram.data, at + datagram.data + size)
        this.#output.send(this.#host(name), port, data)
      }
      api._vp_outbox_clear(socket)
    }
    const count = api._vp_record_count(socket)
    if (count > 0) {
      const records = api._vp_records(socket)
      this.#output.records.append(this.#cores.heap.subarray(records, records + api._vp_records_size(socket)), count)
      api._vp_records_clear(socket)
    }
  }

  #lastV6 = new Uint8Array(20)
  #lastV6Host = ''

  /** The host of the sockaddr at `name` as node:dgram takes it (IPv6: the last one remembered, with its scope). */
  #host(name: Pointer): string {
    const { heap, view, datagram } = this.#cores
    if (view.getUint16(name, true) === datagram.afInet) return formatIpv4(heap, name + 4)
    // sin6_addr, then sin6_scope_id: compared with the last ones in place, with no view or closure per datagram.
    const at = name + 8
    let same = this.#lastV6Host !== ''
    for (let i = 0; same && i < 20; i++) same = heap[at + i] === this.#lastV6[i]
    if (!same) {
      this.#lastV6.set(heap.subarray(at, at + 20))
      this.#lastV6Host = javascriptIp.formatIp(this.#lastV6.subarray(0, 16), 6, view.getUint32(name + 24, true))
    }
    return this.#lastV6Host
  }
}

/** Link statistics per peer (the delivery layer's, with channels). */
function linkFieldsOf(protocol: NativeServerProtocol | NativeClientProtocol): number {
  return protocol.channels === undefined ? 0 : linkFields
}
