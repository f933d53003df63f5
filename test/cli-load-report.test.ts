// `volley load`'s reports without --json: the text a person reads, from the same fields --json prints.
import { describe, expect, it } from 'vitest'
import { type LoadReport, loadReportText } from '../src/cli/load-report.ts'

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
})
