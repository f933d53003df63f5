// The benchmarks' standing and history, from their history lines (bench/lib/history-lines.ts): where each
// target stands (its latest full run and how many of the last runs met it), and one markdown table per
// benchmark, a row per full run, newest first. The figures are the ratios each run measured side by side, so
// runs hours apart compare; absolute times do not (this machine moves them by 20–40 %). Documents hold them
// between markers, which bench/history.ts rewrites.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { type Benchmark, type HistoryLine, readHistory, runStamp } from './history-lines.ts'
import { table, times } from './format.ts'
import { benchDir, historyCommand } from './runner.ts'
import { ratio } from './statistics.ts'
import { judgeSaturatedRate, saturationBound } from './summary.ts'

const resultsDir = join(benchDir, 'results')
/** A part of a document this script writes, between its markers. */
interface Part {
  begin: string
  end: string
  /** The part's text; `results` is the results folder as the document links to it. */
  text: (results: string) => string
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
  benchmark: Benchmark
  line: HistoryLine
  /** Whether latest-<benchmark>.json (or -gso) holds this run's full record. */
  latest: boolean
}

/** The stamp of a latest-*.json file's run, from its system.date; undefined when there is none. */
function latestStamp(dir: string, benchmark: Benchmark, variant: string): string | undefined {
  const file = join(dir, `latest-${benchmark}${variant}.json`)
  if (!existsSync(file)) return undefined
  const date = (JSON.parse(readFileSync(file, 'utf8')) as { system?: { date?: string } }).system?.date
  return date === undefined ? undefined : `${runStamp(date)}${variant}`
}

/** Full runs of one benchmark, newest first. */
function runs(benchmark: Benchmark, dir = resultsDir): Run[] {
  const latest = new Set([latestStamp(dir, benchmark, ''), latestStamp(dir, benchmark, '-gso')])
  return readHistory(dir, benchmark).map((line) => ({ benchmark, line, latest: latest.has(line.stamp) }))
}

/** A figure of the run, undefined where it did not measure it. */
function figure(run: Run, name: string): number | undefined {
  return run.line.figures[name]
}

/**
 * A run: a link to its full record where it is the latest one, else its stamp (the history line says where its
 * record is). One in which a case failed is marked (its figures may lack that case), and so is one not complete
 * (fewer repeats, clients or seconds than a full run: its figures are not the full run's).
 */
function link(run: Run, results: string): string {
  const marks = [run.line.failed ? 'a case failed' : '', run.line.complete ? '' : 'not a full run'].filter((mark) => mark !== '')
  const { stamp } = run.line
  const name = run.latest ? `[${stamp}](${results}/latest-${run.benchmark}${stamp.endsWith('-gso') ? '-gso' : ''}.json)` : stamp
  return `${name}${marks.length > 0 ? ` (${marks.join('; ')})` : ''}`
}

interface SaturatedRate {
  ratio: number
  /** '≤ ' where the C loop kept up (volley's ceiling is at most this share of its own), '≥ ' where volley did. */
  bound: '' | '≤ ' | '≥ '
  met: boolean
}

/** The figure names of a datagram run's receive at one size ('' at 64 B). */
function sized(name: string, size: number): string {
  return size === 64 ? name : `${name}${size}`
}

/**
 * volley's receive rate over the C loop's at one size, where it decides the target (judgeSaturatedRate, as
 * the run's own summary judges it, recomputed from the rates and losses). Otherwise undefined: nothing was shown.
 */
function saturatedRate(run: Run, size: number): SaturatedRate | undefined {
  const ratioOfRates = figure(run, sized('rateOverC', size)) ?? Number.NaN
  const { bound, met } = judgeSaturatedRate(ratioOfRates, figure(run, sized('lossVolley', size)) ?? 0, figure(run, sized('lossC', size)) ?? 0)
  if (met === null) return undefined
  return { ratio: ratioOfRates, bound: bound === 'upper' ? '≤ ' : bound === 'lower' ? '≥ ' : '', met }
}

/**
 * The machine a run had: its CPU and the VM's kernel build. Figures moved with them more than with anything
 * else (the payload target was met on one of them only), so each row says which.
 */
function host(run: Run): string {
  const { cpu, kernel } = run.line
  const maker = /EPYC/.test(cpu) ? 'EPYC' : /Xeon/.test(cpu) ? 'Xeon' : cpu === '' ? '–' : cpu
  const build = /-fc-(v\d+)/.exec(kernel)?.[1]
  return build === undefined ? maker : `${maker} ${build}`
}

/** Whether volley and the C loop both lost datagrams at this size: only then are their rates ceilings. */
function saturated(run: Run, size: number): boolean {
  return saturationBound(figure(run, sized('lossVolley', size)) ?? 0, figure(run, sized('lossC', size)) ?? 0) === 'ceilings'
}

