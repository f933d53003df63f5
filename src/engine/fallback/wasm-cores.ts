// The protocol cores of native/ built as WebAssembly (scripts/build-wasm.sh: prebuilds/wasm/volley-protocols.cjs):
// the netcode server and client with the delivery layer on their connections, libsodium inside. One instance per
// process, made on first use, shared by every fallback socket; its memory is fixed in size (the views kept on it
// stay valid). The exports are native/wasm/protocols.cc's.
import { randomFillSync } from 'node:crypto'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { VolleyError } from '../../util/errors.ts'

/** A protocol socket in the module (a WasmSocket*), or a request being filled in (a ProtocolRequest*). */
export type Pointer = number

export interface CoreExports {
  _malloc(size: number): Pointer
  _free(pointer: Pointer): void
  _vp_init(): number
  _vp_heap_used(): number
  _vp_source_hash(): Pointer
  _vp_layout(what: number): number
  _vp_request_field_count(): number
  _vp_request_field_name(index: number): Pointer
  _vp_request_new(server: number): Pointer
  _vp_request_free(request: Pointer): void
  _vp_request_number(request: Pointer, field: number, value: number): void
  _vp_request_protocol_id(request: Pointer, low: number, high: number): void
  _vp_request_private_key(request: Pointer, key: Pointer): void
  _vp_request_previous_key(request: Pointer, key: Pointer, untilUs: number): void
  _vp_request_public_address(request: Pointer, text: Pointer): void
  _vp_request_channel(request: Pointer, mode: Pointer): number
  _vp_request_clock_skew(request: Pointer, offsetUs: number, driftPpm: number): void
  _vp_make(request: Pointer, boundPort: number, socketIsV6: number, nowUs: number): Pointer
  _vp_error(): Pointer
  _vp_error_kind(): number
  _vp_close(socket: Pointer): void
  _vp_release(socket: Pointer): void
  _vp_receive(socket: Pointer, family: number, ip: Pointer, scopeId: number, port: number, data: Pointer, size: number, wireSize: number): void
  _vp_receive_end(socket: Pointer, nowUs: number): void
  _vp_update(socket: Pointer, nowUs: number): void
  _vp_next_deadline(socket: Pointer): number
  _vp_send(socket: Pointer, peer: number, channel: number, data: Pointer, size: number, nowUs: number): void
  _vp_end_batch(socket: Pointer, nowUs: number): void
  _vp_control(socket: Pointer, op: number, arg: number, data: Pointer, size: number, nowUs: number): void
  _vp_reading_paused(socket: Pointer, paused: number, nowUs: number): void
  _vp_finished(socket: Pointer): number
  _vp_copy_counters(socket: Pointer, out: Pointer, capacity: number): number
  _vp_peer_counters(socket: Pointer): Pointer
  _vp_peer_count(socket: Pointer): number
  _vp_links(socket: Pointer): Pointer
  _vp_outbox(socket: Pointer): Pointer
  _vp_outbox_count(socket: Pointer): number
  _vp_outbox_clear(socket: Pointer): void
  _vp_records(socket: Pointer): Pointer
  _vp_records_size(socket: Pointer): number
  _vp_record_count(socket: Pointer): number
  _vp_records_clear(socket: Pointer): void
  _vp_announcement(packet: Pointer, size: number, out: Pointer, capacity: number): number
}

/** The module with views on its memory and what it said of its layout. */
export interface Cores {
  readonly exports: CoreExports
  readonly heap: Uint8Array
  readonly view: DataView
  /** Where a datagram to send lies in the outbox (native/sockets/socket_protocol.h's ProtocolOutput::Datagram). */
  readonly datagram: { stride: number; name: number; size: number; data: number; afInet: number; afInet6: number }
  readonly peerCounterFields: number
  /** The request's numeric fields by their option names (native/sockets/protocol_request.h). */
  readonly requestFields: readonly string[]
  readonly sourceHash: string
  /** NUL-terminated UTF-8 of `text`, in memory given back with free(). */
  string(text: string): Pointer
  /** The NUL-terminated string at `pointer`. */
  readString(pointer: Pointer): string
}

const moduleFile = 'volley-protocols.cjs'

/** The built module: prebuilds/wasm/, from src/engine/fallback/ or dist/engine/fallback/ alike. */
export function coresPath(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
  return join(root, 'prebuilds', 'wasm', moduleFile)
}

let cores: Cores | undefined

/** The process's module, instantiated at the first call (synchronously: some milliseconds). */
export function loadCores(): Cores {
  cores ??= instantiateCores(coresPath())
  return cores
}

/** Random 32-bit values for libsodium's randombytes, drawn from node:crypto 256 at a time. */
function randomSource(): () => number {
  const pool = new Uint32Array(256)
  let next = pool.length
  return () => {
    if (next === pool.length) {
      randomFillSync(pool)
      next = 0
    }
    const value = pool[next]!
    pool[next++] = 0
    return value
  }
}

/** A new instance of the module at `path` (loadCores()'s, or another build of it: tests load a testing build). */
export function instantiateCores(path: string): Cores {
  if (typeof (globalThis as { WebAssembly?: unknown }).WebAssembly !== 'object') {
    throw new VolleyError('ERR_CRYPTO_UNAVAILABLE', "the fallback engine's protocol cores and their crypto are WebAssembly, which this Node does not run (node --jitless)")
  }
  if (!existsSync(path)) {
    throw new VolleyError('ERR_CORES_NOT_FOUND', `the fallback engine's protocol cores are missing: ${path} (npm run build:wasm makes them)`)
  }
  const require = createRequire(import.meta.url)
  const create = require(path) as (options: object) => CoreExports & { HEAPU8: Uint8Array }
  const module = create({ getRandomValue: randomSource() })
  if (module._vp_init() !== 0) throw new VolleyError('ERR_CORES_NOT_FOUND', "the fallback engine's libsodium did not initialise")
  const heap = module.HEAPU8
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  const readString = (pointer: Pointer): string => decoder.decode(heap.subarray(pointer, heap.indexOf(0, pointer)))
  const requestFields: string[] = []
  for (let i = 0; i < module._vp_request_field_count(); i++) requestFields.push(readString(module._vp_request_field_name(i)))
  return {
    exports: module,
    heap,
    view: new DataView(heap.buffer),
    datagram: {
      stride: module._vp_layout(0),
      name: module._vp_layout(1),
      size: module._vp_layout(2),
      data: module._vp_layout(3),
      afInet: module._vp_layout(4),
      afInet6: module._vp_layout(5),
    },
    peerCounterFields: module._vp_layout(6),
    requestFields,
    sourceHash: readString(module._vp_source_hash()),
    string(text: string): Pointer {
      const bytes = encoder.encode(text)
      const at = module._malloc(bytes.byteLength + 1)
      heap.set(bytes, at)
      heap[at + bytes.byteLength] = 0
      return at
    },
    readString,
  }
}
