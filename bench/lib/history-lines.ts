// The compact history of the datagram, connections, delivery and congestion benchmarks: one JSON line per full run in
// bench/results/<benchmark>-history.jsonl, holding the figures the documents quote (bench/lib/history.ts) and
// the verdicts the run recorded for its targets. The full record of the latest complete run is
// bench/results/latest-<benchmark>.json; every run's full record stays on the machine that ran it, in
// bench/results/runs/ (not committed).
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { idlePeerRss } from './connections-render.ts'
import { median, ratio } from './statistics.ts'

export type Benchmark = 'datagram' | 'connections' | 'delivery' | 'congestion'

/** A target's figure as the run judged it. */
export interface RecordedVerdict {
  value: number
  met: boolean
}

export interface HistoryLine {
  /** The run's UTC start, 2026-11-21T0612, with -gso for the datagram benchmark's saturating run. */
  stamp: string
  /** The commit measured (`-dirty` when the tree had changes), for runs recorded with their commit. */
  commit?: string
  /** For runs recorded before the history existed: where git keeps the full record (`git show <this>`). */
  record?: string
  cpu: string
  kernel: string
  /** false: fewer repeats, clients or seconds than a full run, or a case failed. */
  complete: boolean
  failed: boolean
  /** Named figures; a figure the run did not measure is absent. */
  figures: Record<string, number>
  /** Target verdicts by name, as the run's summary recorded them. */
  targets: Record<string, RecordedVerdict>
}

type Json = Record<string, unknown>

/** A value at a path of keys and indexes, or undefined when any step is missing. */
function at(value: unknown, ...path: (string | number)[]): unknown {
  let current = value
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined
    current = (current as Record<string | number, unknown>)[key]
  }
  return current
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

/** A summary entry of a datagram run: receive (by receiver and size) or send (by sender). */
function entry(record: Json, list: 'receive' | 'send', who: string, size: number): Json | undefined {
  const entries = at(record, 'summary', list)
  if (!Array.isArray(entries)) return undefined
  return entries.find((e: Json) => (e.receiver ?? e.sender) === who && e.size === size) as Json | undefined
}

/** The verdict a run recorded for the target whose description starts so; undefined where it recorded none. */
function recorded(record: Json, prefix: string): RecordedVerdict | undefined {
  const targets = at(record, 'summary', 'targets') ?? at(record, 'targets')
  if (!Array.isArray(targets)) return undefined
  const found = targets.find((t: Json) => String(t.what).startsWith(prefix)) as Json | undefined
  const value = num(found?.value)
  const met = found?.met
  return value === undefined || typeof met !== 'boolean' ? undefined : { value, met }
}

function datagramFigures(record: Json): Record<string, number | undefined> {
  const field = (list: 'receive' | 'send', who: string, size: number, name: string): number | undefined => num(entry(record, list, who, size)?.[name])
  const over = (list: 'receive' | 'send', size: number, name: string, other: string): number =>
    ratio(field(list, 'volley', size, name), field(list, other, size, name))
  return {
    receiveCpuUs: field('receive', 'volley', 64, 'cpuPerPacketUs'),
    receiveCpuOverDgram: over('receive', 64, 'cpuPerPacketUs', 'dgram'),
    receiveCpuOverDgram1200: over('receive', 1200, 'cpuPerPacketUs', 'dgram'),
    ...Object.fromEntries(
      [64, 1200].flatMap((size) => {
        const suffix = size === 64 ? '' : '1200'
        return [
          [`rateOverC${suffix}`, over('receive', size, 'rate', 'c-recvmmsg')],
          [`lossVolley${suffix}`, field('receive', 'volley', size, 'loss')],
          [`lossC${suffix}`, field('receive', 'c-recvmmsg', size, 'loss')],
        ]
      }),
    ),
    sendRateOverDgram: over('send', 64, 'rate', 'dgram'),
    sendCpuOverDgram: over('send', 64, 'cpuPerPacketUs', 'dgram'),
  }
}

function connectionsFigures(record: Json): Record<string, number | undefined> {
  // The median over the run's fresh servers (one before 2026-11-27T18).
  const round = (name: string): number | undefined => {
    const rounds = at(record, 'handshakes', 'rounds')
    if (!Array.isArray(rounds)) return undefined
    const values = rounds.filter((r: Json) => r.round === name).map((r: Json) => num(at(r, 'server', 'cpuPerHandshakeUs')) ?? Number.NaN)
    return values.length === 0 ? undefined : num(median(values))
  }
  const memory = at(record, 'hold', 'memory') as Parameters<typeof idlePeerRss>[0] | undefined
  const rss = memory === undefined || num(memory.rssPerPeerEnd) === undefined ? undefined : idlePeerRss(memory)
  const payload = (receiver: string): number | undefined => {
    const entries = at(record, 'summary', 'payload')
    if (!Array.isArray(entries)) return undefined
    return num((entries.find((e: Json) => e.receiver === receiver) as Json | undefined)?.cpuPerMessageUs)
  }
  const summary = (name: string): number | undefined => num(at(record, 'summary', name))
  return {
    keepAliveMs: num(at(record, 'options', 'keepAliveMs')),
    handshakeFreshUs: round('cold'),
    handshakeNextUs: round('warm'),
    rssPerIdlePeer: rss?.perPeer,
    // 1: measured from right after listen (older runs), which left out the engine and the slots.
    rssFromListen: rss === undefined ? undefined : Number(rss.fromListen),
    payloadCpuUs: payload('volley'),
    fallbackPayloadCpuUs: payload('fallback'),
    payloadOverDgram: summary('payloadRatio'),
    payloadOverDgramNet: summary('payloadRatioNet'),
    floorOverDgram: summary('floorRatio'),
    payloadOverFloor: summary('volleyOverFloor'),
    payloadOverFloorNet: summary('volleyOverFloorNet'),
  }
}

