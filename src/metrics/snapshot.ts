// Servers' metrics as a snapshot of plain numbers and strings (sans-IO): what the exporters read at each
// collection, and what a worker thread posts to a main thread, which sums its workers' (mergeMetricSnapshots).
import { type DisconnectReason, Server, type ServerStats, peerLinkSamples } from '../api/server.ts'
import { engineInUse } from '../api/native-info.ts'
import type { Peer } from '../api/peer.ts'
import { VolleyError, VolleyTypeError, describe } from '../util/errors.ts'
import { type DistributionSnapshot, distributionOf, emptyDistribution, mergeDistributions } from './distribution.ts'
import { type DistributionFamilyName, type ValueFamilyName, lossBuckets, metricFamilies, metricFamily, rttBucketsSeconds } from './families.ts'

/** A value of a counter, gauge or info family, with its labels. */
export interface MetricSample {
  /** Label values by label name: the family's labels (none for most families). */
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/**
 * The metrics of one or more servers at one moment, by family name (metricFamilies): structured-clone-able
 * (numbers, strings, plain objects and arrays only). A family no server has is absent: those of channels
 * (channelsOnly), where no server has channels.
 */
export interface MetricSnapshot {
  /** Counter, gauge and info families: their samples. */
  readonly samples: { readonly [name in ValueFamilyName]?: readonly MetricSample[] }
  /** Distribution families. */
  readonly distributions: { readonly [name in DistributionFamilyName]?: DistributionSnapshot }
}

/**
 * What an exporter reads its metrics from: servers (it attaches a ServerMetrics of its own, which its close()
 * detaches), a ServerMetrics (the caller's: it stays attached), or a function that returns a snapshot, or a
 * promise of one (a main thread's merge of its workers' snapshots).
 */
export type MetricSnapshotSource = Server | readonly Server[] | ServerMetrics | (() => MetricSnapshot | PromiseLike<MetricSnapshot>)

/** What an exporter's registration returns. */
export interface MetricsRegistration {
  /** Stops exporting: unregisters what it registered, and detaches from the servers it was given. Idempotent. */
  close(): void
}

/** Every reason a 'disconnect' event gives, each counted from 0 (a series that appears late hides its first increase from rate()). */
const disconnectReasons: Record<DisconnectReason, true> = {
  timeout: true,
  disconnected: true,
  'server-disconnect': true,
  'server-closed': true,
  'channels-mismatch': true,
  'reassembly-stalled': true,
}

/** Every key of ServerStats['drops']: the compiler checks that none is missing. */
const dropCauseKeys: Record<keyof ServerStats['drops'], true> = {
  malformed: true,
  replayed: true,
  tooOld: true,
  decryptionFailed: true,
  unknownAddress: true,
  wrongProtocol: true,
  tokenExpired: true,
  tokenRefused: true,
  requestsThrottled: true,
  receiveBufferFull: true,
  sendBufferFull: true,
}
const dropCauses = Object.keys(dropCauseKeys) as (keyof ServerStats['drops'])[]

/**
 * The metrics of one or more servers, read at each snapshot(). Counts the servers' 'connect' and 'disconnect'
 * events from its construction on (connections_accepted_total, disconnects_total); the rest comes from
 * server.stats() and the peers' link statistics as they stand. Servers' values add up (or take the largest,
 * as their family's aggregation says). close() removes its listeners.
 */
export class ServerMetrics {
  readonly #servers: readonly Server[]
  #connections = 0
  readonly #disconnects = Object.fromEntries(Object.keys(disconnectReasons).map((reason) => [reason, 0])) as Record<DisconnectReason, number>
  readonly #onConnect = (): void => {
    this.#connections++
  }
  readonly #onDisconnect = (_peer: Peer, reason: DisconnectReason): void => {
    this.#disconnects[reason] = (this.#disconnects[reason] ?? 0) + 1
  }
  /** Scratch for the peers' RTT and loss, grown to the most peers seen: no allocation per peer or per snapshot. */
  #rttScratch = new Float64Array(0)
  #lossScratch = new Float64Array(0)
  #closed = false

  /** Throws ERR_INVALID_ARG_TYPE unless `servers` is a Server or an array of them. */
  constructor(servers: Server | readonly Server[]) {
    this.#servers = serversOf(servers, 'servers')
    for (const server of this.#servers) {
      server.on('connect', this.#onConnect)
      server.on('disconnect', this.#onDisconnect)
    }
  }

  /** The servers' metrics now. Throws ERR_INVALID_STATE once closed (its event counts would be stale). */
  snapshot(): MetricSnapshot {
    if (this.#closed) throw new VolleyError('ERR_INVALID_STATE', 'These ServerMetrics were closed: they count no more events; make new ones')
    const samples = new SampleTable()
    const engine = engineName()
    if (engine !== undefined) samples.add('engine_info', { engine }, 1)
    let channels = false
    let peers = 0
    for (const server of this.#servers) {
      const stats = server.stats()
      addServerStats(samples, stats)
      channels ||= stats.link !== null
      peers += server.peers.size
    }
    samples.add('connections_accepted_total', noLabels, this.#connections)
    for (const [reason, count] of Object.entries(this.#disconnects)) samples.add('disconnects_total', { reason }, count)
    return { samples: samples.toRecord(), distributions: channels ? this.#peerDistributions(peers) : {} }
  }

  /** Detaches from the servers (their events are counted no more). Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const server of this.#servers) {
      server.off('connect', this.#onConnect)
      server.off('disconnect', this.#onDisconnect)
    }
  }

  /** The RTT and loss distributions over the servers' peers now (servers with channels). */
  #peerDistributions(peers: number): MetricSnapshot['distributions'] {
    if (this.#rttScratch.length < peers) {
      const size = Math.max(peers, this.#rttScratch.length * 2, 64)
      this.#rttScratch = new Float64Array(size)
      this.#lossScratch = new Float64Array(size)
    }
    let count = 0
    for (const server of this.#servers) {
      count += server[peerLinkSamples](this.#rttScratch.subarray(count, peers), this.#lossScratch.subarray(count, peers))
    }
    const rtt = this.#rttScratch.subarray(0, count)
    for (let i = 0; i < count; i++) rtt[i] = rtt[i]! > 0 ? rtt[i]! / 1e6 : Number.NaN // µs to s; 0: not measured yet
    return {
      peer_rtt_seconds: distributionOf(rtt, rttBucketsSeconds),
      peer_loss_ratio: distributionOf(this.#lossScratch.subarray(0, count), lossBuckets),
    }
  }
}

const noLabels: Readonly<Record<string, string>> = Object.freeze({})

/** The engine this process runs its sockets on; undefined where deciding it throws (no server could listen then). */
function engineName(): 'native' | 'fallback' | undefined {
  try {
    return engineInUse().engine
  } catch {
    return undefined
  }
}

function addServerStats(samples: SampleTable, stats: ServerStats): void {
  samples.add('connected_peers', noLabels, stats.connectedClients)
  samples.add('handshakes_pending', noLabels, stats.handshakes.pending)
  samples.add('handshakes_replaced_total', noLabels, stats.handshakes.replaced)
  samples.add('handshakes_evicted_total', noLabels, stats.handshakes.evicted)
  samples.add('connections_denied_total', noLabels, stats.denied)
  samples.add('received_packets_total', noLabels, stats.packets.in)
  samples.add('sent_packets_total', noLabels, stats.packets.out)
  samples.add('received_bytes_total', noLabels, stats.bytes.in)
  samples.add('sent_bytes_total', noLabels, stats.bytes.out)
  for (const cause of dropCauses) samples.add('drops_total', { cause }, stats.drops[cause])
  samples.add('send_errors_total', noLabels, stats.errors.send)
  samples.add('channels_mismatch_total', noLabels, stats.channelsMismatch)
  samples.add('channels_unannounced_total', noLabels, stats.channelsUnannounced)
  if (stats.link !== null) {
    samples.add('send_queue_bytes', noLabels, stats.link.queue.bytes)
    samples.add('send_queue_messages', noLabels, stats.link.queue.depth)
    samples.add('send_queue_oldest_seconds', noLabels, stats.link.queue.delayMs / 1000)
  }
  if (stats.reassembly !== null) {
    samples.add('reassembly_used_bytes', noLabels, stats.reassembly.usedBytes)
    samples.add('reassembly_budget_bytes', noLabels, stats.reassembly.budgetBytes)
    samples.add('reassembly_evictions_total', noLabels, stats.reassembly.evictions)
    samples.add('reassembly_refusals_total', noLabels, stats.reassembly.refusals)
    samples.add('reassembly_stalled_total', noLabels, stats.reassembly.stalled)
  }
  samples.add('private_keys_accepted', noLabels, stats.privateKeys.accepted)
  samples.add('previous_key_requests_total', noLabels, stats.privateKeys.previousKeyRequests)
}

/** Samples by family and label set, each family's values combined as its aggregation says. */
class SampleTable {
  readonly #families = new Map<string, Map<string, { labels: Readonly<Record<string, string>>; value: number }>>()

  add(family: string, labels: Readonly<Record<string, string>>, value: number): void {
    let samples = this.#families.get(family)
    if (samples === undefined) {
      samples = new Map()
      this.#families.set(family, samples)
    }
    const key = labelKey(labels)
    const held = samples.get(key)
    if (held === undefined) samples.set(key, { labels, value })
    else held.value = metricFamily(family)?.aggregation === 'max' ? Math.max(held.value, value) : held.value + value
  }

  /** By family, in metricFamilies' order (then any this version does not know). */
  toRecord(): MetricSnapshot['samples'] {
    const record: Record<string, MetricSample[]> = {}
    const names = [...metricFamilies.map((family) => family.name), ...this.#families.keys()]
    for (const name of names) {
      const samples = this.#families.get(name)
      if (samples !== undefined && !(name in record)) record[name] = [...samples.values()].map(({ labels, value }) => ({ labels: { ...labels }, value }))
    }
    return record
  }
}

/** A label set as a key: its pairs in name order. */
function labelKey(labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels)
  if (names.length === 0) return ''
  if (names.length === 1) return `${names[0]!}=${labels[names[0]!]!}`
  return JSON.stringify(names.sort().map((name) => [name, labels[name]]))
}

/**
 * Snapshots summed into one, as a main thread sums its workers': each family's samples with the same labels
 * add (counters, most gauges) or take the largest (its aggregation: max; an info family's label sets so
 * unite), distributions merge (mergeDistributions: buckets, sums and counts add; quantiles estimated from the
 * buckets). A family of a name this version does not know: its samples add; such a distribution is left out.
 * Throws ERR_INVALID_ARG_TYPE for what is no snapshot.
 */
export function mergeMetricSnapshots(...snapshots: MetricSnapshot[]): MetricSnapshot {
  const samples = new SampleTable()
  const distributions: Record<string, DistributionSnapshot> = {}
  snapshots.forEach((snapshot, index) => {
    checkSnapshot(snapshot, () => new VolleyTypeError('ERR_INVALID_ARG_TYPE', `Argument ${index + 1} of mergeMetricSnapshots() must be a metric snapshot. Received ${describe(snapshot)}`))
    for (const [name, list] of Object.entries(snapshot.samples) as [string, readonly MetricSample[]][]) {
      for (const sample of list) samples.add(name, sample.labels, sample.value)
    }
    for (const [name, distribution] of Object.entries(snapshot.distributions) as [string, DistributionSnapshot][]) {
      const bounds = metricFamily(name)?.buckets
      if (bounds === undefined) continue
      const held = distributions[name]
      distributions[name] = mergeDistributions(held ?? emptyDistribution(bounds), distribution, bounds)
    }
  })
  return { samples: samples.toRecord(), distributions }
}

/** Throws the error made by `error` unless `value` has a snapshot's shape (its two records). */
export function checkSnapshot(value: unknown, error: () => Error): asserts value is MetricSnapshot {
  const candidate = value as Partial<MetricSnapshot> | null
  if (typeof value !== 'object' || candidate === null || typeof candidate.samples !== 'object' || candidate.samples === null || typeof candidate.distributions !== 'object' || candidate.distributions === null) {
    throw error()
  }
}

/** The servers given as a Server or an array of them, each once; ERR_INVALID_ARG_TYPE otherwise. */
function serversOf(value: unknown, what: string): readonly Server[] {
  const list = Array.isArray(value) ? (value as unknown[]) : [value]
  for (const item of list) {
    if (!(item instanceof Server)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${what}" argument must be a Server or an array of Servers. Received ${Array.isArray(value) ? `an array holding ${describe(item)}` : describe(item)}`)
    }
  }
  return [...new Set(list as Server[])]
}

/** Where an exporter takes each collection's snapshot, and what its close() releases. */
export interface SnapshotTaker {
  take(): MetricSnapshot | PromiseLike<MetricSnapshot>
  /** Detaches the ServerMetrics the exporter made (none for a caller's own, or a function). */
  close(): void
}

/** A source as an exporter reads it; ERR_INVALID_ARG_TYPE for what is no source. */
export function snapshotTaker(source: MetricSnapshotSource, exporter: string): SnapshotTaker {
  if (source instanceof ServerMetrics) return { take: () => source.snapshot(), close: () => {} }
  if (typeof source === 'function') {
    const returned = (value: unknown): MetricSnapshot => {
      checkSnapshot(value, () => new VolleyTypeError('ERR_INVALID_RETURN_VALUE', `The snapshot function given to ${exporter}() must return a metric snapshot (or a promise of one). Received ${describe(value)}`))
      return value
    }
    return {
      take: () => {
        const value = source()
        return isPromiseLike(value) ? Promise.resolve(value).then(returned) : returned(value)
      },
      close: () => {},
    }
  }
  if (!(source instanceof Server) && !Array.isArray(source)) {
    throw new VolleyTypeError(
      'ERR_INVALID_ARG_TYPE',
      `The "source" argument of ${exporter}() must be a Server, an array of Servers, a ServerMetrics or a function that returns a snapshot. Received ${describe(source)}`,
    )
  }
  const metrics = new ServerMetrics(source)
  return { take: () => metrics.snapshot(), close: () => metrics.close() }
}

export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
