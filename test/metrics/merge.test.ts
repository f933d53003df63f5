// mergeMetricSnapshots: two workers' snapshots summed into one, as a main thread serving /metrics sums them; and
// a snapshot crosses a thread as it is (structured clone). No network.
import { describe, expect, it } from 'vitest'
import { Server } from '../../src/index.ts'
import { ServerMetrics, distributionOf, lossBuckets, mergeMetricSnapshots, metricFamilies, rttBucketsSeconds, type MetricSnapshot } from '../../src/metrics/index.ts'

const worker1: MetricSnapshot = {
  samples: {
    engine_info: [{ labels: { engine: 'native' }, value: 1 }],
    connected_peers: [{ labels: {}, value: 3 }],
    received_bytes_total: [{ labels: {}, value: 1000 }],
    drops_total: [
      { labels: { cause: 'malformed' }, value: 2 },
      { labels: { cause: 'replayed' }, value: 1 },
    ],
    disconnects_total: [{ labels: { reason: 'timeout' }, value: 4 }],
    send_queue_oldest_seconds: [{ labels: {}, value: 0.5 }],
    private_keys_accepted: [{ labels: {}, value: 2 }],
  },
  distributions: {
    peer_rtt_seconds: distributionOf(Float64Array.from([0.0004, 0.003, 0.008]), rttBucketsSeconds),
  },
}

const worker2: MetricSnapshot = {
  samples: {
    engine_info: [{ labels: { engine: 'fallback' }, value: 1 }],
    connected_peers: [{ labels: {}, value: 4 }],
    received_bytes_total: [{ labels: {}, value: 234 }],
    drops_total: [
      { labels: { cause: 'malformed' }, value: 5 },
      { labels: { cause: 'tooOld' }, value: 7 },
    ],
    disconnects_total: [{ labels: { reason: 'disconnected' }, value: 1 }],
    send_queue_oldest_seconds: [{ labels: {}, value: 0.2 }],
    send_queue_bytes: [{ labels: {}, value: 100 }],
    private_keys_accepted: [{ labels: {}, value: 1 }],
  },
  distributions: {
    peer_rtt_seconds: distributionOf(Float64Array.from([0.0009, 0.004, 0.004, 1.5]), rttBucketsSeconds),
    peer_loss_ratio: distributionOf(Float64Array.from([0, 0.03]), lossBuckets),
  },
}

