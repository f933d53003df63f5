// Loads the native addon (a local build first, then the committed prebuild) and checks that its byte
// layouts are the ones this JavaScript was written for.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { VolleyError, fromNativeError } from '../../util/errors.ts'
import { layout } from '../layout.ts'
import type { IpCodec } from '../../util/ip.ts'

/** What the native protocol options take. */
export interface NativeNetworkSimulator {
  loss: number
  duplicate: number
  reorder: number
  latencyUs: number
  jitterUs: number
  bandwidthBytesPerSec: number
  queueBytes: number
  seed: number
  clockOffsetUs: number
  clockDriftPpm: number
}

export interface NativeSocketInfo {
  id: number
  address: string
  port: number
  family: 4 | 6
  receiveBufferSize: number
  sendBufferSize: number
}

export interface NativeSocketOptions {
  ipv6: boolean
  ipv6Only: boolean
  reuseAddress: boolean
  reusePort: boolean
  receiveBufferSize: number
  sendBufferSize: number
  address: string
  port: number
  batchSize: number
  coalesceUs: number
  /** A protocol the engine runs over the socket's datagrams; none for a raw socket. */
  protocol?: NativeServerProtocol | NativeClientProtocol
}

/** A socket's open (its bind) failed: the system error, naming the address (its family's wildcard for '') and port. */
export function openError(error: unknown, options: Pick<NativeSocketOptions, 'address' | 'ipv6' | 'port'>): Error {
  return fromNativeError(error, { address: options.address !== '' ? options.address : options.ipv6 ? '::' : '0.0.0.0', port: options.port })
}

/** The delivery layer's settings (native/protocol/delivery/); absent channels: raw netcode payloads. */
export interface NativeDeliveryFields {
  channels?: ('reliable' | 'unreliable' | 'sequenced')[]
  maxMessageBytes?: number
  sendQueueBytes?: number
  pingIntervalUs?: number
  networkSimulator?: NativeNetworkSimulator
  /** A server's: a reliable message a peer started and stopped sending ends its connection after this (0: never). */
  reliableStallUs?: number
  /** A server's: the reassembly memory its connections share (0: none). */
  reassemblyBudgetBytes?: number
}

export interface NativeServerProtocol extends NativeDeliveryFields {
  kind: 'server'
  protocolId: bigint
  /** The current private key. */
  privateKey: Uint8Array
  /**
   * Keys it replaced before the server started that are still in their grace, newest first, accepted until
   * untilUs (CLOCK_MONOTONIC µs: monotonicUs()); at most layout.maxPrivateKeys - 1.
   */
  previousKeys?: { key: Uint8Array; untilUs: number }[]
  publicAddress: string
  maxClients: number
  keepAliveIntervalUs?: number
  disconnectIntervalUs?: number
  disconnectPackets?: number
}

export interface NativeClientProtocol extends NativeDeliveryFields {
  kind: 'client'
  requestIntervalUs?: number
  keepAliveIntervalUs?: number
  disconnectIntervalUs?: number
  disconnectPackets?: number
}

export interface NativeEngine {
  /** The event list onEvents(count) reads: memory of the addon's, as the slabs'. */
  events(): Int32Array
  /** A new slab (layout.slabSize bytes, the addon's memory): its id. */
  addReceiveSlab(): number
  addSendSlab(): number
  /** A new buffer over a slab's memory each call; null for an unknown slab or once the engine stopped. */
  receiveSlab(id: number): ArrayBuffer | null
  sendSlab(id: number): ArrayBuffer | null
  openSocket(options: NativeSocketOptions): NativeSocketInfo
  closeSocket(id: number): void
  forgetSocket(id: number): void
  submit(slab: number, byteLength: number): void
  socketStats(id: number, out: Float64Array): boolean
  protocolStats(id: number, out: Float64Array): boolean
  /** Every client slot's counters (layout.peerCounterFields each: PeerCounterField), live. */
  peerCounters(id: number): Float64Array | null
  peerLinks(id: number): Float64Array | null
  /** The ring of send slabs the I/O thread has finished with (native/engine/released_slabs.h). */
  releasedSlabs(): Int32Array
  takeLarge(id: number): ArrayBuffer | null
  /** The bytes of large messages parked for JavaScript and not taken yet (the engine reads no more past 64 MiB). */
  largeBytes(): number
  /** Small sends the JavaScript thread left to the I/O thread because that thread had woken and waited for its turn. */
  inlineSendsYielded(): number
  receivingInline(): boolean
  /** [spins, found]: looks for a next datagram after a turn of this thread's own (native/engine/busy_poll.h), and those that found one. */
  busyPollCounts(): [number, number]
  /** suffix: a byte the native side puts after data (a large send's channel), in the one copy it makes. */
  control(id: number, op: number, arg: number, data?: Uint8Array, suffix?: number): void
  setRef(ref: boolean): void
  shutdown(): void
}

/** The addon's exports; its parseIp and formatIp are an IpCodec (util/ip.ts). */
export interface Addon extends IpCodec {
  Engine: new (onEvents: (count: number) => void) => NativeEngine
  /** Bytes of slab and event memory (native/engine/shared_memory.h) not freed yet, in the whole process. */
  sharedMemoryBytes(): number
  layout: Record<keyof typeof layout, number>
  sourceHash: string
  sodiumVersion: string
}

/** The package root: three levels above this file, both in src/engine/native and in dist/engine/native. */
export const packageRoot = fileURLToPath(new URL('../../..', import.meta.url))

let loaded: Addon | undefined
let loadedFrom = ''

/** An error's message on one line (node-gyp-build's span several). */
function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).trim().replace(/\.?\s*\n\s*/g, '; ')
}

function addonNotFound(what: string, cause: unknown): VolleyError {
  const advice =
    process.platform === 'linux'
      ? 'Build it from source with `npx volley build-addon` (a C++17 compiler, make, python3 and libsodium-dev are needed).'
      : `It is made for Linux (epoll, recvmmsg), and builds nowhere else (this is ${process.platform}).`
  return new VolleyError('ERR_ADDON_NOT_FOUND', `volley's native addon could not be loaded: ${what}. ${advice}`, { cause })
}

/** The file the addon was loaded from (build/Release for a local build, else the prebuild). */
export function addonPath(): string {
  loadAddon()
  return loadedFrom
}

export function loadAddon(): Addon {
  if (loaded) return loaded
  const require = createRequire(import.meta.url)
  let addon: Addon
  let found: string
  try {
    found = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(packageRoot)
  } catch (cause) {
    throw addonNotFound(`no build in build/Release and no prebuild for ${process.platform}-${process.arch} (${oneLine(cause)})`, cause)
  }
  try {
    addon = require(found) as Addon
  } catch (cause) {
    const needs = found.includes(`prebuilds/${process.platform}-${process.arch}`) ? ' (a prebuild needs glibc 2.28 or newer, as Node’s own binaries do)' : ''
    throw addonNotFound(`${found} is there but did not load${needs}: ${oneLine(cause)}`, cause)
  }
  loadedFrom = found
  for (const [name, value] of Object.entries(layout)) {
    if (addon.layout[name as keyof typeof layout] !== value) {
      throw new VolleyError(
        'ERR_ADDON_MISMATCH',
        `volley's native addon has layout.${name} = ${addon.layout[name as keyof typeof layout]}, this JavaScript expects ${value}: rebuild it (npm run build:native)`,
      )
    }
  }
  loaded = addon
  return addon
}
