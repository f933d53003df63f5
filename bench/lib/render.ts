// Prints a summary as markdown: readable in a terminal, pasteable into a README.
import { BATCH_SIZE, IDLE_MS } from './constants.ts'
import { microseconds, packetsPerSecond, percent, rateRange, table, times } from './format.ts'
import { receiverLabels, senderLabels } from './launch.ts'
import type { BenchOptions } from './options.ts'
import type { Summary } from './summary.ts'
import type { SystemInfo } from './system.ts'

export function renderMarkdown(summary: Summary, system: SystemInfo, options: BenchOptions): string {
  const out: string[] = []
  const pinning = options.pin === 'split' ? 'C side on CPU 0, tested process on CPU 1 (taskset)' : 'none'
  out.push(`## volley datagram benchmark, ${system.date.slice(0, 16).replace('T', ' ')} UTC${options.quick ? ' (quick)' : ''}`)
  out.push('')
  out.push(
    `node ${system.node} · ${system.cpuModel}, ${system.cpus} CPUs · Linux ${system.kernel} · loopback · pinning: ${pinning} · ` +
      `${options.seconds} s of sending per case · ${options.repeats === 1 ? 'one run per case' : `median of ${options.repeats} interleaved runs`}`,
  )
  if (summary.receive.length > 0) {
    out.push('')
    const blaster =
      options.segments > 1
        ? `sendmmsg, batch ${BATCH_SIZE}, UDP GSO ${options.segments} datagrams per message`
        : `sendmmsg, batch ${BATCH_SIZE}`
    out.push(`### Receive: C blaster (${blaster}) → a receiver in its own process`)
    out.push('')
    out.push(
      table(
        ['size', 'receiver', 'received pkt/s', 'min–max', 'loss', 'CPU µs/pkt', 'CPU (1 core = 100 %)', 'blaster sent pkt/s', 'disturbed'],
        summary.receive.map((entry) => [
          `${entry.size} B`,
          receiverLabels[entry.receiver],
          packetsPerSecond(entry.rate),
          rateRange(entry.rateMin, entry.rateMax),
          percent(entry.loss),
          microseconds(entry.cpuPerPacketUs),
          percent(entry.cpuShare, 0),
          packetsPerSecond(entry.blasterRate),
          `${entry.disturbedRuns}/${entry.runs}`,
        ]),
        'llrrrrrrr',
      ),
    )
    out.push('')
    out.push(
      table(
        ['size', 'volley ÷ dgram CPU/pkt', 'volley ÷ C rate', 'volley ÷ dgram rate', 'volley ÷ udx-native rate', 'volley ÷ C CPU/pkt'],
        summary.receiveRatios.map((entry) => [
          `${entry.size} B`,
          times(entry.volleyCpuPerPacketVsDgram),
          times(entry.volleyRateVsC),
          times(entry.volleyRateVsDgram),
          times(entry.volleyRateVsUdx),
          times(entry.volleyCpuPerPacketVsC),
        ]),
        'lrrrrr',
      ),
    )
    out.push('')
    out.push('Where the receivers\' CPU goes (medians):')
    out.push('')
    out.push(
      table(
        ['size', 'receiver', 'user µs/pkt', 'system µs/pkt', 'context switches / 1000 pkt', 'datagrams per recvmmsg'],
        summary.receive.map((entry) => [
          `${entry.size} B`,
          receiverLabels[entry.receiver],
          microseconds(entry.userPerPacketUs),
          microseconds(entry.systemPerPacketUs),
          Number.isFinite(entry.contextSwitchesPerThousand) ? entry.contextSwitchesPerThousand.toFixed(0) : '–',
          Number.isFinite(entry.meanBatch) ? entry.meanBatch.toFixed(1) : '–',
        ]),
        'llrrrr',
      ),
    )
  }
  if (summary.send.length > 0) {
    out.push('')
    out.push(`### Send: ${summary.send[0]?.size ?? ''} B datagrams from JS to the C sink (recvmmsg) in another process`)
    out.push('')
    out.push(
      table(
        ['sender', 'sent pkt/s', 'min–max', 'CPU µs/pkt', 'CPU (1 core = 100 %)', 'arrived at sink', 'disturbed'],
        summary.send.map((entry) => [
          senderLabels[entry.sender],
          packetsPerSecond(entry.rate),
          rateRange(entry.rateMin, entry.rateMax),
          microseconds(entry.cpuPerPacketUs),
          percent(entry.cpuShare, 0),
          percent(entry.delivered),
          `${entry.disturbedRuns}/${entry.runs}`,
        ]),
        'lrrrrrr',
      ),
    )
    if (summary.sendRatios) {
      out.push('')
      out.push(
        `volley ÷ node:dgram: rate ${times(summary.sendRatios.volleyRateVsDgram)}, CPU/pkt ${times(summary.sendRatios.volleyCpuPerPacketVsDgram)}`,
      )
    }
  }
  if (summary.targets.length > 0) {
    out.push('')
    out.push('### Targets')
    out.push('')
    for (const entry of summary.targets) {
      const verdict = entry.met === null ? 'not measured' : entry.met ? 'met' : 'NOT met'
      out.push(`- ${entry.what}: ${times(entry.value)} (target ${entry.kind} ${entry.limit}×): ${verdict}`)
    }
  }
  out.push('')
  out.push(
    `Received pkt/s: datagrams seen by the handler ÷ the receiver's window (first datagram to last). Loss: 1 − received ÷ sent. ` +
      `CPU: user + system time of the receiving (or sending) process, all threads, over its window. ` +
      `Receivers finish ${IDLE_MS} ms after the last datagram; each asks for a 4 MiB receive buffer. ` +
      `Disturbed: runs during which other processes used more than 10 % of a pinned core (the machine is shared).`,
  )
  if (summary.notes.length > 0) {
    out.push('')
    out.push('Notes:')
    for (const note of summary.notes) out.push(`- ${note}`)
  }
  return out.join('\n')
}
