// The metric families a server exports: the one list both exporters (prometheus.ts, opentelemetry.ts) and
// docs/metrics.md describe. Names follow Prometheus's conventions, without the exporter's prefix (volley_).

/**
 * counter: a total that only grows (while its servers run). gauge: a value now. info: a gauge of 1 whose labels
 * say something (engine_info). distribution: a histogram over the peers connected when it is read, not a
 * cumulative one (each collection counts the peers afresh).
 */
export type MetricType = 'counter' | 'gauge' | 'info' | 'distribution'

/** A family of metrics: what it is called, what it measures, its labels and how its values combine. */
export interface MetricFamily {
  /** Prometheus's name, without the prefix; a counter's ends in _total. */
  readonly name: string
  readonly type: MetricType
  /** One sentence: what it counts or measures (Prometheus's HELP, OpenTelemetry's description). */
  readonly help: string
  /** The labels each of its samples has (the exporters add those of their `labels` option). */
  readonly labels: readonly string[]
  /**
   * How the values of several servers, or of several workers' snapshots, combine: sum, or the largest
   * (a delay, how many keys are accepted, an info family's 1). A distribution's buckets, sums and counts add.
   */
  readonly aggregation: 'sum' | 'max'
  /** The unit of its values, where it has one (Prometheus's suffix; OpenTelemetry's unit). */
  readonly unit?: 'seconds' | 'bytes' | 'ratio'
  /** Only servers with channels have it (it is absent from a snapshot of servers without them). */
  readonly channelsOnly?: true
  /** A distribution's bucket bounds, ascending (each bucket holds the values up to its bound; a last one, +Inf, the rest). */
  readonly buckets?: readonly number[]
}

/** RTT bucket bounds, seconds: 0.5 ms (loopback, a LAN) to 2 s (a link in trouble); slower ones in +Inf. */
export const rttBucketsSeconds: readonly number[] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2]

/** Loss ratio bucket bounds: 0 (no loss: most peers) to 1. */
export const lossBuckets: readonly number[] = [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]