describe('mergeMetricSnapshots', () => {
  it('adds counters and gauges, takes the largest where the family says so, unites info labels, and merges histograms', () => {
    const merged = mergeMetricSnapshots(structuredClone(worker1), structuredClone(worker2))
    expect(merged.samples).toEqual({
      engine_info: [
        { labels: { engine: 'native' }, value: 1 },
        { labels: { engine: 'fallback' }, value: 1 },
      ],
      connected_peers: [{ labels: {}, value: 7 }],
      disconnects_total: [
        { labels: { reason: 'timeout' }, value: 4 },
        { labels: { reason: 'disconnected' }, value: 1 },
      ],
      received_bytes_total: [{ labels: {}, value: 1234 }],
      drops_total: [
        { labels: { cause: 'malformed' }, value: 7 },
        { labels: { cause: 'replayed' }, value: 1 },
        { labels: { cause: 'tooOld' }, value: 7 },
      ],
      send_queue_bytes: [{ labels: {}, value: 100 }],
      send_queue_oldest_seconds: [{ labels: {}, value: 0.5 }], // the longest wait, not a sum
      private_keys_accepted: [{ labels: {}, value: 2 }], // the most keys, not a sum
    })
    // In the order of metricFamilies.
    const order = metricFamilies.map((family) => family.name)
    const names = Object.keys(merged.samples)
    expect(names).toEqual([...names].sort((a, b) => order.indexOf(a) - order.indexOf(b)))

    const rtt = merged.distributions.peer_rtt_seconds!
    // 0.4 ms ≤ 0.5 ms; 0.9 ms ≤ 1 ms; 3, 4, 4 ms ≤ 5 ms; 8 ms ≤ 10 ms; 1.5 s ≤ 2 s.
    expect(rtt.counts).toEqual([1, 1, 0, 3, 1, 0, 0, 0, 0, 0, 0, 1, 0])
    expect(rtt.count).toBe(7)
    expect(rtt.sum).toBeCloseTo(0.0004 + 0.003 + 0.008 + 0.0009 + 0.004 + 0.004 + 1.5, 12)
    expect(rtt.sums[3]).toBeCloseTo(0.011, 15)
    expect(rtt.max).toBe(1.5)
    // Estimated from the 7 buckets: p50, rank 3.5, in (2 ms, 5 ms] with 2 below: 2 + 1.5/3 × 3 = 3.5 ms.
    expect(rtt.p50).toBeCloseTo(0.0035, 15)
    // p90, rank 6.3, in (1 s, 2 s] with 6 below: 1 + 0.3 × 1 = 1.3 s; p99: 1 + 0.93 = 1.93, above the largest: 1.5.
    expect(rtt.p90).toBeCloseTo(1.3, 12)
    expect(rtt.p99).toBe(1.5)
    // Only one worker has the loss: its own, exact.
    expect(merged.distributions.peer_loss_ratio).toEqual(worker2.distributions.peer_loss_ratio)
    // The inputs are untouched, and the merge crosses a thread as it is.
    expect(worker1.samples.connected_peers).toEqual([{ labels: {}, value: 3 }])
    expect(structuredClone(merged)).toEqual(merged)
  })

  it('sums several, and makes an empty snapshot of none; refuses what is no snapshot', () => {
    const three = mergeMetricSnapshots(worker1, worker1, worker2)
    expect(three.samples.connected_peers).toEqual([{ labels: {}, value: 10 }])
    expect(three.distributions.peer_rtt_seconds!.count).toBe(10)
    expect(mergeMetricSnapshots()).toEqual({ samples: {}, distributions: {} })
    expect(mergeMetricSnapshots(worker1)).toEqual(worker1) // one: itself (a copy)
    expect(() => mergeMetricSnapshots(worker1, null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('Argument 2') }))
    expect(() => mergeMetricSnapshots({ samples: {} } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })

  it('merges what a ServerMetrics snapshot holds, cloned as a worker posts it', () => {
    const privateKey = new Uint8Array(32).fill(1)
    const servers = [
      new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0' }),
      new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0', channels: [{ mode: 'reliable' }] }),
    ]
    const metrics = servers.map((server) => new ServerMetrics(server))
    try {
      // Not listening: every counter 0, the channels' families only for the second, no peer in its distributions.
      const [plain, withChannels] = metrics.map((each) => structuredClone(each.snapshot()))
      expect(plain!.samples.send_queue_bytes).toBeUndefined()
      expect(plain!.distributions).toEqual({})
      expect(withChannels!.samples.reassembly_budget_bytes![0]!.value).toBeGreaterThan(0)
      expect(withChannels!.distributions.peer_rtt_seconds!.count).toBe(0)
      const merged = mergeMetricSnapshots(plain!, withChannels!)
      expect(merged.samples.private_keys_accepted).toEqual([{ labels: {}, value: 1 }])
      expect(merged.samples.drops_total).toHaveLength(11)
      expect(merged.samples.disconnects_total!.map((sample) => sample.labels.reason)).toEqual([
        'timeout',
        'disconnected',
        'server-disconnect',
        'server-closed',
        'channels-mismatch',
        'reassembly-stalled',
      ])
      expect(merged.samples.reassembly_budget_bytes).toEqual(withChannels!.samples.reassembly_budget_bytes)
      expect(merged.distributions.peer_loss_ratio).toEqual(withChannels!.distributions.peer_loss_ratio)
    } finally {
      for (const each of metrics) each.close()
    }
    // close() removed its listeners.
    expect(servers.map((server) => server.listenerCount('connect') + server.listenerCount('disconnect'))).toEqual([0, 0])
  })
})