/** A ratio figure as the tables show it ('–' where the run did not measure it). */
function timesOf(run: Run, name: string): string {
  return times(figure(run, name) ?? Number.NaN)
}

function datagramTable(results: string): string {
  const rows = runs('datagram').map((run) => [
    link(run, results),
    host(run),
    us(figure(run, 'receiveCpuUs')),
    timesOf(run, 'receiveCpuOverDgram'),
    timesOf(run, 'receiveCpuOverDgram1200'),
    `${timesOf(run, 'rateOverC')}${saturated(run, 64) ? '' : ' ²'}`,
    timesOf(run, 'sendRateOverDgram'),
    timesOf(run, 'sendCpuOverDgram'),
  ])
  return table(
    ['run', 'host', 'volley CPU per 64 B datagram', 'CPU ÷ node:dgram, 64 B', '1200 B', 'rate ÷ C recvmmsg loop, 64 B', 'send rate ÷ node:dgram', 'send CPU ÷ node:dgram'],
    rows,
    'llrrrrrr',
  )
}

/** The server's RSS per idle peer; marked where it was measured from right after listen (older runs). */
function idleRss(run: Run): string {
  const perPeer = figure(run, 'rssPerIdlePeer')
  return perPeer === undefined ? '–' : `${thousands(perPeer)} B${figure(run, 'rssFromListen') === 1 ? ' ¹' : ''}`
}

/** The keep-alive period of a connections run, where it was not the library's 100 ms (its payload figures are not the default's). */
function otherKeepAlives(run: Run): number | undefined {
  const keepAliveMs = figure(run, 'keepAliveMs')
  return keepAliveMs !== undefined && keepAliveMs !== 100 ? keepAliveMs : undefined
}

function connectionsTable(results: string): string {
  const rows = runs('connections').map((run) => {
    const fresh = figure(run, 'handshakeFreshUs')
    const next = figure(run, 'handshakeNextUs')
    const keepAliveMs = otherKeepAlives(run)
    const timedOut = run.line.targets.timedOut?.value
    return [
      `${link(run, results)}${keepAliveMs === undefined ? '' : ` (keep-alives every ${thousands(keepAliveMs)} ms)`}`,
      host(run),
      fresh === undefined && next === undefined ? '–' : `${us(fresh)} / ${us(next)}`,
      idleRss(run),
      timedOut === undefined ? '–' : String(timedOut),
      timesOf(run, 'payloadOverDgram'),
      timesOf(run, 'payloadOverDgramNet'),
      timesOf(run, 'floorOverDgram'),
    ]
  })
  return table(
    ['run', 'host', 'CPU per handshake, fresh / next (< 20 µs)', 'RSS per idle peer (< 2 KiB)', 'timed out in the hold', 'payload CPU ÷ node:dgram', 'net of the idle share (≤ 0.5×)', 'floor ÷ node:dgram'],
    rows,
    'llrrrrrr',
  )
}

function deliveryTable(results: string): string {
  const rows = runs('delivery').map((run) => {
    const volley = figure(run, 'bulkMbps')
    const p99 = figure(run, 'pingP99Us')
    const dgramP99 = figure(run, 'dgramP99Us')
    const p50 = figure(run, 'pingP50Us')
    const dgramP50 = figure(run, 'dgramP50Us')
    return [
      link(run, results),
      host(run),
      volley === undefined ? '–' : `${thousands(volley)} Mbit/s`,
      times(ratio(volley, figure(run, 'udxMbps'))),
      thousands(figure(run, 'messagesPerSecond')),
      p50 === undefined ? '–' : `${p50.toFixed(0)} / ${p99?.toFixed(0) ?? '–'} µs`,
      dgramP50 === undefined ? '–' : `${dgramP50.toFixed(0)} / ${dgramP99?.toFixed(0) ?? '–'} µs`,
      signedUs(p99 !== undefined && dgramP99 !== undefined ? p99 - dgramP99 : undefined),
      fallbackRatios(run, volley),
    ]
  })
  return table(['run', 'host', 'bulk, encrypted', 'bulk ÷ udx-native (≥ 1×)', '100 B reliable messages/s', 'ping p50 / p99', 'node:dgram echo p50 / p99', 'p99 gap (≤ 50 µs)', 'native ÷ fallback engine: bulk, messages'], rows, 'llrrrrrrr')
}

const goodputRatio = (figure: number): string => figure.toFixed(3)
const ms = (figure: number): string => `${figure.toFixed(1)} ms`

