// The benchmarks' standing and history, from the result files themselves: where each target stands (its latest
// full run and how many of the last runs met it), and one markdown table per benchmark, a row per full run in
// bench/results (quick runs are left out), newest first. The figures are the ratios each run measured side by
// side, so runs hours apart compare; absolute times do not (this machine moves them by 20–40 %). Documents
// hold them between markers, which bench/history.ts rewrites.
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { idlePeerRss } from './connections-render.ts'
import { table, times } from './format.ts'
import { benchDir, historyCommand } from './runner.ts'
import { median, ratio } from './statistics.ts'
import { judgeSaturatedRate, saturationBound } from './summary.ts'

const resultsDir = join(benchDir, 'results')
/** A part of a document this script writes, between its markers. */
interface Part {
  begin: string
  end: string
  /** The part's text; `results` is the result files' folder as the document links to it. */
  text: (results: string) => string
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

function us(value: number | undefined): string {
  return value === undefined ? '–' : `${value.toFixed(1)} µs`
}

function signedUs(value: number | undefined): string {
  return value === undefined ? '–' : `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(0)} µs`
}

function thousands(value: number | undefined): string {
  return value === undefined ? '–' : Math.round(value).toLocaleString('en-US')
}

interface Run {
  file: string
  stamp: string
  record: Json
}

/** Full runs of one benchmark, newest first (the file name's stamp sorts as its time). */
function runs(kind: string, dir = resultsDir): Run[] {
  const pattern = new RegExp(`^${kind}-(\\d{4}-\\d{2}-\\d{2}T\\d{4})(-gso)?\\.json$`)
  const found: Run[] = []
  for (const file of readdirSync(dir)) {
    const match = pattern.exec(file)
    if (match === null) continue
    const record = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Json
    if (record.quick === true) continue
    found.push({ file, stamp: `${match[1]}${match[2] ?? ''}`, record })
  }
  return found.sort((a, b) => (a.stamp < b.stamp ? 1 : -1))
}

/**
 * A run's link; one in which a case failed is marked (its figures may lack that case), and so is one not
 * complete (fewer repeats, clients or seconds than a full run: its figures are not the full run's).
 */
function link(run: Run, results = '../bench/results'): string {
  const marks = [run.record.failed === true ? 'a case failed' : '', run.record.complete === false ? 'not a full run' : ''].filter((mark) => mark !== '')
  return `[${run.stamp}](${results}/${run.file})${marks.length > 0 ? ` (${marks.join('; ')})` : ''}`
}

interface SaturatedRate {
  ratio: number
  /** '≤ ' where the C loop kept up (volley's ceiling is at most this share of its own), '≥ ' where volley did. */
  bound: '' | '≤ ' | '≥ '
  met: boolean
}

/**
 * volley's receive rate over the C loop's at one size, where it decides the target (judgeSaturatedRate, as
 * the run's own summary judges it; recomputed from the rates and losses, which older files recorded under
 * other labels). Otherwise undefined: nothing was shown.
 */
function saturatedRate(run: Run, size: number): SaturatedRate | undefined {
  const loss = (who: string): number => num(entry(run, 'receive', who, size)?.loss) ?? 0
  const ratioOfRates = ratio(num(entry(run, 'receive', 'volley', size)?.rate), num(entry(run, 'receive', 'c-recvmmsg', size)?.rate))
  const { bound, met } = judgeSaturatedRate(ratioOfRates, loss('volley'), loss('c-recvmmsg'))
  if (met === null) return undefined
  return { ratio: ratioOfRates, bound: bound === 'upper' ? '≤ ' : bound === 'lower' ? '≥ ' : '', met }
}

/**
 * The machine a run had: its CPU and the VM's kernel build. Figures moved with them more than with anything
 * else (the payload target was met on one of them only), so each row says which.
 */
function host(run: Run): string {
  const cpu = String(at(run.record, 'system', 'cpuModel') ?? '')
  const kernel = String(at(run.record, 'system', 'kernel') ?? '')
  const maker = /EPYC/.test(cpu) ? 'EPYC' : /Xeon/.test(cpu) ? 'Xeon' : cpu === '' ? '–' : cpu
  const build = /-fc-(v\d+)/.exec(kernel)?.[1]
  return build === undefined ? maker : `${maker} ${build}`
}

/** A summary entry of a datagram run: receive (by receiver and size) or send (by sender). */
function entry(run: Run, list: 'receive' | 'send', who: string, size: number): Json | undefined {
  const entries = at(run.record, 'summary', list)
  if (!Array.isArray(entries)) return undefined
  return entries.find((e: Json) => (e.receiver ?? e.sender) === who && e.size === size) as Json | undefined
}

/** Whether volley and the C loop both lost datagrams at this size: only then are their rates ceilings. */
function saturated(run: Run, size: number): boolean {
  const loss = (who: string): number => num(entry(run, 'receive', who, size)?.loss) ?? 0
  return saturationBound(loss('volley'), loss('c-recvmmsg')) === 'ceilings'
}

function datagramTable(): string {
  const rows = runs('datagram').map((run) => {
    // volley's figure over another's, from the same run
    const over = (list: 'receive' | 'send', size: number, field: string, other: string): number =>
      ratio(num(entry(run, list, 'volley', size)?.[field]), num(entry(run, list, other, size)?.[field]))
    return [
      link(run),
      host(run),
      us(num(entry(run, 'receive', 'volley', 64)?.cpuPerPacketUs)),
      times(over('receive', 64, 'cpuPerPacketUs', 'dgram')),
      times(over('receive', 1200, 'cpuPerPacketUs', 'dgram')),
      `${times(over('receive', 64, 'rate', 'c-recvmmsg'))}${saturated(run, 64) ? '' : ' ²'}`,
      times(over('send', 64, 'rate', 'dgram')),
      times(over('send', 64, 'cpuPerPacketUs', 'dgram')),
    ]
  })
  return table(
    ['run', 'host', 'volley CPU per 64 B datagram', 'CPU ÷ node:dgram, 64 B', '1200 B', 'rate ÷ C recvmmsg loop, 64 B', 'send rate ÷ node:dgram', 'send CPU ÷ node:dgram'],
    rows,
    'llrrrrrr',
  )
}

/** The server's RSS per idle peer; marked where it was measured from right after listen (older runs). */
function idleRss(run: Run): string {
  const memory = at(run.record, 'hold', 'memory') as Parameters<typeof idlePeerRss>[0] | undefined
  if (memory === undefined || num(memory.rssPerPeerEnd) === undefined) return '–'
  const rss = idlePeerRss(memory)
  return `${thousands(rss.perPeer)} B${rss.fromListen ? ' ¹' : ''}`
}

function connectionsTable(): string {
  const rows = runs('connections').map((run) => {
    // The median over the run's fresh servers (one before 2026-11-27T18).
    const round = (name: string): number | undefined => {
      const rounds = at(run.record, 'handshakes', 'rounds')
      if (!Array.isArray(rounds)) return undefined
      const values = rounds.filter((r: Json) => r.round === name).map((r: Json) => num(at(r, 'server', 'cpuPerHandshakeUs')))
      return values.length === 0 ? undefined : num(median(values.map((value) => value ?? Number.NaN)))
    }
    const targets = at(run.record, 'summary', 'targets')
    const target = (prefix: string): number | undefined =>
      Array.isArray(targets) ? num((targets.find((t: Json) => String(t.what).startsWith(prefix)) as Json | undefined)?.value) : undefined
    const cold = round('cold')
    const warm = round('warm')
    // A run with other keep-alives than the library's 10 Hz says so: its payload figures are not the default's.
    const keepAliveMs = num(at(run.record, 'options', 'keepAliveMs'))
    const keepAlives = keepAliveMs !== undefined && keepAliveMs !== 100 ? ` (keep-alives every ${thousands(keepAliveMs)} ms)` : ''
    return [
      `${link(run)}${keepAlives}`,
      host(run),
      cold === undefined && warm === undefined ? '–' : `${us(cold)} / ${us(warm)}`,
      idleRss(run),
      target('connections timed out') === undefined ? '–' : String(target('connections timed out')),
      times(num(at(run.record, 'summary', 'payloadRatio')) ?? Number.NaN),
      times(num(at(run.record, 'summary', 'payloadRatioNet')) ?? Number.NaN),
      times(num(at(run.record, 'summary', 'floorRatio')) ?? Number.NaN),
    ]
  })
  return table(
    ['run', 'host', 'CPU per handshake, fresh / next (< 20 µs)', 'RSS per idle peer (< 2 KiB)', 'timed out in the hold', 'payload CPU ÷ node:dgram (≤ 0.5×)', 'net of the idle share', 'floor ÷ node:dgram'],
    rows,
    'llrrrrrr',
  )
}

function deliveryTable(): string {
  const rows = runs('delivery').map((run) => {
    const volley = num(at(run.record, 'summary', 'bulk', 'volleyMbps'))
    const udx = num(at(run.record, 'summary', 'bulk', 'udxMbps'))
    const p99 = num(at(run.record, 'summary', 'ping', 'volleyP99Us'))
    const dgramP99 = num(at(run.record, 'summary', 'ping', 'dgramP99Us'))
    const p50 = num(at(run.record, 'summary', 'ping', 'volleyP50Us'))
    const dgramP50 = num(at(run.record, 'summary', 'ping', 'dgramP50Us'))
    return [
      link(run),
      host(run),
      volley === undefined ? '–' : `${thousands(volley)} Mbit/s`,
      times(ratio(volley, udx)),
      thousands(num(at(run.record, 'summary', 'messagesPerSecond'))),
      p50 === undefined ? '–' : `${p50.toFixed(0)} / ${p99?.toFixed(0) ?? '–'} µs`,
      dgramP50 === undefined ? '–' : `${dgramP50.toFixed(0)} / ${dgramP99?.toFixed(0) ?? '–'} µs`,
      signedUs(p99 !== undefined && dgramP99 !== undefined ? p99 - dgramP99 : undefined),
      fallbackRatios(run.record, volley),
    ]
  })
  return table(['run', 'host', 'bulk, encrypted', 'bulk ÷ udx-native (≥ 1×)', '100 B reliable messages/s', 'ping p50 / p99', 'node:dgram echo p50 / p99', 'p99 gap (≤ 50 µs)', 'native ÷ fallback engine: bulk, messages'], rows, 'llrrrrrrr')
}

/** The native engine against the fallback engine in a delivery run (runs before the fallback had channels: –). */
function fallbackRatios(record: unknown, volleyMbps: number | undefined): string {
  const bulk = num(at(record, 'summary', 'bulk', 'fallbackMbps'))
  const messages = num(at(record, 'summary', 'fallbackMessagesPerSecond'))
  if (bulk === undefined || messages === undefined) return '–'
  return `${times(ratio(volleyMbps, bulk))}, ${times(ratio(num(at(record, 'summary', 'messagesPerSecond')), messages))}`
}

/** How one target fared in a run: its figures as written, the numbers its range is taken over, and whether it was met. */
interface Verdict {
  text: string
  figures: number[]
  met: boolean
}

interface Target {
  benchmark: 'datagram' | 'connections' | 'delivery'
  what: string
  goal: string
  /** The run's verdict, or undefined where it did not measure this target (or measured it otherwise). */
  judge: (run: Run) => Verdict | undefined
  format: (figure: number) => string
}

/** The verdict a run recorded for the target whose description starts so; undefined where it recorded none. */
function recorded(run: Run, prefix: string): { value: number; met: boolean } | undefined {
  const targets = at(run.record, 'summary', 'targets') ?? at(run.record, 'targets')
  if (!Array.isArray(targets)) return undefined
  const found = targets.find((t: Json) => String(t.what).startsWith(prefix)) as Json | undefined
  const value = num(found?.value)
  return value === undefined || typeof found?.met !== 'boolean' ? undefined : { value, met: found.met }
}

function simple(prefix: string, format: (figure: number) => string): (run: Run) => Verdict | undefined {
  return (run) => {
    const verdict = recorded(run, prefix)
    return verdict && { text: format(verdict.value), figures: [verdict.value], met: verdict.met }
  }
}

const bytes = (figure: number): string => `${thousands(figure)} B`
const count = (figure: number): string => String(figure)

const targets: Target[] = [
  {
    benchmark: 'datagram',
    what: 'receive CPU per 64 B datagram, volley ÷ node:dgram',
    goal: '≤ 0.4×',
    judge: (run) => (run.stamp.endsWith('-gso') ? undefined : simple('volley CPU/packet ÷ node:dgram CPU/packet, 64 B', times)(run)),
    format: times,
  },
  {
    benchmark: 'datagram',
    what: 'receive rate at saturation, volley ÷ a C `recvmmsg` loop (64 B; 1200 B)',
    goal: '≥ 0.9×',
    judge: (run) => {
      const sizes = [64, 1200].map((size) => saturatedRate(run, size))
      const [small] = sizes
      if (small === undefined) return undefined
      const judged = sizes.filter((size): size is SaturatedRate => size !== undefined)
      return {
        text: sizes.map((size) => (size === undefined ? '–' : `${size.bound}${times(size.ratio)}`)).join('; '),
        figures: judged.map((size) => size.ratio),
        met: judged.every((size) => size.met),
      }
    },
    format: times,
  },
  {
    benchmark: 'connections',
    what: 'server CPU per handshake, a fresh server / its next clients',
    goal: '< 20 µs',
    judge: (run) => {
      const fresh = recorded(run, "server CPU per completed handshake (a fresh server's first clients")
      const next = recorded(run, 'server CPU per completed handshake (the next clients')
      if (fresh === undefined || next === undefined) return undefined
      return { text: `${us(fresh.value)} / ${us(next.value)}`, figures: [fresh.value, next.value], met: fresh.met && next.met }
    },
    format: us,
  },
  {
    benchmark: 'connections',
    what: 'server RSS per connected idle peer',
    goal: '< 2 KiB',
    judge: simple('server RSS per connected idle peer', bytes),
    format: bytes,
  },
  {
    benchmark: 'connections',
    what: '10,000 clients held 60 s with 10 Hz keep-alives: timeouts',
    goal: '0',
    judge: simple('connections timed out during the hold', count),
    format: count,
  },
  {
    benchmark: 'connections',
    what: 'CPU per 64 B encrypted payload, volley ÷ node:dgram plaintext',
    goal: '≤ 0.5×',
    // Only runs with the library's 10 Hz keep-alives: the target is about the default.
    judge: (run) => {
      const keepAliveMs = num(at(run.record, 'options', 'keepAliveMs'))
      return keepAliveMs !== undefined && keepAliveMs !== 100 ? undefined : simple('payload CPU: volley per encrypted payload', times)(run)
    },
    format: times,
  },
  {
    benchmark: 'delivery',
    what: 'reliable bulk transfer, volley (encrypted) ÷ udx-native (plain)',
    goal: '≥ 1×',
    judge: simple('reliable bulk throughput', times),
    format: times,
  },
  {
    benchmark: 'delivery',
    what: 'ping RTT p99, volley − node:dgram echo',
    goal: '≤ +50 µs',
    judge: simple('ping RTT p99', signedUs),
    format: signedUs,
  },
]

/** How many of the last full runs a target's summary counts. */
const RECENT_RUNS = 10

/**
 * Where each target stands: its latest full run, and how many of the last ten met it, with their range.
 * `results` is the result files' folder as the document links to it; `dir`, where they are read from.
 */
export function targetsTable(results: string, dir = resultsDir): string {
  const rows = targets.map((target) => {
    const judged = runs(target.benchmark, dir)
      .filter((run) => run.record.complete !== false)
      .map((run) => ({ run, verdict: target.judge(run) }))
      .filter((item): item is { run: Run; verdict: Verdict } => item.verdict !== undefined)
      .slice(0, RECENT_RUNS)
    const latest = judged[0]
    if (latest === undefined) return [target.what, target.goal, '–', '–', '–']
    const figures = judged.flatMap((item) => item.verdict.figures)
    const [low, high] = [target.format(Math.min(...figures)), target.format(Math.max(...figures))]
    const range = low === high ? low : `${low} to ${high}`
    const met = judged.filter((item) => item.verdict.met).length
    return [
      target.what,
      target.goal,
      `**${latest.verdict.text}** (${link(latest.run, results)}, ${host(latest.run)})`,
      latest.verdict.met ? 'met' : '**not met**',
      `${met} of ${judged.length} (${range})`,
    ]
  })
  return table(['target', 'goal', 'latest full run', '', `met in the last ${RECENT_RUNS} runs (their range)`], rows, 'lllll')
}

export function history(): string {
  return [
    '### Datagrams (`npm run bench`; `-gso`: the saturating run)',
    '',
    "² Not a ceiling: volley or the C loop kept up with the blaster, whose speed the rate then is (it also depends on how often the receiver makes it wait). Only runs in which both lost datagrams compare what they can receive.",
    '',
    datagramTable(),
    '',
    '### Connections (`npm run bench:connections`; a dash: the run skipped that phase)',
    '',
    '¹ From the RSS right after listen, at the end of the hold: these runs did not count the engine and the slots the server makes for maxClients, nor the RSS right after connect. Later runs measure from before the Server was made and take the larger reading.',
    '',
    connectionsTable(),
    '',
    '### Delivery (`npm run bench:delivery`)',
    '',
    deliveryTable(),
  ].join('\n')
}

const parts: Part[] = [
  { begin: '<!-- targets:begin', end: '<!-- targets:end -->', text: (results) => targetsTable(results) },
  { begin: '<!-- history:begin', end: '<!-- history:end -->', text: () => history() },
]

/** The file's text with each of its marked parts written anew from the result files; links follow the file's folder. */
export function rewrite(file: string): string {
  const results = relative(dirname(file), resultsDir) || '.'
  let text = readFileSync(file, 'utf8')
  let written = 0
  for (const part of parts) {
    const from = text.indexOf(part.begin)
    if (from < 0) continue
    const to = text.indexOf(part.end, from)
    if (to < 0) throw new Error(`${file}: ${part.begin} has no ${part.end}`)
    text = `${text.slice(0, from)}${part.begin} (${historyCommand}) -->\n\n${part.text(results)}\n\n${part.end}${text.slice(to + part.end.length)}`
    written += 1
  }
  if (written === 0) throw new Error(`${file} has none of the markers (${parts.map((part) => part.begin).join(', ')})`)
  return text
}

