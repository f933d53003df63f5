// `volley load`'s reports as a person reads them (without --json, which prints the same fields as one
// JSON object a line).
import type { ClientPoolStats } from '../api/client-pool.ts'

export interface LoadReport extends ClientPoolStats {
  event: 'connected' | 'finished'
  connect: { connected: number; failed: number; skipped: number; ms: number }
  connectRate?: number
  /** Broadcasts a second asked for (--rate). */
  rate?: number
  broadcasts?: number
  messagesSent?: number
  /** Round trips of the broadcasts the server echoed (echo-latency.ts), ms; absent when none came back. */
  latency?: LatencySummary
  interrupted?: boolean
}

export interface LatencySummary {
  echoes: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

/** What the progress line shows: the figures of the last interval. */
export interface LoadProgress {
  /** Connecting still (the attempts under way), or the window of broadcasts. */
  phase: 'connecting' | 'running'
  connected: number
  sentPerSecond: number
  receivedPerSecond: number
  /** The interval's echoes, where some came back. */
  latency?: LatencySummary
}

const count = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

/** "name 3, other 1": the non-zero entries of a tally; empty when there are none. */
function tally(entries: Record<string, number | undefined>): string {
  return Object.entries(entries)
    .filter(([, n]) => n !== undefined && n > 0)
    .map(([name, n]) => `${name} ${count.format(n!)}`)
    .join(', ')
}

/** Milliseconds with three significant digits, at most: 0.412, 12.3, 1,204. */
function milliseconds(ms: number): string {
  return `${ms >= 100 ? count.format(ms) : ms.toPrecision(3).replace(/\.?0+$/, '')} ms`
}

function latencyText({ p50Ms, p99Ms, maxMs }: LatencySummary): string {
  return `p50 ${milliseconds(p50Ms)}, p99 ${milliseconds(p99Ms)}, max ${milliseconds(maxMs)}`
}

/** The progress line, without a line end: "1,000 connected, 10,000 sent/s, 9,998 received/s, RTT p50 0.41 ms, ...". */
export function loadProgressText(progress: LoadProgress): string {
  const connected = `${count.format(progress.connected)} connected${progress.phase === 'connecting' ? ' (connecting)' : ''}`
  const rates = `${count.format(progress.sentPerSecond)} sent/s, ${count.format(progress.receivedPerSecond)} received/s`
  return `${connected}, ${rates}${progress.latency === undefined ? '' : `, RTT ${latencyText(progress.latency)}`}`
}

function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(fraction < 0.001 ? 3 : fraction < 0.1 ? 2 : 1)} %`
}

/** The report's lines, for a terminal. */
export function loadReportText(report: LoadReport): string {
  const { connect } = report
  if (report.event === 'connected') {
    const attempted = connect.connected + connect.failed + connect.skipped
    const seconds = (connect.ms / 1000).toFixed(2)
    // Attempts Ctrl-C ended (ABORT_ERR) were cut short, not failed: said with those never tried.
    const { ABORT_ERR: cut = 0, ...failures } = report.failed
    const failed = tally(failures)
    const summary =
      `connected ${count.format(connect.connected)} of ${count.format(attempted)} clients in ${seconds} s` +
      (report.connectRate !== undefined && connect.connected > 0 ? ` (${count.format(report.connectRate)} handshakes a second)` : '') +
      (failed === '' ? '' : `; failed: ${failed}`) +
      (cut > 0 ? `; cut short (interrupted): ${count.format(cut)}` : '') +
      (connect.skipped > 0 ? `; not tried (interrupted): ${count.format(connect.skipped)}` : '')
    // What each failure means: a code alone does not say that a silent server may have refused the key.
    const reasons = Object.entries(report.failureMessages)
      .filter(([code]) => code !== 'ABORT_ERR')
      .map(([code, message]) => `  ${code}: ${message}`)
    return [summary, ...reasons].join('\n')
  }
  const sent = report.messagesSent ?? 0
  const missing = sent - report.messagesReceived
  const lines = [
    `finished${report.interrupted === true ? ' (interrupted)' : ''}: ${count.format(report.connected)} clients connected` +
      (report.connected < connect.connected ? `, ${count.format(connect.connected - report.connected)} lost` : ''),
    `  messages: ${count.format(report.broadcasts ?? 0)} broadcasts, ${count.format(sent)} sent` +
      (report.sendsRefused > 0 ? ` (${count.format(report.sendsRefused)} more not queued: send queues full)` : '') +
      (tally(report.sendsFailed) !== '' ? ` (not sent, a client's send() threw: ${tally(report.sendsFailed)})` : '') +
      `, ${count.format(report.messagesReceived)} received` +
      // An echo server (volley serve) sends each back: what did not come back was lost on the way, or refused.
      (missing > 0 ? ` (${count.format(missing)} fewer than sent, ${percent(missing / sent)})` : ''),
    `  datagrams: ${count.format(report.packets.out)} out, ${count.format(report.packets.in)} in; bytes: ${count.format(report.bytes.out)} out, ${count.format(report.bytes.in)} in`,
  ]
  if (report.latency !== undefined) lines.push(`  round trips (${count.format(report.latency.echoes)} echoes): ${latencyText(report.latency)}`)
  const ended = tally(report.ended)
  if (ended !== '') lines.push(`  connections lost: ${ended}`)
  const drops = tally(report.drops)
  if (drops !== '') lines.push(`  dropped by the kernel: ${drops}`)
  const errors = tally({ ...report.errors, 'sends the kernel refused': report.sendErrors })
  if (errors !== '') lines.push(`  socket errors: ${errors}`)
  return lines.join('\n')
}