const familyList = [
  {
    name: 'engine_info',
    type: 'info',
    help: 'The engine this process runs its sockets on (label engine: native, the addon; fallback, node:dgram with WebAssembly); always 1.',
    labels: ['engine'],
    aggregation: 'max',
  },
  { name: 'connected_peers', type: 'gauge', help: 'Peers connected now.', labels: [], aggregation: 'sum' },
  { name: 'handshakes_pending', type: 'gauge', help: 'Handshakes in progress: a connection request answered, its response not yet in.', labels: [], aggregation: 'sum' },
  {
    name: 'handshakes_replaced_total',
    type: 'counter',
    help: 'Pending handshakes given up for a newer request of the same client id from another address.',
    labels: [],
    aggregation: 'sum',
  },
  {
    name: 'handshakes_evicted_total',
    type: 'counter',
    help: 'Pending handshakes given up, the oldest, to make room for a new one when the handshake table was full.',
    labels: [],
    aggregation: 'sum',
  },
  { name: 'connections_denied_total', type: 'counter', help: 'Valid connection requests answered with denied: the server was full.', labels: [], aggregation: 'sum' },
  {
    name: 'connections_accepted_total',
    type: 'counter',
    help: "Peers connected (server 'connect' events) since the metrics were attached.",
    labels: [],
    aggregation: 'sum',
  },
  {
    name: 'disconnects_total',
    type: 'counter',
    help: "Peers whose connection ended (server 'disconnect' events) since the metrics were attached, by reason (timeout: the peer stopped answering).",
    labels: ['reason'],
    aggregation: 'sum',
  },
  { name: 'received_packets_total', type: 'counter', help: 'Datagrams received by the server socket.', labels: [], aggregation: 'sum' },
  { name: 'sent_packets_total', type: 'counter', help: 'Datagrams sent by the server socket.', labels: [], aggregation: 'sum' },
  { name: 'received_bytes_total', type: 'counter', help: 'Bytes of the datagrams received by the server socket.', labels: [], aggregation: 'sum', unit: 'bytes' },
  { name: 'sent_bytes_total', type: 'counter', help: 'Bytes of the datagrams sent by the server socket.', labels: [], aggregation: 'sum', unit: 'bytes' },
  {
    name: 'drops_total',
    type: 'counter',
    help: 'Datagrams dropped, by cause (the keys of server.stats().drops): refused by a check, throttled, or lost to a full socket buffer.',
    labels: ['cause'],
    aggregation: 'sum',
  },
  { name: 'send_errors_total', type: 'counter', help: 'Datagrams the kernel refused to send with an error (an unreachable network).', labels: [], aggregation: 'sum' },
  {
    name: 'channels_mismatch_total',
    type: 'counter',
    help: "Clients disconnected before 'connect' because their channels do not work with the server's.",
    labels: [],
    aggregation: 'sum',
  },
  {
    name: 'channels_unannounced_total',
    type: 'counter',
    help: "Clients disconnected before 'connect' because they announced no channels in time.",
    labels: [],
    aggregation: 'sum',
  },
  {
    name: 'send_queue_bytes',
    type: 'gauge',
    help: "Bytes queued to send to the connected peers (the delivery layer's send queues).",
    labels: [],
    aggregation: 'sum',
    unit: 'bytes',
    channelsOnly: true,
  },
  { name: 'send_queue_messages', type: 'gauge', help: 'Messages queued to send to the connected peers.', labels: [], aggregation: 'sum', channelsOnly: true },
  {
    name: 'send_queue_oldest_seconds',
    type: 'gauge',
    help: 'How long the oldest message still queued, of any peer, has waited.',
    labels: [],
    aggregation: 'max',
    unit: 'seconds',
    channelsOnly: true,
  },
  {
    name: 'reassembly_used_bytes',
    type: 'gauge',
    help: "Memory the peers' messages in reassembly take now.",
    labels: [],
    aggregation: 'sum',
    unit: 'bytes',
    channelsOnly: true,
  },
  {
    name: 'reassembly_budget_bytes',
    type: 'gauge',
    help: "The memory the peers' messages in reassembly may take between them (reassemblyBudgetBytes).",
    labels: [],
    aggregation: 'sum',
    unit: 'bytes',
    channelsOnly: true,
  },
  {
    name: 'reassembly_evictions_total',
    type: 'counter',
    help: 'Peers evicted to make room in the reassembly budget (they had sent nothing new for a second).',
    labels: [],
    aggregation: 'sum',
    channelsOnly: true,
  },
  {
    name: 'reassembly_refusals_total',
    type: 'counter',
    help: 'Messages that waited for want of room in the reassembly budget (their senders send them again).',
    labels: [],
    aggregation: 'sum',
    channelsOnly: true,
  },
  {
    name: 'reassembly_stalled_total',
    type: 'counter',
    help: "Peers disconnected with 'reassembly-stalled', before 'connect' or after.",
    labels: [],
    aggregation: 'sum',
    channelsOnly: true,
  },
  {
    name: 'private_keys_accepted',
    type: 'gauge',
    help: 'Private keys whose connect tokens are accepted now: the current one and those replaced and still in their grace.',
    labels: [],
    aggregation: 'max',
  },
  {
    name: 'previous_key_requests_total',
    type: 'counter',
    help: 'Connection requests whose token opened under a replaced private key still in its grace.',
    labels: [],
    aggregation: 'sum',
  },
  {
    name: 'peer_rtt_seconds',
    type: 'distribution',
    help: 'Smoothed round-trip time of each peer connected at collection time and measured yet (a distribution over peers, not cumulative).',
    labels: [],
    aggregation: 'sum',
    unit: 'seconds',
    channelsOnly: true,
    buckets: rttBucketsSeconds,
  },
  {
    name: 'peer_loss_ratio',
    type: 'distribution',
    help: 'Loss of each peer connected at collection time: the share of the packets with messages sent to it since it connected that were lost; peers sent no message yet are left out (a distribution over peers, not cumulative).',
    labels: [],
    aggregation: 'sum',
    unit: 'ratio',
    channelsOnly: true,
    buckets: lossBuckets,
  },
] as const satisfies readonly MetricFamily[]

/** Every family a snapshot may hold, in the order the exporters list them. */
export const metricFamilies: readonly MetricFamily[] = familyList

/** The name of a family (metricFamilies' names, without the prefix). */
export type MetricFamilyName = (typeof familyList)[number]['name']
/** The name of a distribution family. */
export type DistributionFamilyName = Extract<(typeof familyList)[number], { type: 'distribution' }>['name']
/** The name of a counter, gauge or info family. */
export type ValueFamilyName = Exclude<MetricFamilyName, DistributionFamilyName>

const byName: ReadonlyMap<string, MetricFamily> = new Map(metricFamilies.map((family) => [family.name, family]))

/** The family of that name; undefined for one this version does not know (a newer worker's). */
export function metricFamily(name: string): MetricFamily | undefined {
  return byName.get(name)
}
