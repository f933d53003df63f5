// The congestion benchmark's end-to-end part (bench/congestion.ts --end-to-end): the grid's measurement again,
// in real time, through a real Server and Client(s) on loopback with the engine's network simulator on every
// socket (bench/congestion/end-to-end-side.ts), on each engine. Its cells, the sides' arguments and reports,
// and what the runner makes of them: goodput per window, per second and per flow, and Jain's index.
import type { NetworkSimulatorOptions } from '../../src/index.ts'
import { type Cell, gridLossPercents, fairnessLossPercents } from './congestion-cells.ts'

export type EngineName = 'native' | 'fallback'
export const engines: readonly EngineName[] = ['native', 'fallback']

/** A grid cell run on one engine. */
export interface EndToEndCell extends Cell {
  engine: EngineName
}

/** How long the cells run, real seconds: one flow's measured window, and the two flows' run and settled window. */
export interface EndToEndTiming {
  /** Goodput is counted per bin of this many ms at the receivers. */
  binMs: number
  /** One flow: measured from here to singleSeconds after its start. */
  warmupSeconds: number
  singleSeconds: number
  /** Two flows: the second starts this long after the first; both run until fairnessSeconds after it. */
  secondStartMs: number
  fairnessSeconds: number
  /** Jain's index over the time from this long after the second flow's start to the end. */
  settleSeconds: number
}

export const endToEndTiming: EndToEndTiming = { binMs: 100, warmupSeconds: 2, singleSeconds: 7, secondStartMs: 2000, fairnessSeconds: 20, settleSeconds: 10 }
/** A smoke run's: the two flows' settled window shrinks to 2 s, as the grid's quick run does. */
export const quickEndToEndTiming: EndToEndTiming = { ...endToEndTiming, singleSeconds: 5, secondStartMs: 1000, fairnessSeconds: 12 }

/** The RTT of every cell, ms; the bottleneck's queue holds this many ms of its rate. */
export const endToEndRttMs = 20
export const endToEndQueueMs = 50
export const endToEndMessageBytes = 64 * 1024

/**
 * The end-to-end cells, each on the native engine and then on the fallback (interleaved, so that a change in
 * the machine's load falls on both): one flow at 10 and 100 Mbit/s over every loss, two flows at 10 Mbit/s.
 */
export function endToEndCells(quick: boolean): EndToEndCell[] {
  const cells: Cell[] = quick
    ? [...[0, 10, 20].map((lossPercent): Cell => ({ kind: 'single', mbps: 10, rttMs: endToEndRttMs, lossPercent })), { kind: 'fairness', mbps: 10, rttMs: endToEndRttMs, lossPercent: 0 }]
    : [
        ...[10, 100].flatMap((mbps) => gridLossPercents.map((lossPercent): Cell => ({ kind: 'single', mbps, rttMs: endToEndRttMs, lossPercent }))),
        ...fairnessLossPercents.map((lossPercent): Cell => ({ kind: 'fairness', mbps: 10, rttMs: endToEndRttMs, lossPercent })),
      ]
  return cells.flatMap((cell) => engines.map((engine) => ({ ...cell, engine })))
}

export function endToEndCellName(cell: EndToEndCell): string {
  return `${cell.mbps} Mbit/s, ${cell.rttMs} ms, ${cell.lossPercent} %${cell.kind === 'fairness' ? ', 2 flows' : ''}, ${cell.engine}`
}

const rateBytesPerSecond = (mbps: number): number => (mbps * 1e6) / 8

/**
 * The simulated network of one socket: the cell's random loss, half its RTT, and its bottleneck with a queue of
 * endToEndQueueMs (10 Mbit/s: 1.25e6 B/s, 62,500 bytes). Every socket gets the same conditions, each its own
 * link and seed: the server's carries the data (both flows' in a two-flow cell), the clients' their ACKs.
 */
export function simulatorOptions(path: { mbps: number; rttMs: number; lossPercent: number }, seed: number): NetworkSimulatorOptions {
  const rate = rateBytesPerSecond(path.mbps)
  return { loss: path.lossPercent / 100, latencyMs: path.rttMs / 2, bandwidthBytesPerSec: rate, queueBytes: Math.round((rate * endToEndQueueMs) / 1000), seed }
}

