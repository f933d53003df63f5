// The congestion benchmark's grid (bench/congestion.ts): its cells, the harness's arguments and output for
// each (bench/native/congestion-grid.cc), and the targets judged on them.

/** One path: a single flow, or two flows sharing the bottleneck (the second starting later). */
export interface Cell {
  kind: 'single' | 'fairness'
  mbps: number
  rttMs: number
  lossPercent: number
}

export const gridMbps = [1, 10, 100] as const
export const gridRttsMs = [2, 20, 200] as const
export const gridLossPercents = [0, 1, 5, 10, 15, 20, 30] as const
export const fairnessLossPercents = [0, 1] as const

/** The full grid: every loss × bottleneck × RTT with one flow, then the two-flow runs at 0 and 1 % loss. */
export function fullGrid(): Cell[] {
  const cells: Cell[] = []
  for (const mbps of gridMbps) for (const rttMs of gridRttsMs) for (const lossPercent of gridLossPercents) cells.push({ kind: 'single', mbps, rttMs, lossPercent })
  for (const lossPercent of fairnessLossPercents) for (const mbps of gridMbps) for (const rttMs of gridRttsMs) cells.push({ kind: 'fairness', mbps, rttMs, lossPercent })
  return cells
}

/** A smoke run's grid: 10 Mbit/s, 20 ms, three losses and one fairness cell. */
export function quickGrid(): Cell[] {
  return [
    ...[0, 10, 20].map((lossPercent): Cell => ({ kind: 'single', mbps: 10, rttMs: 20, lossPercent })),
    { kind: 'fairness', mbps: 10, rttMs: 20, lossPercent: 0 },
  ]
}

export function cellName(cell: Cell): string {
  return `${cell.mbps} Mbit/s, ${cell.rttMs} ms, ${cell.lossPercent} %${cell.kind === 'fairness' ? ', 2 flows' : ''}`
}

/**
 * The size of the messages the senders queue: 64 KiB, or less where a message would take more than 100 ms of
 * the bottleneck (1 Mbit/s: 8 KiB). Goodput counts a message when it is delivered whole, so at 1 Mbit/s 64 KiB
 * messages would count each second's goodput in lumps of half a second.
 */
export function messageBytes(mbps: number): number {
  const bytesIn100Ms = (mbps * 1e6) / 8 / 10
  let size = 64 * 1024
  while (size > 1024 && size > bytesIn100Ms) size /= 2
  return size
}

/** Run lengths a smoke run shortens (a full run takes the harness's defaults: 25 s, 5 s warm-up, the second flow at 2 s, 22 s). */
export const quickTiming = { seconds: 10, warmupSeconds: 3, fairnessSecondStartMs: 1000, fairnessSeconds: 13 } as const

export function harnessArguments(cell: Cell, quick: boolean): string[] {
  const args = ['--loss', String(cell.lossPercent / 100), '--mbps', String(cell.mbps), '--rtt-ms', String(cell.rttMs), '--message-bytes', String(messageBytes(cell.mbps))]
  if (cell.kind === 'fairness') args.push('--flows', '2')
  if (quick) {
    args.push('--warmup-s', String(quickTiming.warmupSeconds))
    if (cell.kind === 'fairness') args.push('--second-start-ms', String(quickTiming.fairnessSecondStartMs), '--seconds', String(quickTiming.fairnessSeconds))
    else args.push('--seconds', String(quickTiming.seconds))
  }
  return args
}

/** A sender's counters and its path's state at the end, and the goodput its receiver delivered. */
export interface FlowResult {
  startMs: number
  goodputBps: number | null
  goodputMbpsBySecond: (number | null)[]
  packetsOut: number
  packetsLost: number
  resends: number
  spuriousLosses: number
  probeTimeouts: number
  persistentCongestion: number
  rttDrains: number
  congestionWindow: number
  bandwidthBps: number | null
  pathMinRttUs: number
  smoothedRttUs: number
  ackPacketsSent: number
  ackRandomLosses: number
  receiverOverBudget: number
  receiverDuplicatePackets: number
}

