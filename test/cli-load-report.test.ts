// `volley load`'s reports without --json: the text a person reads, from the same fields --json prints.
import { describe, expect, it } from 'vitest'
import { LatencyHistogram, echoRoundTripMs, stampPayload, stampedBytes } from '../src/cli/echo-latency.ts'
import { type LoadReport, loadProgressText, loadReportText } from '../src/cli/load-report.ts'

const quiet = {
  clients: 1000,
  connected: 1000,
  ended: {},
  failed: {},
  failureMessages: {},
  packets: { in: 2_000_400, out: 2_000_600 },
  bytes: { in: 180_036_000, out: 222_066_600 },
  drops: { receiveBufferFull: 0, sendBufferFull: 0 },
  messagesReceived: 1_999_800,
  sendsRefused: 0,
  sendsFailed: {},
  errors: {},
  sendErrors: 0,
}

describe('volley load reports as text', () => {
  it('connected: how many of how many, how fast, and which failed', () => {
    const report: LoadReport = {
      event: 'connected',
      connect: { connected: 997, failed: 3, skipped: 0, ms: 412.5 },
      connectRate: 2417.0,
      ...quiet,
      failed: { ERR_CONNECTION_DENIED: 3 },
      failureMessages: { ERR_CONNECTION_DENIED: 'The server denied the connection: it is full' },
    }
    expect(loadReportText(report)).toBe(
      'connected 997 of 1,000 clients in 0.41 s (2,417 handshakes a second); failed: ERR_CONNECTION_DENIED 3\n' +
        '  ERR_CONNECTION_DENIED: The server denied the connection: it is full',
    )
  })

  it('connected after an interrupt: the clients not tried', () => {
    const report: LoadReport = { event: 'connected', connect: { connected: 10, failed: 0, skipped: 990, ms: 5 }, connectRate: 2000, ...quiet }
    expect(loadReportText(report)).toBe('connected 10 of 1,000 clients in 0.01 s (2,000 handshakes a second); not tried (interrupted): 990')
    // The attempts in flight that Ctrl-C ended are no failures (they read "failed: ABORT_ERR 4", and why).
    const cut: LoadReport = { ...report, connect: { connected: 10, failed: 4, skipped: 986, ms: 5 }, failed: { ABORT_ERR: 4 }, failureMessages: { ABORT_ERR: 'The connection attempt was aborted' } }
    expect(loadReportText(cut)).toBe('connected 10 of 1,000 clients in 0.01 s (2,000 handshakes a second); cut short (interrupted): 4; not tried (interrupted): 986')
  })

  it('finished: the messages and datagrams, and only the troubles there were', () => {
    const report: LoadReport = { event: 'finished', connect: { connected: 1000, failed: 0, skipped: 0, ms: 400 }, broadcasts: 2000, messagesSent: 2_000_000, ...quiet }
    expect(loadReportText(report)).toBe(
      [
        'finished: 1,000 clients connected',
        '  messages: 2,000 broadcasts, 2,000,000 sent, 1,999,800 received (200 fewer than sent, 0.010 %)',
        '  datagrams: 2,000,600 out, 2,000,400 in; bytes: 222,066,600 out, 180,036,000 in',
      ].join('\n'),
    )
    const troubled: LoadReport = {
      ...report,
      interrupted: true,
      connected: 998,
      ended: { 'connection-timed-out': 2 },
      drops: { receiveBufferFull: 17, sendBufferFull: 0 },
      errors: { ECONNREFUSED: 1 },
      sendErrors: 4,
      messagesSent: 1_500_000,
      sendsRefused: 500_000,
      sendsFailed: { ERR_MESSAGE_TOO_LARGE: 3 },
      messagesReceived: 1_500_000,
    }
    expect(loadReportText(troubled).split('\n')).toEqual([
      'finished (interrupted): 998 clients connected, 2 lost',
      "  messages: 2,000 broadcasts, 1,500,000 sent (500,000 more not queued: send queues full) (not sent, a client's send() threw: ERR_MESSAGE_TOO_LARGE 3), 1,500,000 received",
      '  datagrams: 2,000,600 out, 2,000,400 in; bytes: 222,066,600 out, 180,036,000 in',
      '  connections lost: connection-timed-out 2',
      '  dropped by the kernel: receiveBufferFull 17',
      '  socket errors: ECONNREFUSED 1, sends the kernel refused 4',
    ])
  })

  it('finished with echoes: their round trips, p50, p99 and the largest', () => {
    const report: LoadReport = {
      event: 'finished',
      connect: { connected: 1000, failed: 0, skipped: 0, ms: 400 },
      rate: 10,
      broadcasts: 100,
      messagesSent: 100_000,
      ...quiet,
      messagesReceived: 100_000,
      latency: { echoes: 100_000, p50Ms: 0.412, p99Ms: 12.34, maxMs: 1204.5 },
    }
    expect(loadReportText(report).split('\n').at(-1)).toBe('  round trips (100,000 echoes): p50 0.412 ms, p99 12.3 ms, max 1,205 ms')
  })
})

describe('volley load progress line', () => {
  it('says how many are connected, the rates, and the round trips where echoes came back', () => {
    expect(loadProgressText({ phase: 'connecting', connected: 4000, sentPerSecond: 0, receivedPerSecond: 0 })).toBe('4,000 connected (connecting), 0 sent/s, 0 received/s')
    expect(loadProgressText({ phase: 'running', connected: 1000, sentPerSecond: 10_000, receivedPerSecond: 9_998.4, latency: { echoes: 9998, p50Ms: 0.41, p99Ms: 1.92, maxMs: 3 } })).toBe(
      '1,000 connected, 10,000 sent/s, 9,998 received/s, RTT p50 0.41 ms, p99 1.92 ms, max 3 ms',
    )
  })
})

describe('volley load round trips', () => {
  it('reads the time a stamped broadcast was sent back from its echo, and nothing from another message', () => {
    const payload = new Uint8Array(64).fill(1)
    stampPayload(payload)
    const roundTrip = echoRoundTripMs(payload)
    expect(roundTrip).toBeGreaterThanOrEqual(0)
    expect(roundTrip).toBeLessThan(1000)
    expect(echoRoundTripMs(new Uint8Array(64).fill(1))).toBeUndefined()
    expect(echoRoundTripMs(payload.subarray(0, stampedBytes - 1))).toBeUndefined()
  })

  it('gives percentiles within about 1 % of the times recorded, and the largest exactly', () => {
    const histogram = new LatencyHistogram()
    // 1 to 10,000 µs, once each: p50 is 5 ms, p99 9.9 ms.
    for (let us = 1; us <= 10_000; us++) histogram.record(us / 1000)
    expect(histogram.count).toBe(10_000)
    expect(Math.abs(histogram.quantile(0.5) / 5 - 1)).toBeLessThan(0.012)
    expect(Math.abs(histogram.quantile(0.99) / 9.9 - 1)).toBeLessThan(0.012)
    expect(histogram.summary()).toMatchObject({ echoes: 10_000, maxMs: 10 })
    // A time past the last bucket: the largest is kept, the quantile at most that.
    histogram.record(3_600_000)
    expect(histogram.quantile(1)).toBe(3_600_000)
    histogram.reset()
    expect(histogram.summary()).toEqual({ echoes: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 })
  })
})