/** The sides' command lines: the path, then the server's or the clients' own. */
export function pathArguments(cell: EndToEndCell): string[] {
  return ['--mbps', String(cell.mbps), '--rtt-ms', String(cell.rttMs), '--loss', String(cell.lossPercent)]
}

export function clientsArguments(cell: EndToEndCell, timing: EndToEndTiming): string[] {
  const run = cell.kind === 'fairness' ? ['--flows', '2', '--second-start-ms', String(timing.secondStartMs), '--seconds', String(timing.fairnessSeconds)] : ['--flows', '1', '--seconds', String(timing.singleSeconds)]
  return [...pathArguments(cell), '--bin-ms', String(timing.binMs), ...run]
}

/** What the simulator of one socket did (SimulatedNetworkStats without its seed). */
export interface SimulatorCounts {
  lost: number
  duplicated: number
  reordered: number
  overflowed: number
}

/** The server's view of one flow: its peer's link statistics as the run ends. */
export interface SenderReport {
  clientId: number
  packetsOut: number
  lossPercent: number
  resends: number
  smoothedRttMs: number
  minRttMs: number
  windowBytes: number
  pathBps: number
}

/** The server's 'result' details. */
export interface ServerReport {
  engine: EngineName
  messagesSent: number
  cpuSeconds: number
  simulator: SimulatorCounts | null
  peers: SenderReport[]
}

/** One client's: when it connected (ms from the first client's connection), message bytes per bin from then, its drops. */
export interface ReceiverReport {
  startMs: number
  bytesByBin: number[]
  drops: { replayed: number; tooOld: number; receiveBufferFull: number }
  simulator: SimulatorCounts | null
}

/** The clients' 'result' details. */
export interface ClientsReport {
  engine: EngineName
  binMs: number
  cpuSeconds: number
  flows: ReceiverReport[]
}

/** One flow's figures: goodput over the measured window, per second from the first flow's start, and its sender's state. */
export interface EndToEndFlow {
  startMs: number
  goodputBps: number | null
  goodputMbpsBySecond: number[]
  sender: SenderReport | null
  receiver: { drops: ReceiverReport['drops']; simulator: SimulatorCounts | null }
}

export interface EndToEndResult {
  /** One flow: over [warm-up, end); two flows: both flows over the settled window. */
  goodputBps: number | null
  /** goodput ÷ ((1 − loss) × rate): the grid's figure. */
  goodputRatio: number | null
  /** goodput ÷ rate: the simulator drops before its link, so up to 1 − overhead at any loss. */
  linkShare: number | null
  flows: EndToEndFlow[]
  fairness?: { jain: number | null; jainBySecond: (number | null)[]; secondsToFair: number | null }
  serverSimulator: SimulatorCounts | null
  cpuSeconds: { server: number; clients: number }
  wallSeconds: number
}

export interface EndToEndRun {
  cell: EndToEndCell
  result: EndToEndResult | null
  failure: string | null
}

/** Jain's fairness index: 1 when the shares are equal, 1/n when one takes all; null when none got any. */
export function jain(shares: readonly number[]): number | null {
  const sum = shares.reduce((total, share) => total + share, 0)
  const squares = shares.reduce((total, share) => total + share * share, 0)
  return squares > 0 ? (sum * sum) / (shares.length * squares) : null
}

/** The bytes a flow delivered over [fromMs, toMs) of the run's clock, both on bin boundaries. */
function bytesBetween(flow: ReceiverReport, binMs: number, fromMs: number, toMs: number): number {
  let bytes = 0
  for (let bin = fromMs / binMs; bin < toMs / binMs; bin++) bytes += flow.bytesByBin[bin] ?? 0
  return bytes
}