function congestionTable(results: string): string {
  const rows = runs('congestion').map((run) => {
    const worst = (name: string, format: (figure: number) => string): string => {
      const value = figure(run, name)
      return value === undefined ? '–' : format(value)
    }
    return [
      link(run, results),
      host(run),
      worst('worstGoodputRatioLoss10', goodputRatio),
      worst('worstGoodputRatioLoss15', goodputRatio),
      worst('worstGoodputRatioLoss20', goodputRatio),
      worst('worstQueueP99OverRttMs', ms),
      worst('worstJain', goodputRatio),
      `${figure(run, 'cellsNotMet') ?? '–'} of ${figure(run, 'cellsWithTargets') ?? '–'}`,
    ]
  })
  return table(
    ['run', 'host', 'goodput ratio ≤ 10 % loss (≥ 0.85)', '15 % (≥ 0.75)', '20 % (≥ 0.5)', 'queue p99 − RTT, 0 % loss (≤ 10 ms)', 'Jain, two flows (≥ 0.9)', 'cells under target'],
    rows,
    'llrrrrrr',
  )
}

/** The native engine against the fallback engine in a delivery run (runs before the fallback had channels: –). */
function fallbackRatios(run: Run, volleyMbps: number | undefined): string {
  const bulk = figure(run, 'fallbackBulkMbps')
  const messages = figure(run, 'fallbackMessagesPerSecond')
  if (bulk === undefined || messages === undefined) return '–'
  return `${times(ratio(volleyMbps, bulk))}, ${times(ratio(figure(run, 'messagesPerSecond'), messages))}`
}

/** How one target fared in a run: its figures as written, the numbers its range is taken over, and whether it was met. */
interface Verdict {
  text: string
  figures: number[]
  met: boolean
}

interface Target {
  benchmark: Benchmark
  what: string
  /** What the README's summary calls it: a few words. */
  short: string
  goal: string
  /** The run's verdict, or undefined where it did not measure this target (or measured it otherwise). */
  judge: (run: Run) => Verdict | undefined
  format: (figure: number) => string
}

/** The verdict the run recorded for the target of this name, as it is. */
function simple(name: string, format: (figure: number) => string): (run: Run) => Verdict | undefined {
  return (run) => {
    const verdict = run.line.targets[name]
    return verdict && { text: format(verdict.value), figures: [verdict.value], met: verdict.met }
  }
}

const bytes = (figure: number): string => `${thousands(figure)} B`
const count = (figure: number): string => String(figure)

/** The payload target's goal: volley's CPU per encrypted payload at most half node:dgram's per plaintext datagram. */
const PAYLOAD_GOAL = 0.5

const targets: Target[] = [
  {
    benchmark: 'datagram',
    what: 'receive CPU per 64 B datagram, volley ÷ node:dgram',
    short: 'receive CPU per datagram ÷ node:dgram',
    goal: '≤ 0.4×',
    judge: (run) => (run.line.stamp.endsWith('-gso') ? undefined : simple('receiveCpu', times)(run)),
    format: times,
  },
  {
    benchmark: 'datagram',
    what: 'receive rate at saturation, volley ÷ a C `recvmmsg` loop (64 B; 1200 B)',
    short: 'receive rate at saturation ÷ a C `recvmmsg` loop',
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
    short: 'server CPU per handshake',
    goal: '< 20 µs',
    judge: (run) => {
      const { handshakeFresh: fresh, handshakeNext: next } = run.line.targets
      if (fresh === undefined || next === undefined) return undefined
      return { text: `${us(fresh.value)} / ${us(next.value)}`, figures: [fresh.value, next.value], met: fresh.met && next.met }
    },
    format: us,
  },
  {
    benchmark: 'connections',
    what: 'server RSS per connected idle peer',
    short: 'memory per idle peer',
    goal: '< 2 KiB',
    judge: simple('rssPerIdlePeer', bytes),
    format: bytes,
  },
  {
    benchmark: 'connections',
    what: '10,000 clients held 60 s with 10 Hz keep-alives: timeouts',
    short: '10,000 clients held 60 s: timeouts',
    goal: '0',
    judge: simple('timedOut', count),
    format: count,
  },
  {
    benchmark: 'connections',
    what: 'CPU per 64 B encrypted payload, volley ÷ node:dgram plaintext, net of idle keep-alives (gross; volley ÷ C floor)',
    short: 'CPU per encrypted message ÷ node:dgram plaintext',
    goal: `≤ ${PAYLOAD_GOAL}×`,
    // Net of the keep-alives the server sends to clients it sends nothing else: those are the protocol's idle
    // cost, not a message's. The gross figure and volley ÷ the C floor (which no host moves) stand beside it.
    // Only runs with the library's 10 Hz keep-alives: the target is about the default.
    judge: (run) => {
      const net = figure(run, 'payloadOverDgramNet')
      if (net === undefined || otherKeepAlives(run) !== undefined) return undefined
      return {
        text: `${times(net)} (${timesOf(run, 'payloadOverDgram')}; ${timesOf(run, 'payloadOverFloorNet')})`,
        figures: [net],
        met: net <= PAYLOAD_GOAL,
      }
    },
    format: times,
  },
  {
    benchmark: 'delivery',
    what: 'reliable bulk transfer, volley (encrypted) ÷ udx-native (plain)',
    short: 'reliable bulk transfer ÷ udx-native',
    goal: '≥ 1×',
    judge: simple('bulk', times),
    format: times,
  },
  {
    benchmark: 'delivery',
    what: 'ping RTT p99, volley − node:dgram echo',
    short: 'ping RTT p99 − node:dgram echo',
    goal: '≤ +50 µs',
    judge: simple('pingP99', signedUs),
    format: signedUs,
  },
  ...(
    [
      ['goodputLoss10', 'up to 10 %', '≥ 0.85'],
      ['goodputLoss15', 'at 15 %', '≥ 0.75'],
      ['goodputLoss20', 'at 20 %', '≥ 0.5'],
    ] as const
  ).map(
    ([name, loss, goal]): Target => ({
      benchmark: 'congestion',
      what: `reliable goodput ÷ ((1 − loss) × bottleneck), random loss ${loss}, 10 and 100 Mbit/s × 2, 20, 200 ms (worst cell)`,
      short: `goodput ÷ what the path carries, loss ${loss}`,
      goal,
      judge: simple(name, goodputRatio),
      format: goodputRatio,
    }),
  ),
  {
    benchmark: 'congestion',
    what: 'queueing delay p99 at the bottleneck − RTT, one flow, no loss (worst cell)',
    short: 'queueing delay p99 at a bottleneck',
    goal: '≤ 10 ms',
    judge: simple('queueP99', ms),
    format: ms,
  },
  {
    benchmark: 'congestion',
    what: "two flows sharing a bottleneck: Jain's index over the 10 s after the first 10 (worst cell)",
    short: "two flows' fairness (Jain's index)",
    goal: '≥ 0.9',
    judge: simple('fairness', goodputRatio),
    format: goodputRatio,
  },
]