function deliveryFigures(record: Json): Record<string, number | undefined> {
  const summary = (...path: string[]): number | undefined => num(at(record, 'summary', ...path))
  return {
    bulkMbps: summary('bulk', 'volleyMbps'),
    udxMbps: summary('bulk', 'udxMbps'),
    fallbackBulkMbps: summary('bulk', 'fallbackMbps'),
    messagesPerSecond: summary('messagesPerSecond'),
    fallbackMessagesPerSecond: summary('fallbackMessagesPerSecond'),
    pingP50Us: summary('ping', 'volleyP50Us'),
    pingP99Us: summary('ping', 'volleyP99Us'),
    dgramP50Us: summary('ping', 'dgramP50Us'),
    dgramP99Us: summary('ping', 'dgramP99Us'),
  }
}

/** The congestion grid's worst cells (bench/congestion.ts writes them in its summary). */
function congestionFigures(record: Json): Record<string, number | undefined> {
  const summary = (name: string): number | undefined => num(at(record, 'summary', name))
  return {
    worstGoodputRatioLoss10: summary('worstGoodputRatioLoss10'),
    worstGoodputRatioLoss15: summary('worstGoodputRatioLoss15'),
    worstGoodputRatioLoss20: summary('worstGoodputRatioLoss20'),
    worstQueueP99OverRttMs: summary('worstQueueP99OverRttMs'),
    worstJain: summary('worstJain'),
    cellsNotMet: summary('cellsNotMet'),
    cellsWithTargets: summary('cellsWithTargets'),
  }
}

/** Each benchmark's target verdicts, by the name the documents judge them under and the run's own description. */
const recordedTargets: Record<Benchmark, Record<string, string>> = {
  datagram: { receiveCpu: 'volley CPU/packet ÷ node:dgram CPU/packet, 64 B' },
  connections: {
    handshakeFresh: "server CPU per completed handshake (a fresh server's first clients",
    handshakeNext: 'server CPU per completed handshake (the next clients',
    rssPerIdlePeer: 'server RSS per connected idle peer',
    timedOut: 'connections timed out during the hold',
  },
  delivery: { bulk: 'reliable bulk throughput', pingP99: 'ping RTT p99' },
  congestion: {
    goodputLoss10: 'goodput ratio at ≤ 10 % loss',
    goodputLoss15: 'goodput ratio at 15 % loss',
    goodputLoss20: 'goodput ratio at 20 % loss',
    queueP99: 'queueing delay p99 − RTT',
    fairness: "Jain's fairness index",
  },
}

const figureReaders: Record<Benchmark, (record: Json) => Record<string, number | undefined>> = {
  datagram: datagramFigures,
  connections: connectionsFigures,
  delivery: deliveryFigures,
  congestion: congestionFigures,
}

/** Six significant digits, nine from 1,000 up: a line stays short, and no figure the documents show moves. */
function compact(value: number): number {
  return Number(value.toPrecision(Math.abs(value) >= 1000 ? 9 : 6))
}

/** A run's history line from its full record. */
export function historyLine(benchmark: Benchmark, record: object, stamp: string, where: { commit?: string; record?: string }): HistoryLine {
  const json = record as Json
  const figures: Record<string, number> = {}
  for (const [name, value] of Object.entries(figureReaders[benchmark](json))) {
    if (value !== undefined && Number.isFinite(value)) figures[name] = compact(value)
  }
  const targets: Record<string, RecordedVerdict> = {}
  for (const [name, prefix] of Object.entries(recordedTargets[benchmark])) {
    const verdict = recorded(json, prefix)
    if (verdict !== undefined) targets[name] = { value: compact(verdict.value), met: verdict.met }
  }
  return {
    stamp,
    ...where,
    cpu: String(at(json, 'system', 'cpuModel') ?? ''),
    kernel: String(at(json, 'system', 'kernel') ?? ''),
    complete: json.complete !== false,
    failed: json.failed === true,
    figures,
    targets,
  }
}

/** A run's stamp from its UTC start: 2026-11-21T06:12:34.567Z -> 2026-11-21T0612. */
export function runStamp(date: string): string {
  return `${date.slice(0, 10)}T${date.slice(11, 13)}${date.slice(14, 16)}`
}

export function historyFile(dir: string, benchmark: Benchmark): string {
  return join(dir, `${benchmark}-history.jsonl`)
}

export function appendHistoryLine(dir: string, benchmark: Benchmark, line: HistoryLine): void {
  appendFileSync(historyFile(dir, benchmark), `${JSON.stringify(line)}\n`)
}

/** A benchmark's history, newest first (a stamp sorts as its time). */
export function readHistory(dir: string, benchmark: Benchmark): HistoryLine[] {
  const file = historyFile(dir, benchmark)
  if (!existsSync(file)) return []
  const lines = readFileSync(file, 'utf8').split('\n').filter((line) => line.trim() !== '')
  return lines.map((line) => JSON.parse(line) as HistoryLine).sort((a, b) => (a.stamp < b.stamp ? 1 : a.stamp > b.stamp ? -1 : 0))
}

/** The commit checked out in `cwd`, with -dirty when tracked files changed; undefined outside a git clone. */
export function currentCommit(cwd: string): string | undefined {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=10', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const changed = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    return changed === '' ? commit : `${commit}-dirty`
  } catch {
    return undefined
  }
}
