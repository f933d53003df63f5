// The congestion benchmark's tables (markdown, for the terminal) and its plot (docs/congestion-grid.svg,
// SVG written as text): goodput ratio against random loss, one line per bottleneck and RTT, over the
// targets' staircase; below it, a table of the queueing delay at 0 % loss and the two-flow fairness.
import { type Cell, type CellRun, type Check, cellName, gridLossPercents, gridMbps, gridRttsMs, goodputLimit, type GridTarget, oddities } from './congestion-cells.ts'
import { type EndToEndRecord, type EndToEndRun, endToEndCellName, endToEndMessageBytes, endToEndOddities, engines, type EngineName } from './congestion-end-to-end.ts'
import { table } from './format.ts'

/** What the heading of the tables and the plot say about the run. */
export interface RunLabel {
  date: string
  commit: string | undefined
  deliverySource: string
  quick: boolean
}

const fixed = (value: number | null | undefined, digits: number): string => (typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–')

function find(runs: readonly CellRun[], kind: Cell['kind'], mbps: number, rttMs: number, lossPercent: number): CellRun | undefined {
  return runs.find(({ cell }) => cell.kind === kind && cell.mbps === mbps && cell.rttMs === rttMs && cell.lossPercent === lossPercent)
}

function checkOf(run: CellRun | undefined, what: Check['what']): Check | undefined {
  return run?.checks.find((check) => check.what === what)
}

/** A figure with ✗ when its cell's target was not met. */
function judged(text: string, check: Check | undefined): string {
  return check !== undefined && !check.met ? `${text} ✗` : text
}

/** The paths (bottleneck, RTT) any run measured, in grid order. */
function paths(runs: readonly CellRun[]): { mbps: number; rttMs: number }[] {
  return gridMbps.flatMap((mbps) => gridRttsMs.map((rttMs) => ({ mbps, rttMs }))).filter(({ mbps, rttMs }) => runs.some(({ cell }) => cell.mbps === mbps && cell.rttMs === rttMs))
}

/** When the two flows became fair for good (per-second Jain index ≥ 0.9 to the end), from the second's start. */
function fairFrom(secondsToFair: number | null | undefined): string {
  return typeof secondsToFair === 'number' ? `fair from ${secondsToFair} s` : 'not steadily fair'
}

function fairnessText(run: CellRun | undefined): string {
  const fairness = run?.result?.fairness
  if (run === undefined) return ''
  if (fairness === undefined) return judged('–', checkOf(run, 'fairness'))
  return `${judged(fixed(fairness.jain, 3), checkOf(run, 'fairness'))}, ${fairFrom(fairness.secondsToFair)}`
}

export function renderTables(runs: readonly CellRun[], targets: readonly GridTarget[], label: RunLabel, wallSeconds: number | undefined, jobs: number | undefined): string {
  const out: string[] = []
  out.push(`## volley congestion control over a grid of paths, ${label.date.slice(0, 16).replace('T', ' ')} UTC${label.quick ? ' (quick)' : ''}`)
  out.push('')
  const timing = wallSeconds === undefined ? '' : ` · ${runs.length} cells in ${wallSeconds.toFixed(1)} s${jobs === undefined ? '' : `, ${jobs} at a time`}`
  out.push(`commit ${label.commit ?? '?'} · delivery sources ${label.deliverySource}${timing}`)
  out.push('')
  const single = runs.filter(({ cell }) => cell.kind === 'single')
  const losses = gridLossPercents.filter((loss) => single.some(({ cell }) => cell.lossPercent === loss))
  if (single.length > 0) {
    out.push('goodput ratio: goodput ÷ ((1 − loss) × bottleneck rate), one flow, after the warm-up (✗: under its target; 1 Mbit/s and 30 % have none)')
    out.push('')
    const rows = paths(single).map(({ mbps, rttMs }) => [
      `${mbps} Mbit/s, ${rttMs} ms`,
      ...losses.map((loss) => {
        const run = find(single, 'single', mbps, rttMs, loss)
        return run === undefined ? '' : judged(fixed(run.result?.goodputRatio, 3), checkOf(run, 'goodput'))
      }),
    ])
    out.push(table(['bottleneck, RTT', ...losses.map((loss) => `${loss} %`)], rows, `l${'r'.repeat(losses.length)}`))
    out.push('')
  }
  const queueRows = paths(runs).map(({ mbps, rttMs }) => {
    const lossless = find(runs, 'single', mbps, rttMs, 0)
    const queue = lossless === undefined ? '' : `${fixed(lossless.result?.queueDelayP50Ms, 1)} / ${judged(fixed(lossless.result?.queueDelayP99Ms, 1), checkOf(lossless, 'queue'))}`
    return [`${mbps} Mbit/s, ${rttMs} ms`, queue, `${rttMs + 10}`, fairnessText(find(runs, 'fairness', mbps, rttMs, 0)), fairnessText(find(runs, 'fairness', mbps, rttMs, 1))]
  })
  out.push('queueing delay at the bottleneck with one flow at 0 % loss (target p99 ≤ RTT + 10 ms), and two flows: Jain index over the last 10 s (target ≥ 0.9)')
  out.push('')
  out.push(table(['bottleneck, RTT', 'queue p50 / p99, ms', 'p99 target, ms', 'Jain, 0 % loss', 'Jain, 1 % loss'], queueRows, 'lrrll'))
  out.push('')
  for (const target of targets) {
    const verdict = target.met === null ? 'not measured' : target.met ? 'met' : 'NOT met'
    out.push(`- ${target.what}: ${fixed(target.value, 3)} (target ${target.target}): ${verdict}`)
  }
  const failing = runs.filter((run) => run.checks.some((check) => !check.met))
  if (failing.length > 0) {
    out.push('')
    out.push(`cells under their targets (${failing.length} of ${runs.filter((run) => run.checks.length > 0).length}):`)
    for (const run of failing) {
      const misses = run.checks.filter((check) => !check.met).map((check) => `${check.what} ${fixed(check.value, 3)}, target ${check.kind} ${check.limit}`)
      out.push(`- ${cellName(run.cell)}: ${misses.join('; ')}`)
    }
  }
  const odd = runs.flatMap((run) => oddities(run).map((what) => `- ${cellName(run.cell)}: ${what}`))
  if (odd.length > 0) out.push('', 'odd:', ...odd)
  out.push('')
  out.push(renderDetails(runs))
  return out.join('\n')
}

/** Every cell's counters: the senders' (summed over flows), the link's, and what the run cost. */
function renderDetails(runs: readonly CellRun[]): string {
  const rows = runs.map((run) => {
    const result = run.result
    if (result === null) return [cellName(run.cell), `failed: ${run.failure ?? ''}`, '', '', '', '', '', '', '', '', '']
    const sum = (pick: (flow: HarnessFlow) => number): number => result.flows.reduce((total, flow) => total + pick(flow), 0)
    return [
      cellName(run.cell),
      fixed(result.goodputRatio, 3),
      fixed(result.linkUtilization, 3),
      `${fixed(result.queueDelayP50Ms, 1)} / ${fixed(result.queueDelayP99Ms, 1)}`,
      String(result.queueDrops),
      `${sum((flow) => flow.packetsLost)} / ${sum((flow) => flow.spuriousLosses)}`,
      `${sum((flow) => flow.probeTimeouts)} / ${sum((flow) => flow.persistentCongestion)} / ${sum((flow) => flow.rttDrains)}`,
      result.flows.map((flow) => (flow.congestionWindow / 1000).toFixed(0)).join(' / '),
      result.flows.map((flow) => (flow.smoothedRttUs / 1000).toFixed(1)).join(' / '),
      fixed(result.cpuSeconds, 2),
      result.timeout ? 'step cap' : '',
    ]
  })
  return table(
    ['cell', 'goodput ratio', 'link use', 'queue p50 / p99, ms', 'queue drops', 'lost / spurious', 'PTOs / persistent / RTT drains', 'cwnd, kB', 'smoothed RTT, ms', 'CPU, s', 'note'],
    rows,
    'lrrrrrrrrrl',
  )
}

type HarnessFlow = NonNullable<CellRun['result']>['flows'][number]

// ---- the end-to-end part ----

/** A figure marked ✗ under the grid's target for it (the issue's goodput staircase, Jain ≥ 0.9); 1 Mbit/s has none. */
function endToEndJudged(value: number | null | undefined, limit: number | undefined): string {
  const text = fixed(value, 3)
  return limit !== undefined && (typeof value !== 'number' || value < limit) ? `${text} ✗` : text
}

function findEndToEnd(runs: readonly EndToEndRun[], kind: Cell['kind'], engine: EngineName, mbps: number, lossPercent: number): EndToEndRun | undefined {
  return runs.find(({ cell }) => cell.kind === kind && cell.engine === engine && cell.mbps === mbps && cell.lossPercent === lossPercent)
}

/** A table of one figure of the single-flow cells: a row per bottleneck and engine, a column per loss. */
function singleFlowTable(runs: readonly EndToEndRun[], figure: (run: EndToEndRun) => string): string {
  const single = runs.filter(({ cell }) => cell.kind === 'single')
  const losses = gridLossPercents.filter((loss) => single.some(({ cell }) => cell.lossPercent === loss))
  // A row per bottleneck (every end-to-end cell has the same RTT) and engine that ran.
  const rows = gridMbps.flatMap((mbps) =>
    engines.flatMap((engine) => {
      const row = single.filter(({ cell }) => cell.engine === engine && cell.mbps === mbps)
      if (row.length === 0) return []
      const cells = losses.map((loss) => {
        const run = findEndToEnd(row, 'single', engine, mbps, loss)
        return run === undefined ? '' : figure(run)
      })
      return [[`${mbps} Mbit/s, ${row[0]?.cell.rttMs ?? '?'} ms`, engine, ...cells]]
    }),
  )
  return table(['bottleneck, RTT', 'engine', ...losses.map((loss) => `${loss} %`)], rows, `ll${'r'.repeat(losses.length)}`)
}

export function renderEndToEnd(record: EndToEndRecord): string {
  const { runs, timing } = record
  const out: string[] = []
  out.push(`## volley congestion control end to end (real Server and Clients, the engine's network simulator), ${record.date.slice(0, 16).replace('T', ' ')} UTC${record.quick ? ' (quick)' : ''}`)
  out.push('')
  out.push(`commit ${record.commit ?? '?'} · delivery sources ${record.deliverySource} · addon ${record.addon?.sourceHash ?? '?'} · ${record.cpuModel} · ${runs.length} cells in ${record.seconds.toFixed(1)} s, one at a time`)
  out.push('')
  if (runs.some(({ cell }) => cell.kind === 'single')) {
    out.push(`goodput ratio: goodput ÷ ((1 − loss) × bottleneck rate), one flow of ${endToEndMessageBytes / 1024} KiB reliable messages, measured from ${timing.warmupSeconds} s to ${timing.singleSeconds} s of its run (✗: under the grid's target)`)
    out.push('')
    out.push(singleFlowTable(runs, (run) => endToEndJudged(run.result?.goodputRatio, run.cell.mbps >= 10 ? goodputLimit(run.cell.lossPercent) : undefined)))
    out.push('')
    out.push('link share: goodput ÷ bottleneck rate (the simulator loses datagrams before its link, so this is the figure a full link holds at any loss)')
    out.push('')
    out.push(singleFlowTable(runs, (run) => fixed(run.result?.linkShare, 3)))
    out.push('')
  }
  const twoFlows = runs.filter(({ cell }) => cell.kind === 'fairness')
  if (twoFlows.length > 0) {
    out.push(`two flows from one server through its bottleneck, the second starting ${timing.secondStartMs / 1000} s after the first: Jain index from ${timing.settleSeconds} s after the second's start to ${timing.fairnessSeconds} s (✗: under 0.9)`)
    out.push('')
    const rows = twoFlows.map((run) => {
      const result = run.result
      return [
        `${run.cell.mbps} Mbit/s, ${run.cell.rttMs} ms, ${run.cell.lossPercent} %`,
        run.cell.engine,
        result === null ? `failed: ${run.failure ?? ''}` : endToEndJudged(result.fairness?.jain, 0.9),
        result === null ? '' : fairFrom(result.fairness?.secondsToFair),
        fixed(result?.linkShare, 3),
        result === null ? '' : result.flows.map((flow) => fixed(flow.goodputBps === null ? null : (flow.goodputBps * 8) / 1e6, 2)).join(' / '),
      ]
    })
    out.push(table(['bottleneck, RTT, loss', 'engine', 'Jain', 'per second', 'both ÷ rate', 'Mbit/s, flow 1 / 2'], rows, 'llrlrr'))
    out.push('')
    out.push('goodput per second of each flow, Mbit/s, from the first flow\'s start:')
    for (const run of twoFlows) {
      run.result?.flows.forEach((flow, index) => {
        // The seconds before the flow connected show as '·'.
        const series = flow.goodputMbpsBySecond.map((mbps, second) => (second + 1 <= flow.startMs / 1000 ? '·' : mbps.toFixed(1)))
        out.push(`- ${endToEndCellName(run.cell)}, flow ${index + 1} (from ${(flow.startMs / 1000).toFixed(2)} s): ${series.join(' ')}`)
      })
    }
    out.push('')
  }
  const { summary } = record
  const byEngine = (values: Record<EngineName, number | null>): string => engines.map((engine) => `${engine} ${fixed(values[engine], 3)}`).join(', ')
  out.push(`- worst goodput ratio at ≤ 10 % loss (target ≥ 0.85): ${byEngine(summary.worstGoodputRatioLoss10)}`)
  out.push(`- worst goodput ratio at 15 and 20 % loss (targets ≥ 0.75 and ≥ 0.5): ${byEngine(summary.worstGoodputRatioLoss15to20)}`)
  out.push(`- worst Jain index of two flows (target ≥ 0.9): ${byEngine(summary.worstJain)}`)
  out.push(`- largest difference between the engines' goodput ratios, one flow: ${fixed(summary.largestEngineGap, 3)}`)
  const odd = runs.flatMap((run) => endToEndOddities(run, timing).map((what) => `- ${endToEndCellName(run.cell)}: ${what}`))
  if (odd.length > 0) out.push('', 'odd:', ...odd)
  out.push('', 'notes:', ...record.notes.map((note) => `- ${note}`))
  out.push('')
  out.push(renderEndToEndDetails(runs))
  return out.join('\n')
}

/** Every end-to-end cell's counters: the server's simulator, its senders' link statistics, and the CPU each side took. */
function renderEndToEndDetails(runs: readonly EndToEndRun[]): string {
  const rows = runs.map((run) => {
    const result = run.result
    if (result === null) return [endToEndCellName(run.cell), `failed: ${run.failure ?? ''}`, '', '', '', '', '', '', '', '', '']
    const senders = result.flows.map((flow) => flow.sender)
    // Two flows' figures are separated by '; ' (a figure may be a pair of its own).
    const each = (pick: (sender: NonNullable<(typeof senders)[number]>) => string): string => senders.map((sender) => (sender === null ? '–' : pick(sender))).join('; ')
    const simulator = result.serverSimulator
    return [
      endToEndCellName(run.cell),
      fixed(result.goodputBps === null ? null : (result.goodputBps * 8) / 1e6, 2),
      fixed(result.goodputRatio, 3),
      fixed(result.linkShare, 3),
      simulator === null ? '–' : `${simulator.lost} / ${simulator.overflowed}`,
      each((sender) => `${sender.lossPercent.toFixed(1)} / ${sender.resends}`),
      each((sender) => `${sender.smoothedRttMs.toFixed(1)} / ${sender.minRttMs.toFixed(1)}`),
      each((sender) => (sender.windowBytes / 1000).toFixed(0)),
      each((sender) => (sender.pathBps / 1e6).toFixed(1)),
      `${result.cpuSeconds.server.toFixed(1)} / ${result.cpuSeconds.clients.toFixed(1)}`,
      result.wallSeconds.toFixed(1),
    ]
  })
  return table(
    ['cell', 'goodput, Mbit/s', 'goodput ratio', 'link share', 'server simulator lost / overflowed', 'loss % / resends', 'smoothed / min RTT, ms', 'cwnd, kB', 'path estimate, Mbit/s', 'CPU server / clients, s', 'wall, s'],
    rows,
    'lrrrrrrrrrr',
  )
}

// ---- the plot ----

const width = 1000
const plot = { left: 80, right: 700, top: 78, bottom: 438 }
const maxLoss = 30
const maxRatio = 1.1
const colours: Record<number, string> = { 1: '#2ca02c', 10: '#1f77b4', 100: '#d62728' }
const dashes: Record<number, string> = { 2: '', 20: '8 4', 200: '2 3' }

const x = (lossPercent: number): number => plot.left + (lossPercent / maxLoss) * (plot.right - plot.left)
const y = (ratio: number): number => plot.bottom - (Math.min(ratio, maxRatio) / maxRatio) * (plot.bottom - plot.top)
const px = (value: number): string => value.toFixed(1)

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function text(atX: number, atY: number, content: string, attributes = ''): string {
  return `<text x="${px(atX)}" y="${px(atY)}"${attributes === '' ? '' : ` ${attributes}`}>${escape(content)}</text>`
}

function line(x1: number, y1: number, x2: number, y2: number, attributes: string): string {
  return `<line x1="${px(x1)}" y1="${px(y1)}" x2="${px(x2)}" y2="${px(y2)}" ${attributes}/>`
}

function axes(): string[] {
  const parts: string[] = []
  for (let tenth = 0; tenth <= maxRatio * 10 + 1e-9; tenth++) {
    const ratio = tenth / 10
    parts.push(line(plot.left, y(ratio), plot.right, y(ratio), `stroke="${tenth === 10 ? '#bbb' : '#eee'}"`))
    parts.push(text(plot.left - 8, y(ratio) + 4, ratio.toFixed(1), 'text-anchor="end"'))
  }
  for (const loss of gridLossPercents) {
    parts.push(line(x(loss), plot.bottom, x(loss), plot.bottom + 5, 'stroke="#333"'))
    parts.push(text(x(loss), plot.bottom + 19, String(loss), 'text-anchor="middle"'))
  }
  parts.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="none" stroke="#333"/>`)
  parts.push(text((plot.left + plot.right) / 2, plot.bottom + 40, 'random loss each way, %', 'text-anchor="middle"'))
  const middle = (plot.top + plot.bottom) / 2
  parts.push(text(plot.left - 50, middle, 'goodput ÷ ((1 − loss) × bottleneck rate)', `text-anchor="middle" transform="rotate(-90 ${plot.left - 50} ${px(middle)})"`))
  return parts
}

/** The goodput targets (10 and 100 Mbit/s) as a staircase, shaded below: a point in the shade misses its target. */
function staircase(): string[] {
  const steps = gridLossPercents.filter((loss) => goodputLimit(loss) !== undefined)
  let outline = ''
  let previous = 0
  for (const loss of steps) {
    const limit = goodputLimit(loss) ?? 0
    outline += outline === '' ? `M ${px(x(0))} ${px(y(limit))}` : ` H ${px(x(previous))} V ${px(y(limit))}`
    previous = loss
  }
  outline += ` H ${px(x(previous))}`
  return [
    `<path d="${outline} V ${px(y(0))} H ${px(x(0))} Z" fill="#d62728" fill-opacity="0.07" stroke="none"/>`,
    `<path d="${outline}" fill="none" stroke="#b22" stroke-width="1.2" stroke-dasharray="5 3"/>`,
  ]
}

function goodputLines(runs: readonly CellRun[]): string[] {
  const parts: string[] = []
  for (const { mbps, rttMs } of paths(runs)) {
    const points = gridLossPercents.flatMap((loss) => {
      const run = find(runs, 'single', mbps, rttMs, loss)
      const ratio = run?.result?.goodputRatio
      return typeof ratio === 'number' ? [{ loss, ratio, missed: checkOf(run, 'goodput')?.met === false }] : []
    })
    if (points.length === 0) continue
    const colour = colours[mbps] ?? '#555'
    const dash = dashes[rttMs] ?? ''
    const path = points.map((point, i) => `${i === 0 ? 'M' : 'L'} ${px(x(point.loss))} ${px(y(point.ratio))}`).join(' ')
    parts.push(`<path d="${path}" fill="none" stroke="${colour}" stroke-width="2"${dash === '' ? '' : ` stroke-dasharray="${dash}"`}><title>${escape(`${mbps} Mbit/s, ${rttMs} ms`)}</title></path>`)
    for (const point of points) {
      const fill = point.missed ? '#fff' : colour
      parts.push(`<circle cx="${px(x(point.loss))}" cy="${px(y(point.ratio))}" r="3.5" fill="${fill}" stroke="${colour}" stroke-width="1.5"><title>${escape(`${mbps} Mbit/s, ${rttMs} ms, ${point.loss} %: ${point.ratio.toFixed(3)}`)}</title></circle>`)
    }
  }
  return parts
}

function legend(): string[] {
  const left = plot.right + 28
  const parts: string[] = []
  let row = plot.top + 8
  const swatch = (attributes: string, label: string): void => {
    parts.push(line(left, row, left + 34, row, attributes))
    parts.push(text(left + 42, row + 4, label))
    row += 20
  }
  parts.push(text(left, row, 'bottleneck', 'font-weight="bold"'))
  row += 18
  for (const mbps of gridMbps) swatch(`stroke="${colours[mbps]}" stroke-width="2"`, `${mbps} Mbit/s`)
  row += 8
  parts.push(text(left, row, 'round-trip time', 'font-weight="bold"'))
  row += 18
  for (const rttMs of gridRttsMs) swatch(`stroke="#444" stroke-width="2"${dashes[rttMs] === '' ? '' : ` stroke-dasharray="${dashes[rttMs]}"`}`, `${rttMs} ms`)
  row += 8
  parts.push(text(left, row, 'targets (10, 100 Mbit/s)', 'font-weight="bold"'))
  row += 12
  parts.push(`<rect x="${left}" y="${row}" width="34" height="14" fill="#d62728" fill-opacity="0.07" stroke="#b22" stroke-dasharray="5 3"/>`)
  parts.push(text(left + 42, row + 11, 'shaded: under target'))
  row += 30
  parts.push(`<circle cx="${left + 17}" cy="${row - 4}" r="3.5" fill="#fff" stroke="#444" stroke-width="1.5"/>`)
  parts.push(text(left + 42, row, 'hollow: target not met'))
  row += 20
  parts.push(text(left, row, 'no target: 1 Mbit/s, 30 %', 'fill="#666"'))
  return parts
}

const tableTop = 560
const rowHeight = 24
const columns = [
  { title: 'bottleneck, RTT', x: 80, width: 150 },
  { title: 'queue p50 / p99, ms', x: 230, width: 160 },
  { title: 'p99 target, ms', x: 390, width: 120 },
  { title: 'Jain, two flows, 0 % loss', x: 510, width: 220 },
  { title: 'Jain, two flows, 1 % loss', x: 730, width: 220 },
]
const metFill = (check: Check | undefined): string => (check === undefined ? '#f6f6f6' : check.met ? '#dff0d8' : '#f8d7da')

function fairnessCell(run: CellRun | undefined): { text: string; fill: string } {
  if (run === undefined) return { text: 'not run', fill: '#fff' }
  const fairness = run.result?.fairness
  return {
    text: fairness === undefined ? 'failed' : `${fixed(fairness.jain, 3)}, ${fairFrom(fairness.secondsToFair)}`,
    fill: metFill(checkOf(run, 'fairness')),
  }
}

function queueAndFairnessTable(runs: readonly CellRun[]): string[] {
  const parts: string[] = [
    text(plot.left, tableTop - 34, 'Queueing delay, one flow, 0 % loss (target p99 ≤ RTT + 10 ms) · two flows: Jain index, last 10 s (target ≥ 0.9)', 'font-size="14" font-weight="bold"'),
  ]
  for (const column of columns) parts.push(text(column.x + 6, tableTop - 8, column.title, 'font-weight="bold"'))
  paths(runs).forEach(({ mbps, rttMs }, index) => {
    const top = tableTop + index * rowHeight
    const lossless = find(runs, 'single', mbps, rttMs, 0)
    const cells = [
      { text: `${mbps} Mbit/s, ${rttMs} ms`, fill: '#fff' },
      { text: lossless === undefined ? 'not run' : `${fixed(lossless.result?.queueDelayP50Ms, 1)} / ${fixed(lossless.result?.queueDelayP99Ms, 1)}`, fill: metFill(checkOf(lossless, 'queue')) },
      { text: String(rttMs + 10), fill: '#fff' },
      fairnessCell(find(runs, 'fairness', mbps, rttMs, 0)),
      fairnessCell(find(runs, 'fairness', mbps, rttMs, 1)),
    ]
    cells.forEach((cell, column) => {
      const at = columns[column]
      if (at === undefined) return
      parts.push(`<rect x="${at.x}" y="${top}" width="${at.width}" height="${rowHeight}" fill="${cell.fill}" stroke="#ccc"/>`)
      parts.push(text(at.x + 6, top + 16, cell.text))
    })
  })
  return parts
}

/** The run's timing as the harness reported it: one flow's measured window, and when the second flow started. */
function timing(runs: readonly CellRun[]): { single: string; fairness: string } {
  const single = runs.find(({ cell, result }) => cell.kind === 'single' && result !== null)?.result?.inputs
  const fairness = runs.find(({ cell, result }) => cell.kind === 'fairness' && result !== null)?.result?.inputs
  return {
    single: single === undefined ? '' : `One flow: measured from ${single.warmup} s to ${single.seconds} s`,
    fairness: fairness === undefined ? '' : `two flows: the second starts at ${(fairness.secondStartMs ?? 0) / 1000} s, both run to ${fairness.seconds} s, Jain index over the last 10 s`,
  }
}

export function renderSvg(runs: readonly CellRun[], label: RunLabel): string {
  const rows = paths(runs).length
  const height = tableTop + rows * rowHeight + 78
  const { single, fairness } = timing(runs)
  const notes = [
    'Fake-clock simulation of native/protocol/delivery (bench/native/congestion-grid.cc): a bottleneck towards the receiver with a FIFO tail-drop queue of',
    'max(50 ms, 1 BDP); random loss each way (forward: after the bottleneck); senders never application-limited (64 KiB reliable messages, 8 KiB at 1 Mbit/s).',
    [single, fairness].filter((part) => part !== '').join('; '),
  ]
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13" fill="#222">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(plot.left, 28, 'Delivery-layer congestion control: goodput against random loss, one flow', 'font-size="16" font-weight="bold"'),
    text(plot.left, 50, `${label.date.slice(0, 16).replace('T', ' ')} UTC · commit ${label.commit ?? '?'} · delivery sources ${label.deliverySource}${label.quick ? ' · quick run' : ''}`, 'fill="#555"'),
    ...staircase(),
    ...axes(),
    ...goodputLines(runs),
    ...legend(),
    ...queueAndFairnessTable(runs),
    ...notes.map((note, i) => text(plot.left, height - 50 + i * 16, note, 'font-size="11" fill="#555"')),
    '</svg>',
  ]
  return `${parts.join('\n')}\n`
}
