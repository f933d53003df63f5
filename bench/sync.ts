// `npm run bench:sync`: agent sync (issue 59) over Volley on loopback, agent and manager in processes of
// their own: one DELTA sync of N items of 200 bytes from the agent's durable queue, over the reliable and
// the unreliable channel, with no loss and with 5 % of the datagrams lost each way (the network simulator).
// For each: items a second (Start to EndAck), bytes on the wire ÷ payload bytes, items resent, and each
// side's peak RSS; then the peak RSS again at a tenth of N, to show it flat in the number of items. The two
// copies are compared by digest (a count and sums of CRC-32s; bench/lib/sync-side.ts): the manager keeps no
// documents, so the run measures the protocol, not a store.
//   Bytes on the wire: the delivery packets both ways, plus 48 bytes a packet (netcode's prefix, sequence
//   and MAC, about 20; IP and UDP, 28). Payload: the items' data (200 bytes each; ids and index not counted).
// Tables to stdout; the full record to bench/results/latest-sync.json and a line to
// bench/results/sync-history.jsonl (not with --quick).
//   npm run bench:sync               full run: 1,000,000 items (~5 min)
//   npm run bench:sync -- --quick    smoke run: 20,000 items, no files written
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { benchDir, root, runMain } from './lib/runner.ts'
import { systemInfo } from './lib/system.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, items: { type: 'string' } } })
const quick = values.quick
const items = Number(values.items ?? (quick ? 20_000 : 1_000_000))
const ITEM_BYTES = 200
/** Netcode's prefix byte, sequence (3 bytes up to 2^24 packets) and MAC, and IP and UDP headers, per packet. */
const PACKET_OVERHEAD_BYTES = 20 + 28
const log = (line: string): void => void process.stderr.write(`${line}\n`)

type Json = Record<string, unknown>

const children = new Set<ChildProcess>()
process.once('exit', () => {
  for (const each of children) each.kill('SIGKILL')
})