/** What the harness prints for one cell (NaN as null). */
export interface HarnessResult {
  inputs: { loss: number; mbps: number; rttMs: number; queueBytes: number; queueMs: number; flows: number; secondStartMs: number | null; seconds: number; warmup: number; seed: number; messageBytes: number; reassemblyBytes: number }
  goodputBps: number | null
  goodputRatio: number | null
  goodputRatioWhole: number | null
  linkUtilization: number | null
  queueDelayP50Ms: number | null
  queueDelayP99Ms: number | null
  packetsSent: number
  queueDrops: number
  randomLosses: number
  flows: FlowResult[]
  fairness?: { jain: number | null; jainBySecond: (number | null)[]; secondsToFair: number | null; goodputMbpsBySecond: (number | null)[][] }
  iterations: number
  timeout: boolean
  wallSeconds: number
  cpuSeconds: number
}

/** A target judged on one cell: met false too when the cell measured nothing (it failed or stopped at its step cap). */
export interface Check {
  what: 'goodput' | 'queue' | 'fairness'
  value: number | null
  limit: number
  kind: 'at least' | 'at most'
  met: boolean
}

export interface CellRun {
  cell: Cell
  args: string[]
  result: HarnessResult | null
  failure: string | null
  checks: Check[]
}

/** The goodput target at a loss, for 10 and 100 Mbit/s; undefined where there is none (30 %). */
export function goodputLimit(lossPercent: number): number | undefined {
  if (lossPercent <= 10) return 0.85
  if (lossPercent <= 15) return 0.75
  if (lossPercent <= 20) return 0.5
  return undefined
}

/** 1 Mbit/s is reported without targets. */
export function hasTargets(cell: Cell): boolean {
  return cell.mbps >= 10
}

export function judge(cell: Cell, result: HarnessResult | null): Check[] {
  if (!hasTargets(cell)) return []
  const measured = result !== null && !result.timeout
  const check = (what: Check['what'], value: number | null | undefined, limit: number, kind: Check['kind']): Check => {
    const known = measured && typeof value === 'number' ? value : null
    return { what, value: known, limit, kind, met: known !== null && (kind === 'at least' ? known >= limit : known <= limit) }
  }
  if (cell.kind === 'fairness') return [check('fairness', result?.fairness?.jain, 0.9, 'at least')]
  const checks: Check[] = []
  const limit = goodputLimit(cell.lossPercent)
  if (limit !== undefined) checks.push(check('goodput', result?.goodputRatio, limit, 'at least'))
  if (cell.lossPercent === 0) checks.push(check('queue', result?.queueDelayP99Ms, cell.rttMs + 10, 'at most'))
  return checks
}

/** A target over the grid: its worst cell, and whether every cell met it (null: no cell has it). */
export interface GridTarget {
  what: string
  value: number
  target: string
  met: boolean | null
}

export interface GridSummary {
  worstGoodputRatioLoss10: number
  worstGoodputRatioLoss15: number
  worstGoodputRatioLoss20: number
  worstQueueP99OverRttMs: number
  worstJain: number
  cellsWithTargets: number
  cellsNotMet: number
}

