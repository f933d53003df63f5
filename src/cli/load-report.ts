// `volley load`'s reports as a person reads them (without --json, which prints the same fields as one
// JSON object a line).
import type { ClientPoolStats } from '../api/client-pool.ts'

export interface LoadReport extends ClientPoolStats {
  event: 'connected' | 'finished'
  connect: { connected: number; failed: number; skipped: number; ms: number }
  connectRate?: number
  broadcasts?: number
  messagesSent?: number
  interrupted?: boolean
}

const count = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

/** "name 3, other 1": the non-zero entries of a tally; empty when there are none. */
function tally(entries: Record<string, number | undefined>): string {
  return Object.entries(entries)
    .filter(([, n]) => n !== undefined && n > 0)
    .map(([name, n]) => `${name} ${count.format(n!)}`)
    .join(', ')
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
  const ended = tally(report.ended)
  if (ended !== '') lines.push(`  connections lost: ${ended}`)
  const drops = tally(report.drops)
  if (drops !== '') lines.push(`  dropped by the kernel: ${drops}`)
  const errors = tally({ ...report.errors, 'sends the kernel refused': report.sendErrors })
  if (errors !== '') lines.push(`  socket errors: ${errors}`)
  return lines.join('\n')
}
