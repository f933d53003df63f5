// volley/metrics/prometheus: a prom-client registry scraped as Prometheus would, against a real server on
// loopback: every family of metricFamilies, with server.stats()'s values and the peers' own link statistics.
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { Client, Server, type ServerStats, engineInUse, generateConnectToken } from '../../src/index.ts'
import { ServerMetrics, lossBuckets, mergeMetricSnapshots, metricFamilies, rttBucketsSeconds, type MetricSnapshot, type MetricsRegistration } from '../../src/metrics/index.ts'
import { registerPrometheusMetrics } from '../../src/metrics/prometheus.ts'
import { waitFor } from '../helpers.ts'
import { cumulativeBuckets, loopback, readAtRest, sendNonsense } from './loopback.ts'

interface Scrape {
  help: Map<string, string>
  type: Map<string, string>
  /** By series: its name and its labels in name order, `name{a="1",b="2"}`. */
  values: Map<string, number>
  value(name: string, labels?: Record<string, string>): number | undefined
  /** The series of a name, whatever their labels. */
  series(name: string): string[]
}

/** The text exposition format, read. */
function parseScrape(text: string): Scrape {
  const help = new Map<string, string>()
  const type = new Map<string, string>()
  const values = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const comment = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (comment !== null) {
      ;(comment[1] === 'HELP' ? help : type).set(comment[2]!, comment[3]!)
      continue
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (sample === null) throw new Error(`not a line of the exposition format: ${line}`)
    const labels = Object.fromEntries([...(sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((match) => [match[1]!, match[2]!]))
    values.set(seriesKey(sample[1]!, labels), Number(sample[3]))
  }
  return {
    help,
    type,
    values,
    value: (name, labels = {}) => values.get(seriesKey(name, labels)),
    series: (name) => [...values.keys()].filter((key) => key === name || key.startsWith(`${name}{`)),
  }
}

function seriesKey(name: string, labels: Record<string, string>): string {
  const names = Object.keys(labels).sort()
  return names.length === 0 ? name : `${name}{${names.map((label) => `${label}="${labels[label]}"`).join(',')}}`
}

/** Each unlabelled family's value, from server.stats(), written out here rather than taken from the exporter. */
const fromStats: Record<string, (stats: ServerStats) => number> = {
  connected_peers: (s) => s.connectedClients,
  handshakes_pending: (s) => s.handshakes.pending,
  handshakes_replaced_total: (s) => s.handshakes.replaced,
  handshakes_evicted_total: (s) => s.handshakes.evicted,
  connections_denied_total: (s) => s.denied,
  received_packets_total: (s) => s.packets.in,
  sent_packets_total: (s) => s.packets.out,
  received_bytes_total: (s) => s.bytes.in,
  sent_bytes_total: (s) => s.bytes.out,
  send_errors_total: (s) => s.errors.send,
  channels_mismatch_total: (s) => s.channelsMismatch,
  channels_unannounced_total: (s) => s.channelsUnannounced,
  send_queue_bytes: (s) => s.link!.queue.bytes,
  send_queue_messages: (s) => s.link!.queue.depth,
  send_queue_oldest_seconds: (s) => s.link!.queue.delayMs / 1000,
  reassembly_used_bytes: (s) => s.reassembly!.usedBytes,
  reassembly_budget_bytes: (s) => s.reassembly!.budgetBytes,
  reassembly_evictions_total: (s) => s.reassembly!.evictions,
  reassembly_refusals_total: (s) => s.reassembly!.refusals,
  reassembly_stalled_total: (s) => s.reassembly!.stalled,
  private_keys_accepted: (s) => s.privateKeys.accepted,
  previous_key_requests_total: (s) => s.privateKeys.previousKeyRequests,
}
/** The families with labels or made of the peers: checked one by one below. */
const checkedApart = ['engine_info', 'connections_accepted_total', 'disconnects_total', 'drops_total', 'peer_rtt_seconds', 'peer_loss_ratio']

const reasons = ['timeout', 'disconnected', 'server-disconnect', 'server-closed', 'channels-mismatch', 'reassembly-stalled']

/** The peers' RTT (s) and loss ratio as each peer's own stats() reads them. */
function peerValues(server: Server): { rtt: number[]; loss: number[] } {
  const stats = [...server.peers.values()].map((peer) => peer.stats())
  return { rtt: stats.map((s) => s.rtt.smoothedMs / 1000), loss: stats.map((s) => s.lossPercent / 100) }
}

function expectHistogram(scrape: Scrape, name: string, values: number[], bounds: readonly number[]): void {
  const expected = cumulativeBuckets(values, bounds)
  const buckets = [...bounds.map(String), '+Inf'].map((le) => scrape.value(`${name}_bucket`, { le }))
  expect(buckets).toEqual(expected)
  expect(scrape.value(`${name}_count`)).toBe(values.length)
  expect(scrape.value(`${name}_sum`)).toBeCloseTo(values.reduce((a, b) => a + b, 0), 12)
}

describe('registerPrometheusMetrics', () => {
  it('scrapes every family of a server on loopback, with the values of server.stats() and of its peers', async () => {
    const registry = new Registry()
    let listenersBefore = 0
    let metrics: MetricsRegistration | undefined
    const net = await loopback(3, (server) => {
      listenersBefore = server.listenerCount('connect') + server.listenerCount('disconnect')
      metrics = registerPrometheusMetrics(server, { registry })
    })
    try {
      expect(net.server.listenerCount('connect') + net.server.listenerCount('disconnect')).toBe(listenersBefore + 2)
      await sendNonsense(net.server.address()!.port)
      await waitFor(() => Object.values(net.server.stats().drops).some((count) => count > 0), 5000, 'the nonsense to be dropped')
      const scrapeAtRest = () => readAtRest(net.server, async () => ({ scrape: parseScrape(await registry.metrics()), peers: peerValues(net.server) }))
      const {
        result: { scrape, peers },
        stats,
      } = await scrapeAtRest()

      // Every family, with its HELP and its type.
      for (const family of metricFamilies) {
        expect(scrape.help.get(`volley_${family.name}`), family.name).toBe(family.help)
        expect(scrape.type.get(`volley_${family.name}`), family.name).toBe(family.type === 'distribution' ? 'histogram' : family.type === 'info' ? 'gauge' : family.type)
      }
      expect(new Set([...Object.keys(fromStats), ...checkedApart])).toEqual(new Set(metricFamilies.map((family) => family.name)))

      for (const [name, read] of Object.entries(fromStats)) expect(scrape.value(`volley_${name}`), name).toBe(read(stats))
      expect(scrape.value('volley_connected_peers')).toBe(3)
      expect(scrape.series('volley_engine_info')).toEqual([`volley_engine_info{engine="${engineInUse().engine}"}`])
      expect(scrape.value('volley_engine_info', { engine: engineInUse().engine })).toBe(1)
      expect(scrape.value('volley_connections_accepted_total')).toBe(3)
      for (const reason of reasons) expect(scrape.value('volley_disconnects_total', { reason }), reason).toBe(0)
      // Every cause, each with its count; the nonsense among them.
      expect(scrape.series('volley_drops_total')).toHaveLength(Object.keys(stats.drops).length)
      for (const [cause, count] of Object.entries(stats.drops)) expect(scrape.value('volley_drops_total', { cause }), cause).toBe(count)
      expect(Object.values(stats.drops).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
      expect(stats.packets.in).toBeGreaterThanOrEqual(9) // per client: its request, its response and its messages
      expect(stats.bytes.out).toBeGreaterThan(0)

      // The distributions over the three peers: their own RTT and loss, one lossy (the server's network loses 30 %).
      expect(peers.rtt.every((rtt) => rtt > 0)).toBe(true)
      expect(Math.max(...peers.loss)).toBeGreaterThan(0)
      expectHistogram(scrape, 'volley_peer_rtt_seconds', peers.rtt, rttBucketsSeconds)
      expectHistogram(scrape, 'volley_peer_loss_ratio', peers.loss, lossBuckets)

      // A client leaves: its reason is counted, and the distributions are over the two peers left.
      await net.clients[0]!.close()
      await waitFor(() => net.server.peers.size === 2, 5000, 'the server to see the client leave')
      const { scrape: after, peers: left } = (await scrapeAtRest()).result
      expect(after.value('volley_disconnects_total', { reason: 'disconnected' })).toBe(1)
      expect(after.value('volley_disconnects_total', { reason: 'timeout' })).toBe(0)
      expect(after.value('volley_connected_peers')).toBe(2)
      expect(after.value('volley_connections_accepted_total')).toBe(3)
      expectHistogram(after, 'volley_peer_rtt_seconds', left.rtt, rttBucketsSeconds)
      expectHistogram(after, 'volley_peer_loss_ratio', left.loss, lossBuckets)
    } finally {
      metrics?.close()
      await net.close()
    }
    // close() unregistered every family and detached from the server.
    expect(await registry.metrics()).toBe('\n')
    expect(net.server.listenerCount('connect') + net.server.listenerCount('disconnect')).toBe(listenersBefore)
    metrics?.close() // again: nothing
  })

  it('takes one snapshot per scrape, and reads a function of snapshots (a merge of two servers), sync or async', async () => {
    const privateKey = new Uint8Array(32).fill(4)
    const quiet = { keepAliveIntervalMs: 60_000, disconnectIntervalMs: 5 }
    const servers = [0, 1].map(() => new Server({ protocolId: 9n, privateKey, address: '127.0.0.1:0', ...quiet }))
    const clients: Client[] = []
    const sources = servers.map((server) => new ServerMetrics(server))
    const registry = new Registry()
    let calls = 0
    let asynchronous = false
    const merged = (): MetricSnapshot => {
      calls++
      return mergeMetricSnapshots(...sources.map((source) => source.snapshot()))
    }
    const metrics = registerPrometheusMetrics(() => (asynchronous ? Promise.resolve().then(merged) : merged()), { registry })
    try {
      for (const [index, server] of servers.entries()) {
        const { port } = await server.listen()
        const client = new Client(quiet)
        clients.push(client)
        await client.connect(
          await generateConnectToken({ protocolId: 9n, privateKey, clientId: BigInt(index + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 30 }),
        )
      }
      await waitFor(() => servers.every((server) => server.peers.size === 1))
      for (const mode of [false, true]) {
        asynchronous = mode
        const before = calls
        const scrape = parseScrape(await registry.metrics())
        expect(calls - before, `one snapshot for ${metricFamilies.length} families`).toBe(1)
        expect(scrape.value('volley_connected_peers')).toBe(2)
        expect(scrape.value('volley_connections_accepted_total')).toBe(2)
        expect(scrape.value('volley_private_keys_accepted')).toBe(1) // the largest, not the sum
        expect(scrape.value('volley_engine_info', { engine: engineInUse().engine })).toBe(1)
        expect(scrape.value('volley_received_packets_total')).toBeGreaterThanOrEqual(servers[0]!.stats().packets.in)
        // Without channels, no queue, reassembly or peer distribution: the families are listed, with no series.
        expect(scrape.type.get('volley_send_queue_bytes')).toBe('gauge')
        expect(scrape.series('volley_send_queue_bytes')).toEqual([])
        expect(scrape.series('volley_reassembly_stalled_total')).toEqual([])
        expect(scrape.series('volley_peer_rtt_seconds_count')).toEqual([])
      }
    } finally {
      metrics.close()
      for (const source of sources) source.close()
      await Promise.all(clients.map((client) => client.close()))
      await Promise.all(servers.map((server) => server.close()))
    }
    expect(() => sources[0]!.snapshot()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
  })

  it('adds constant labels and a prefix; a distribution of no peer is zeros, not absent', async () => {
    const registry = new Registry()
    const snapshot: MetricSnapshot = {
      samples: { connected_peers: [{ labels: {}, value: 5 }], drops_total: [{ labels: { cause: 'malformed' }, value: 2 }] },
      distributions: { peer_rtt_seconds: { counts: new Array(rttBucketsSeconds.length + 1).fill(0), sums: new Array(rttBucketsSeconds.length + 1).fill(0), count: 0, sum: 0, p50: 0, p90: 0, p99: 0, max: 0 } },
    }
    const metrics = registerPrometheusMetrics(() => snapshot, { registry, prefix: 'gw_', labels: { shard: '2' } })
    try {
      const scrape = parseScrape(await registry.metrics())
      expect(scrape.value('gw_connected_peers', { shard: '2' })).toBe(5)
      expect(scrape.value('gw_drops_total', { shard: '2', cause: 'malformed' })).toBe(2)
      expect(scrape.value('gw_peer_rtt_seconds_count', { shard: '2' })).toBe(0)
      expect(scrape.value('gw_peer_rtt_seconds_bucket', { shard: '2', le: '+Inf' })).toBe(0)
      expect(scrape.series('gw_peer_loss_ratio_count')).toEqual([]) // absent from the snapshot
      expect(scrape.series('gw_received_packets_total')).toEqual([]) // absent: no sample, not 0
      expect([...scrape.values.keys()].every((key) => key.includes('shard="2"'))).toBe(true)
    } finally {
      metrics.close()
    }
  })

  it('rebuilds a merged histogram with its exact buckets, count and sum', async () => {
    const registry = new Registry()
    const counts = new Array(rttBucketsSeconds.length + 1).fill(0)
    const sums = new Array(rttBucketsSeconds.length + 1).fill(0)
    counts[0] = 2 // 0.0002 and 0.0005 (at the bound: still its bucket)
    sums[0] = 0.0007
    counts[4] = 3 // three in (5 ms, 10 ms]
    sums[4] = 0.0061 + 0.007 + 0.0099
    counts[12] = 1 // 3 s: +Inf
    sums[12] = 3
    const sum = sums.reduce((a, b) => a + b, 0)
    const metrics = registerPrometheusMetrics(
      () => ({ samples: {}, distributions: { peer_rtt_seconds: { counts, sums, count: 6, sum, p50: 0.0061, p90: 3, p99: 3, max: 3 } } }),
      { registry },
    )
    try {
      const scrape = parseScrape(await registry.metrics())
      expect([...rttBucketsSeconds.map(String), '+Inf'].map((le) => scrape.value('volley_peer_rtt_seconds_bucket', { le }))).toEqual([2, 2, 2, 2, 5, 5, 5, 5, 5, 5, 5, 5, 6])
      expect(scrape.value('volley_peer_rtt_seconds_count')).toBe(6)
      expect(scrape.value('volley_peer_rtt_seconds_sum')).toBeCloseTo(sum, 12)
    } finally {
      metrics.close()
    }
  })

  it('refuses what is no source, registry or option, with codes; a snapshot function that returns none fails the scrape', async () => {
    const registry = new Registry()
    const source = () => ({ samples: {}, distributions: {} })
    expect(() => registerPrometheusMetrics(5 as never, { registry })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"source"') }))
    expect(() => registerPrometheusMetrics([{}] as never, { registry })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => registerPrometheusMetrics(source, { registry: {} as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"registry"') }))
    expect(() => registerPrometheusMetrics(source, { registry, prefix: '1x_' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => registerPrometheusMetrics(source, { registry, prefix: 5 as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => registerPrometheusMetrics(source, { registry, labels: { le: '1' } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => registerPrometheusMetrics(source, { registry, labels: { reason: 'x' } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => registerPrometheusMetrics(source, { registry, labels: { 'a-b': 'x' } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => registerPrometheusMetrics(source, { registry, labels: { shard: 2 as never } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => registerPrometheusMetrics(source, { registry, colour: 'red' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('"colour"') }))
    expect(await registry.metrics()).toBe('\n') // nothing was left registered

    const first = registerPrometheusMetrics(source, { registry })
    expect(() => registerPrometheusMetrics(source, { registry })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('volley_engine_info') }))
    const second = registerPrometheusMetrics(source, { registry, prefix: 'other_' }) // another prefix: beside it
    first.close()
    second.close()

    const broken = registerPrometheusMetrics(() => ({ samples: 3 }) as never, { registry })
    await expect(registry.metrics()).rejects.toMatchObject({ code: 'ERR_INVALID_RETURN_VALUE' })
    broken.close()
  })
})