/** How many of the last full runs a target's summary counts. */
const RECENT_RUNS = 10

/**
 * Where each target stands: its latest full run, and how many of the last ten met it, with their range.
 * `results` is the results folder as the document links to it; `dir`, where the history is read from.
 */
export function targetsTable(results: string, dir = resultsDir): string {
  const rows = targets.map((target) => {
    const judged = runs(target.benchmark, dir)
      .filter((run) => run.line.complete)
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

/** The README's few lines: each target, its goal and where its latest full run left it (docs/performance.md has the rest). */
export function targetsSummary(): string {
  const rows = targets.map((target) => {
    const latest = runs(target.benchmark, resultsDir)
      .filter((run) => run.line.complete)
      .map((run) => target.judge(run))
      .find((verdict): verdict is Verdict => verdict !== undefined)
    return [target.short, target.goal, latest === undefined ? '–' : `${latest.met ? '' : 'not met: '}**${latest.text}**`]
  })
  return table(['target', 'goal', 'latest'], rows, 'lll')
}

/** Every full run's figures; `results` is the results folder as the document links to it. */
export function history(results: string): string {
  return [
    'A row per full run, from `bench/results/<benchmark>-history.jsonl`. The latest run links to its full record; an older run\'s history line names the commit that holds it (`git show <record>`), or the commit it measured.',
    '',
    '### Datagrams (`npm run bench`; `-gso`: the saturating run)',
    '',
    "² Not a ceiling: volley or the C loop kept up with the blaster, whose speed the rate then is (it also depends on how often the receiver makes it wait). Only runs in which both lost datagrams compare what they can receive.",
    '',
    datagramTable(results),
    '',
    '### Connections (`npm run bench:connections`; a dash: the run skipped that phase)',
    '',
    '¹ From the RSS right after listen, at the end of the hold: these runs did not count the engine and the slots the server makes for maxClients, nor the RSS right after connect. Later runs measure from before the Server was made and take the larger reading.',
    '',
    connectionsTable(results),
    '',
    '### Delivery (`npm run bench:delivery`)',
    '',
    deliveryTable(results),
    '',
    '### Congestion control (`npm run bench:congestion`, on the fake clock)',
    '',
    congestionTable(results),
  ].join('\n')
}

const parts: Part[] = [
  { begin: '<!-- targets:begin', end: '<!-- targets:end -->', text: (results) => targetsTable(results) },
  { begin: '<!-- history:begin', end: '<!-- history:end -->', text: (results) => history(results) },
  { begin: '<!-- summary:begin', end: '<!-- summary:end -->', text: () => targetsSummary() },
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

