// The history of the benchmarks, from the result files themselves: one markdown table per benchmark, a row
// per full run in bench/results (quick runs are left out), newest first. The figures are the ratios each run
// measured side by side, so runs hours apart compare; absolute times do not (this machine moves them by
// 20–40 %). `--write FILE` replaces the part of FILE between the history markers; without it, prints.
//   npx tsx bench/history.ts [--write docs/performance.md]
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { idlePeerRss } from './lib/connections-render.ts'
import { table, times } from './lib/format.ts'
import { benchDir } from './lib/runner.ts'
import { median, ratio } from './lib/statistics.ts'
import { SATURATED_LOSS } from './lib/summary.ts'

const resultsDir = join(benchDir, 'results')
const begin = '<!-- history:begin (npx tsx bench/history.ts --write docs/performance.md) -->'
const end = '<!-- history:end -->'

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
function runs(kind: string): Run[] {
  const pattern = new RegExp(`^${kind}-(\\d{4}-\\d{2}-\\d{2}T\\d{4})(-gso)?\\.json$`)
  const found: Run[] = []
  for (const file of readdirSync(resultsDir)) {
    const match = pattern.exec(file)
    if (match === null) continue
    const record = JSON.parse(readFileSync(join(resultsDir, file), 'utf8')) as Json
    if (record.quick === true) continue
    found.push({ file, stamp: `${match[1]}${match[2] ?? ''}`, record })
  }
  return found.sort((a, b) => (a.stamp < b.stamp ? 1 : -1))
}

/**
 * A run's link; one in which a case failed is marked (its figures may lack that case), and so is one not
 * complete (fewer repeats, clients or seconds than a full run: its figures are not the full run's).
 */
function link(run: Run): string {
  const marks = [run.record.failed === true ? 'a case failed' : '', run.record.complete === false ? 'not a full run' : ''].filter((mark) => mark !== '')
  return `[${run.stamp}](../bench/results/${run.file})${marks.length > 0 ? ` (${marks.join('; ')})` : ''}`
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
  return loss('volley') >= SATURATED_LOSS && loss('c-recvmmsg') >= SATURATED_LOSS
}

function datagramTable(): string {
  const rows = runs('datagram').map((run) => {
    // volley's figure over another's, from the same run
    const over = (list: 'receive' | 'send', size: number, field: string, other: string): number =>
      ratio(num(entry(run, list, 'volley', size)?.[field]), num(entry(run, list, other, size)?.[field]))
    return [
      link(run),
      us(num(entry(run, 'receive', 'volley', 64)?.cpuPerPacketUs)),
      times(over('receive', 64, 'cpuPerPacketUs', 'dgram')),
      times(over('receive', 1200, 'cpuPerPacketUs', 'dgram')),
      `${times(over('receive', 64, 'rate', 'c-recvmmsg'))}${saturated(run, 64) ? '' : ' ²'}`,
      times(over('send', 64, 'rate', 'dgram')),
      times(over('send', 64, 'cpuPerPacketUs', 'dgram')),
    ]
  })
  return table(
    ['run', 'volley CPU per 64 B datagram', 'CPU ÷ node:dgram, 64 B', '1200 B', 'rate ÷ C recvmmsg loop, 64 B', 'send rate ÷ node:dgram', 'send CPU ÷ node:dgram'],
    rows,
    'lrrrrrr',
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
      cold === undefined && warm === undefined ? '–' : `${us(cold)} / ${us(warm)}`,
      idleRss(run),
      target('connections timed out') === undefined ? '–' : String(target('connections timed out')),
      times(num(at(run.record, 'summary', 'payloadRatio')) ?? Number.NaN),
      times(num(at(run.record, 'summary', 'payloadRatioNet')) ?? Number.NaN),
      times(num(at(run.record, 'summary', 'floorRatio')) ?? Number.NaN),
    ]
  })
  return table(
    ['run', 'CPU per handshake, fresh / next (< 20 µs)', 'RSS per idle peer (< 2 KiB)', 'timed out in the hold', 'payload CPU ÷ node:dgram (≤ 0.5×)', 'net of the idle share', 'floor ÷ node:dgram'],
    rows,
    'lrrrrrr',
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
      volley === undefined ? '–' : `${thousands(volley)} Mbit/s`,
      times(ratio(volley, udx)),
      thousands(num(at(run.record, 'summary', 'messagesPerSecond'))),
      p50 === undefined ? '–' : `${p50.toFixed(0)} / ${p99?.toFixed(0) ?? '–'} µs`,
      dgramP50 === undefined ? '–' : `${dgramP50.toFixed(0)} / ${dgramP99?.toFixed(0) ?? '–'} µs`,
      signedUs(p99 !== undefined && dgramP99 !== undefined ? p99 - dgramP99 : undefined),
      fallbackRatios(run.record, volley),
    ]
  })
  return table(['run', 'bulk, encrypted', 'bulk ÷ udx-native (≥ 1×)', '100 B reliable messages/s', 'ping p50 / p99', 'node:dgram echo p50 / p99', 'p99 gap (≤ 50 µs)', 'native ÷ fallback engine: bulk, messages'], rows, 'lrrrrrrr')
}

/** The native engine against the fallback engine in a delivery run (runs before the fallback had channels: –). */
function fallbackRatios(record: unknown, volleyMbps: number | undefined): string {
  const bulk = num(at(record, 'summary', 'bulk', 'fallbackMbps'))
  const messages = num(at(record, 'summary', 'fallbackMessagesPerSecond'))
  if (bulk === undefined || messages === undefined) return '–'
  return `${times(ratio(volleyMbps, bulk))}, ${times(ratio(num(at(record, 'summary', 'messagesPerSecond')), messages))}`
}

export function history(): string {
  return [
    begin,
    '',
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
    '',
    end,
  ].join('\n')
}

const { values } = parseArgs({ options: { write: { type: 'string' } } })
if (values.write === undefined) {
  console.log(history())
} else {
  const text = readFileSync(values.write, 'utf8')
  const from = text.indexOf(begin)
  const to = text.indexOf(end)
  if (from < 0 || to < from) throw new Error(`${values.write} has no history markers (${begin} ... ${end})`)
  writeFileSync(values.write, text.slice(0, from) + history() + text.slice(to + end.length))
  console.log(`history written to ${values.write}`)
}
