// volley/metrics/opentelemetry: an OpenTelemetry SDK MeterProvider with a test reader collects the same families
// and values from a real server on loopback.
import { DataPointType, type MetricData, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { describe, expect, it } from 'vitest'
import { engineInUse } from '../../src/index.ts'
import { type MetricFamily, type MetricsRegistration, metricFamilies } from '../../src/metrics/index.ts'
import { registerOpenTelemetryMetrics } from '../../src/metrics/opentelemetry.ts'
import { waitFor } from '../helpers.ts'
import { loopback, nearestRank, readAtRest } from './loopback.ts'

/** A reader that collects when asked, as a test needs. */
class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** One collection's metrics by instrument name. */
async function collect(reader: TestReader): Promise<Map<string, MetricData>> {
  const { resourceMetrics, errors } = await reader.collect()
  expect(errors).toEqual([])
  return new Map(resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).map((metric) => [metric.descriptor.name, metric]))
}

/** The value of the data point with these attributes exactly. */
function pointValue(metric: MetricData | undefined, attributes: Record<string, string> = {}): number | undefined {
  const point = (metric?.dataPoints as { attributes: Record<string, unknown>; value: unknown }[] | undefined)?.find(
    (each) => JSON.stringify(Object.entries(each.attributes).sort()) === JSON.stringify(Object.entries(attributes).sort()),
  )
  return point === undefined ? undefined : (point.value as number)
}

function instrumentName(family: MetricFamily): string {
  return `volley.${family.name.replace(/_total$/, '')}`
}

describe('registerOpenTelemetryMetrics', () => {
  it('gives a MeterProvider every family of a server on loopback, with the values of server.stats() and of its peers', async () => {
    const reader = new TestReader()
    const provider = new MeterProvider({ readers: [reader] })
    let metrics: MetricsRegistration | undefined
    const net = await loopback(3, (server) => {
      metrics = registerOpenTelemetryMetrics(server, { meter: provider.getMeter('volley-test') })
    })
    try {
      const {
        result: { collected, peers },
        stats,
      } = await readAtRest(net.server, async () => ({ collected: await collect(reader), peers: [...net.server.peers.values()].map((peer) => peer.stats()) }))
      for (const family of metricFamilies) {
        const metric = collected.get(instrumentName(family))
        expect(metric, family.name).toBeDefined()
        expect(metric!.descriptor.description).toBe(family.help)
        expect(metric!.descriptor.unit, family.name).toBe(family.unit === undefined ? '' : { seconds: 's', bytes: 'By', ratio: '1' }[family.unit])
        // Counters are monotonic sums, the gauges that add up non-monotonic ones, the rest gauges.
        if (family.type === 'counter') expect(metric).toMatchObject({ dataPointType: DataPointType.SUM, isMonotonic: true })
        else if (family.type === 'gauge' && family.aggregation === 'sum') expect(metric).toMatchObject({ dataPointType: DataPointType.SUM, isMonotonic: false })
        else expect(metric!.dataPointType, family.name).toBe(DataPointType.GAUGE)
      }
      const value = (name: string, attributes?: Record<string, string>) => pointValue(collected.get(`volley.${name}`), attributes)
      expect(value('connected_peers')).toBe(3)
      expect(value('connections_accepted')).toBe(3)
      expect(value('disconnects', { reason: 'timeout' })).toBe(0)
      expect(value('engine_info', { engine: engineInUse().engine })).toBe(1)
      expect(value('received_packets')).toBe(stats.packets.in)
      expect(value('sent_packets')).toBe(stats.packets.out)
      expect(value('received_bytes')).toBe(stats.bytes.in)
      expect(value('sent_bytes')).toBe(stats.bytes.out)
      expect(value('handshakes_pending')).toBe(stats.handshakes.pending)
      expect(value('connections_denied')).toBe(stats.denied)
      for (const [cause, count] of Object.entries(stats.drops)) expect(value('drops', { cause }), cause).toBe(count)
      expect(value('send_queue_bytes')).toBe(stats.link!.queue.bytes)
      expect(value('reassembly_budget_bytes')).toBe(stats.reassembly!.budgetBytes)
      expect(value('private_keys_accepted')).toBe(1)
      // The distributions: each peer's own RTT and loss, at their nearest-rank quantiles.
      const rtt = peers.map((s) => s.rtt.smoothedMs / 1000)
      const loss = peers.map((s) => s.lossPercent / 100)
      for (const [q, quantile] of [
        [0.5, '0.5'],
        [0.9, '0.9'],
        [0.99, '0.99'],
        [1, '1'],
      ] as const) {
        expect(value('peer_rtt_seconds', { quantile }), `RTT ${quantile}`).toBeCloseTo(nearestRank(rtt, q), 12)
        expect(value('peer_loss_ratio', { quantile }), `loss ${quantile}`).toBeCloseTo(nearestRank(loss, q), 12)
      }
      expect(Math.max(...loss)).toBeGreaterThan(0)

      await net.clients[2]!.close()
      await waitFor(() => net.server.peers.size === 2, 5000, 'the server to see the client leave')
      const after = await collect(reader)
      expect(pointValue(after.get('volley.disconnects'), { reason: 'disconnected' })).toBe(1)
      expect(pointValue(after.get('volley.connected_peers'))).toBe(2)
    } finally {
      metrics?.close()
      await net.close()
    }
    // close() detached from the server (the callback's removal: the next test).
    expect(net.server.listenerCount('connect') + net.server.listenerCount('disconnect')).toBe(0)
    await provider.shutdown()
  })

  it('takes a prefix and an async snapshot function; refuses what is no meter or option', async () => {
    const reader = new TestReader()
    const provider = new MeterProvider({ readers: [reader] })
    const meter = provider.getMeter('volley-test')
    let calls = 0
    const metrics = registerOpenTelemetryMetrics(
      async () => {
        calls++
        return { samples: { connected_peers: [{ labels: {}, value: 7 }] }, distributions: {} }
      },
      { meter, prefix: 'gateway.' },
    )
    try {
      const collected = await collect(reader)
      expect(calls).toBe(1)
      expect(pointValue(collected.get('gateway.connected_peers'))).toBe(7)
      expect(collected.get('gateway.peer_rtt_seconds')?.dataPoints ?? []).toEqual([]) // absent: not observed
    } finally {
      metrics.close()
    }
    // close() removed the callback: a collection asks for no snapshot (the SDK still reports the last values it kept).
    await collect(reader)
    expect(calls).toBe(1)
    const source = () => ({ samples: {}, distributions: {} })
    expect(() => registerOpenTelemetryMetrics(source, undefined as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => registerOpenTelemetryMetrics(source, { meter: {} as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"meter"') }))
    expect(() => registerOpenTelemetryMetrics(source, { meter, prefix: '_x' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => registerOpenTelemetryMetrics(source, { meter, labels: {} } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => registerOpenTelemetryMetrics('server' as never, { meter })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    await provider.shutdown()
  })
})