function child(args: readonly string[]) {
  const process_ = spawn(process.execPath, ['--import', 'tsx', 'bench/lib/sync-side.ts', ...args], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
  children.add(process_)
  const waiting: ((line: string) => void)[] = []
  createInterface({ input: process_.stdout! }).on('line', (line) => waiting.shift()?.(line))
  const exited = new Promise<number | null>((resolve) => process_.once('exit', resolve))
  void exited.then(() => children.delete(process_))
  return {
    next: () => new Promise<Json>((resolve) => waiting.push((line) => resolve(JSON.parse(line) as Json))),
    ask(command: string) {
      const answer = this.next()
      process_.stdin!.write(`${command}\n`)
      return answer
    },
    async end(): Promise<void> {
      process_.stdin!.end()
      await exited
    },
    exited,
  }
}

interface CaseResult {
  channel: string
  lossPercent: number
  items: number
  itemsPerSecond: number
  seconds: number
  wireRatio: number
  itemsResent: number
  resentPercent: number
  retransmitRequests: number
  agentPeakRssMb: number
  managerPeakRssMb: number
  copiesEqual: boolean
  datagramsLost: number
  /** End or Start sent again after responseTimeoutMs (30 s) without an answer, and End repeats on an unreliable channel. */
  agentRetries: number
  endRepeats: number
}

/** The agents' queue of `count` items, written once by a process of its own (its memory is not the agent's). */
/** A template queue: its file, and the digest of its items (what the manager's copy must come to). */
const templates = new Map<number, { path: string; digest: string }>()
async function template(work: string, count: number): Promise<{ path: string; digest: string }> {
  const made = templates.get(count)
  if (made !== undefined) return made
  const path = join(work, `template-${count}.db`)
  const filler = child(['--role', 'fill', '--items', String(count), '--item-bytes', String(ITEM_BYTES), '--queue', path])
  const { fillMs, digest } = await filler.next()
  await filler.exited
  log(`queue of ${count.toLocaleString('en-US')} items written in ${((fillMs as number) / 1000).toFixed(1)} s`)
  const result = { path, digest: digest as string }
  templates.set(count, result)
  return result
}

async function runCase(work: string, channel: 'reliable' | 'unreliable', loss: number, count: number): Promise<CaseResult> {
  log(`${channel}, ${loss * 100} % loss, ${count.toLocaleString('en-US')} items`)
  const key = randomBytes(32).toString('hex')
  const common = ['--channel', channel, '--loss', String(loss), '--key', key]
  const manager = child(['--role', 'manager', ...common])
  const { port } = await manager.next()
  const queue = join(work, `queue-${channel}-${loss}-${count}.db`)
  const queueTemplate = await template(work, count)
  const agentProcess = child(['--role', 'agent', ...common, '--port', String(port), '--queue', queue, '--template', queueTemplate.path])
  const agent = await agentProcess.next()
  await agentProcess.exited
  const report = await manager.ask('report')
  await manager.end()
  rmSync(queue, { force: true })
  if (agent.success !== true) throw new Error(`the sync failed: ${String(agent.message)}`)
  const wire = (agent.bytesOut as number) + (agent.bytesIn as number) + ((agent.packetsOut as number) + (agent.packetsIn as number)) * PACKET_OVERHEAD_BYTES
  const seconds = (agent.ms as number) / 1000
  return {
    channel,
    lossPercent: loss * 100,
    items: count,
    itemsPerSecond: Math.round(count / seconds),
    seconds: Number(seconds.toFixed(2)),
    wireRatio: Number((wire / (count * ITEM_BYTES)).toFixed(3)),
    itemsResent: agent.itemsResent as number,
    resentPercent: Number((((agent.itemsResent as number) / count) * 100).toFixed(2)),
    retransmitRequests: report.retransmitRequests as number,
    agentPeakRssMb: Math.round(agent.peakRssMb as number),
    managerPeakRssMb: Math.round(report.peakRssMb as number),
    copiesEqual: report.digest === queueTemplate.digest,
    agentRetries: agent.retries as number,
    endRepeats: agent.endRepeats as number,
    datagramsLost: agent.lost as number,
  }
}

async function main(): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'volley-bench-sync-'))
  try {
    const cases: CaseResult[] = []
    for (const channel of ['reliable', 'unreliable'] as const) for (const loss of [0, 0.05]) cases.push(await runCase(work, channel, loss, items))
    // The same sync at a tenth of the items: peak RSS flat in the number of items.
    const small = Math.round(items / 10)
    const scaling = [await runCase(work, 'reliable', 0, small), await runCase(work, 'unreliable', 0.05, small)]
    log('')
    log('channel     loss  items/s   seconds  wire÷payload  resent   ReqRets  agent RSS  manager RSS  copies')
    for (const c of [...cases, ...scaling]) {
      log(
        `${c.channel.padEnd(10)}  ${String(c.lossPercent).padStart(3)} %  ${String(c.itemsPerSecond).padStart(7)}  ${String(c.seconds).padStart(8)}  ${c.wireRatio.toFixed(3).padStart(12)}  ${`${c.resentPercent} %`.padStart(7)}  ${String(c.retransmitRequests).padStart(7)}  ${`${c.agentPeakRssMb} MB`.padStart(9)}  ${`${c.managerPeakRssMb} MB`.padStart(11)}  ${c.copiesEqual ? 'equal' : 'DIFFER'}  (${c.items.toLocaleString('en-US')} items)`,
      )
    }
    const failed = [...cases, ...scaling].filter((c) => !c.copiesEqual)
    if (!quick) {
      const date = new Date().toISOString()
      const record = { kind: 'sync', date, items, itemBytes: ITEM_BYTES, packetOverheadBytes: PACKET_OVERHEAD_BYTES, system: systemInfo(root), cases, scaling }
      const results = join(benchDir, 'results')
      writeFileSync(join(results, 'latest-sync.json'), `${JSON.stringify(record, null, 2)}\n`)
      const line = (c: CaseResult) => `${c.channel[0]}${c.lossPercent}`
      const history = { date, items, ...Object.fromEntries(cases.flatMap((c) => [[`${line(c)}PerSec`, c.itemsPerSecond], [`${line(c)}Wire`, c.wireRatio]])), agentRssMb: cases.map((c) => c.agentPeakRssMb), managerRssMb: cases.map((c) => c.managerPeakRssMb), scalingRssMb: scaling.map((c) => [c.agentPeakRssMb, c.managerPeakRssMb]) }
      appendFileSync(join(results, 'sync-history.jsonl'), `${JSON.stringify(history)}\n`)
      log('results: bench/results/latest-sync.json, bench/results/sync-history.jsonl')
    }
    return failed.length === 0 ? 0 : 1
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

runMain('bench:sync', main)