/** The runner's figures of one cell from the two sides' reports. */
export function analyse(cell: EndToEndCell, timing: EndToEndTiming, server: ServerReport, clients: ClientsReport, wallSeconds: number): EndToEndResult {
  const { binMs } = clients
  // Every window starts and ends on a bin boundary, so that its bytes and its length cover the same time.
  const toBin = (ms: number): number => Math.round(ms / binMs) * binMs
  const rate = rateBytesPerSecond(cell.mbps)
  const lastStartMs = toBin(Math.max(...clients.flows.map((flow) => flow.startMs)))
  const endMs = lastStartMs + (cell.kind === 'fairness' ? timing.fairnessSeconds : timing.singleSeconds) * 1000
  const measuredFromMs = cell.kind === 'fairness' ? lastStartMs + timing.settleSeconds * 1000 : timing.warmupSeconds * 1000
  const perSecond = (flow: ReceiverReport): number[] => Array.from({ length: Math.floor(endMs / 1000) }, (_, second) => (bytesBetween(flow, binMs, second * 1000, (second + 1) * 1000) * 8) / 1e6)
  const flows = clients.flows.map((flow, index): EndToEndFlow => {
    const from = Math.max(measuredFromMs, toBin(flow.startMs))
    return {
      startMs: flow.startMs,
      goodputBps: from < endMs ? bytesBetween(flow, binMs, from, endMs) / ((endMs - from) / 1000) : null,
      goodputMbpsBySecond: perSecond(flow),
      // Clients connect in order, with client ids 1, 2...
      sender: server.peers.find((peer) => peer.clientId === index + 1) ?? null,
      receiver: { drops: flow.drops, simulator: flow.simulator },
    }
  })
  const settled = clients.flows.map((flow) => bytesBetween(flow, binMs, measuredFromMs, endMs))
  const goodputBps = measuredFromMs < endMs ? settled.reduce((total, bytes) => total + bytes, 0) / ((endMs - measuredFromMs) / 1000) : null
  const result: EndToEndResult = {
    goodputBps,
    goodputRatio: goodputBps === null ? null : goodputBps / ((1 - cell.lossPercent / 100) * rate),
    linkShare: goodputBps === null ? null : goodputBps / rate,
    flows,
    serverSimulator: server.simulator,
    cpuSeconds: { server: server.cpuSeconds, clients: clients.cpuSeconds },
    wallSeconds,
  }
  if (cell.kind === 'fairness') {
    // Per second from the second flow's start, as the grid's harness takes it.
    const seconds = Math.floor((endMs - lastStartMs) / 1000)
    const jainBySecond = Array.from({ length: seconds }, (_, second) => jain(clients.flows.map((flow) => bytesBetween(flow, binMs, lastStartMs + second * 1000, lastStartMs + (second + 1) * 1000))))
    let secondsToFair: number | null = null
    for (let second = jainBySecond.length; second > 0 && (jainBySecond[second - 1] ?? 0) >= 0.9; second--) secondsToFair = second - 1
    result.fairness = { jain: jain(settled), jainBySecond, secondsToFair }
  }
  return result
}

/**
 * What looks wrong in a cell: a failure, stalls (a measured second in which a flow delivered under a tenth of its
 * mean), and one flow's ramp reaching into its measured window (a measured second under ¾ of the mean before any
 * at it or above).
 */
export function endToEndOddities(run: EndToEndRun, timing: EndToEndTiming): string[] {
  if (run.result === null) return [`failed: ${run.failure ?? 'no result'}`]
  const found: string[] = []
  const flows = run.result.flows
  flows.forEach((flow, index) => {
    const who = flows.length > 1 ? `flow ${index + 1}: ` : ''
    const firstSecond = Math.ceil(Math.max(flow.startMs / 1000, run.cell.kind === 'single' ? timing.warmupSeconds : 0))
    const seconds = flow.goodputMbpsBySecond.slice(firstSecond)
    const mean = seconds.reduce((sum, mbps) => sum + mbps, 0) / Math.max(1, seconds.length)
    const stalled = seconds.flatMap((mbps, i) => (mbps < mean / 10 ? [firstSecond + i] : []))
    if (mean > 0 && stalled.length > 0) found.push(`${who}stalled (under a tenth of its mean goodput) in second${stalled.length > 1 ? 's' : ''} ${stalled.join(', ')}`)
    const rampedAt = seconds.findIndex((mbps) => mbps >= (mean * 3) / 4)
    if (run.cell.kind === 'single' && rampedAt > 0) found.push(`still ramping up in the measured window: under ¾ of its mean goodput until second ${firstSecond + rampedAt} (${flow.goodputMbpsBySecond.map((mbps) => mbps.toFixed(1)).join(' ')} Mbit/s)`)
    if (flow.receiver.drops.receiveBufferFull > 0) found.push(`${who}the client's receive buffer overflowed ${flow.receiver.drops.receiveBufferFull} times`)
  })
  return found
}