export function summarizeGrid(runs: readonly CellRun[]): { summary: GridSummary; targets: GridTarget[] } {
  /** The checks of one kind, on the cells whose loss passes `losses`, with the figure each contributes. */
  const checked = (what: Check['what'], losses: (loss: number) => boolean, figure: (check: Check, cell: Cell) => number | null = (check) => check.value) =>
    runs.flatMap((run) => (losses(run.cell.lossPercent) ? run.checks.filter((check) => check.what === what).map((check) => ({ met: check.met, figure: figure(check, run.cell) })) : []))
  type Checked = ReturnType<typeof checked>
  const figures = (entries: Checked): number[] => entries.flatMap(({ figure }) => (figure === null ? [] : [figure]))
  const lowest = (entries: Checked): number => (figures(entries).length === 0 ? Number.NaN : Math.min(...figures(entries)))
  const highest = (entries: Checked): number => (figures(entries).length === 0 ? Number.NaN : Math.max(...figures(entries)))
  const allMet = (entries: Checked): boolean | null => (entries.length === 0 ? null : entries.every(({ met }) => met))
  const goodput10 = checked('goodput', (loss) => loss <= 10)
  const goodput15 = checked('goodput', (loss) => loss === 15)
  const goodput20 = checked('goodput', (loss) => loss === 20)
  const queue = checked('queue', () => true, (check, cell) => (check.value === null ? null : check.value - cell.rttMs))
  const fairness = checked('fairness', () => true)
  const summary: GridSummary = {
    worstGoodputRatioLoss10: lowest(goodput10),
    worstGoodputRatioLoss15: lowest(goodput15),
    worstGoodputRatioLoss20: lowest(goodput20),
    worstQueueP99OverRttMs: highest(queue),
    worstJain: lowest(fairness),
    cellsWithTargets: runs.filter((run) => run.checks.length > 0).length,
    cellsNotMet: runs.filter((run) => run.checks.some((check) => !check.met)).length,
  }
  const scope = '10 and 100 Mbit/s, every RTT (worst cell)'
  const targets: GridTarget[] = [
    { what: `goodput ratio at ≤ 10 % loss, ${scope}`, value: summary.worstGoodputRatioLoss10, target: '≥ 0.85', met: allMet(goodput10) },
    { what: `goodput ratio at 15 % loss, ${scope}`, value: summary.worstGoodputRatioLoss15, target: '≥ 0.75', met: allMet(goodput15) },
    { what: `goodput ratio at 20 % loss, ${scope}`, value: summary.worstGoodputRatioLoss20, target: '≥ 0.5', met: allMet(goodput20) },
    { what: `queueing delay p99 − RTT at 0 % loss, ${scope}, ms`, value: summary.worstQueueP99OverRttMs, target: '≤ 10 ms', met: allMet(queue) },
    { what: `Jain's fairness index of two flows from 10 s after the second starts, 0 and 1 % loss, ${scope}`, value: summary.worstJain, target: '≥ 0.9', met: allMet(fairness) },
  ]
  return { summary, targets }
}

/**
 * What looks wrong in a cell beyond its targets: the step cap reached, data the receiver refused, and
 * stalls (a measured second in which a flow delivered under a tenth of its mean).
 */
export function oddities(run: CellRun): string[] {
  const result = run.result
  if (result === null) return [`failed: ${run.failure ?? 'no result'}`]
  const found: string[] = []
  if (result.timeout) found.push(`stopped at the harness's step cap after ${result.iterations.toLocaleString('en-US')} steps`)
  result.flows.forEach((flow, index) => {
    const who = result.flows.length > 1 ? `flow ${index + 1}: ` : ''
    if (flow.receiverOverBudget > 0) found.push(`${who}the receiver refused ${flow.receiverOverBudget} packets past its reassembly bound`)
    const measuredFrom = Math.max(0, Math.ceil(result.inputs.warmup - flow.startMs / 1000))
    const seconds = flow.goodputMbpsBySecond.slice(measuredFrom).map((mbps) => mbps ?? 0)
    const mean = seconds.reduce((sum, mbps) => sum + mbps, 0) / Math.max(1, seconds.length)
    const stalled = seconds.flatMap((mbps, i) => (mbps < mean / 10 ? [measuredFrom + i] : []))
    if (mean > 0 && stalled.length > 0) found.push(`${who}stalled (under a tenth of its mean goodput) in second${stalled.length > 1 ? 's' : ''} ${stalled.join(', ')} of its run`)
  })
  return found
}