/** The worst figures of an end-to-end run, by engine, and how far the engines part. */
export interface EndToEndSummary {
  worstGoodputRatioLoss10: Record<EngineName, number | null>
  worstGoodputRatioLoss15to20: Record<EngineName, number | null>
  worstJain: Record<EngineName, number | null>
  /** The largest |native − fallback| goodput ratio of a single-flow cell. */
  largestEngineGap: number | null
}

export function summarizeEndToEnd(runs: readonly EndToEndRun[]): EndToEndSummary {
  const lowest = (values: (number | null | undefined)[]): number | null => {
    const known = values.filter((value): value is number => typeof value === 'number')
    return known.length === 0 ? null : Math.min(...known)
  }
  const byEngine = (pick: (run: EndToEndRun) => number | null | undefined): Record<EngineName, number | null> => ({
    native: lowest(runs.filter((run) => run.cell.engine === 'native').map(pick)),
    fallback: lowest(runs.filter((run) => run.cell.engine === 'fallback').map(pick)),
  })
  const singleRatio = (minLoss: number, maxLoss: number) => (run: EndToEndRun) =>
    run.cell.kind === 'single' && run.cell.lossPercent >= minLoss && run.cell.lossPercent <= maxLoss ? run.result?.goodputRatio : null
  const gaps = runs.flatMap((run) => {
    if (run.cell.kind !== 'single' || run.cell.engine !== 'native') return []
    const twin = runs.find(({ cell }) => cell.engine === 'fallback' && cell.kind === 'single' && cell.mbps === run.cell.mbps && cell.lossPercent === run.cell.lossPercent)
    const native = run.result?.goodputRatio
    const fallback = twin?.result?.goodputRatio
    return typeof native === 'number' && typeof fallback === 'number' ? [Math.abs(native - fallback)] : []
  })
  return {
    worstGoodputRatioLoss10: byEngine(singleRatio(0, 10)),
    worstGoodputRatioLoss15to20: byEngine(singleRatio(15, 20)),
    worstJain: byEngine((run) => run.result?.fairness?.jain),
    largestEngineGap: gaps.length === 0 ? null : Math.max(...gaps),
  }
}

/** What the tables say about the simulator, and the record keeps. */
export const endToEndNotes = [
  "the engine's simulator drops at random before its bandwidth queue (native/sockets/network_simulator.cc, Submit), not after the link as the grid does: a lost datagram takes no link time, so at loss p the link can carry all it is offered and goodput ÷ ((1 − p) × rate) can reach 1/(1 − p) of its lossless value; goodput ÷ rate (link share) is the figure that stays comparable across losses",
  'the link counts 28 bytes of IP and UDP headers per datagram: with netcode\'s and the delivery layer\'s framing, a fragment of 1,100 message bytes takes about 1,170 bytes of the link, so a full link is a link share of about 0.94, not 1',
  'every socket (the server and each client) has the same conditions and a link of its own: the data crosses the server’s, the ACKs the clients’',
]

/** An end-to-end run as latest-congestion.json keeps it, under `endToEnd`. */
export interface EndToEndRecord {
  date: string
  commit?: string
  deliverySource: string
  /** The addon the native cells loaded (the fallback runs the WebAssembly build of the same sources). */
  addon: { path: string; sourceHash: string } | null
  cpuModel: string
  quick: boolean
  /** Every cell, no smoke run, none failed. */
  complete: boolean
  timing: EndToEndTiming
  notes: string[]
  seconds: number
  summary: EndToEndSummary
  failures: string[]
  runs: EndToEndRun[]
}
