// Turns the runs into medians, ratios, target checks and notes (render.ts prints them).
import { receiverLabels, senderLabels } from './launch.ts'
import type { ReceiverId, SenderId } from './options.ts'
import { isRecord } from './protocol.ts'
import type { ReceiveRun } from './receive-case.ts'
import type { SendRun } from './send-case.ts'
import { maximum, median, minimum, ratio } from './statistics.ts'
import { type Disturbance, isDisturbed } from './system.ts'

export interface ReceiveSummary {
  size: number
  receiver: ReceiverId
  runs: number
  rate: number
  rateMin: number
  rateMax: number
  loss: number
  cpuPerPacketUs: number
  cpuShare: number
  blasterRate: number
  userPerPacketUs: number
  systemPerPacketUs: number
  /** Context switches of the receiving process (all threads) per 1000 datagrams. */
  contextSwitchesPerThousand: number
  /** Datagrams per recvmmsg call (volley: stats(); the C sink: its own count); NaN when unknown. */
  meanBatch: number
  /** Runs during which other processes used a noticeable share of a pinned core. */
  disturbedRuns: number
}

export interface SendSummary {
  sender: SenderId
  size: number
  runs: number
  rate: number
  rateMin: number
  rateMax: number
  cpuPerPacketUs: number
  cpuShare: number
  delivered: number
  disturbedRuns: number
}

export interface ReceiveRatios {
  size: number
  volleyCpuPerPacketVsDgram: number
  volleyRateVsC: number
  volleyRateVsDgram: number
  volleyRateVsUdx: number
  volleyCpuPerPacketVsC: number
}

export interface Target {
  what: string
  value: number
  limit: number
  kind: 'at most' | 'at least'
  met: boolean | null
}

export interface Summary {
  receive: ReceiveSummary[]
  receiveRatios: ReceiveRatios[]
  send: SendSummary[]
  sendRatios: { size: number; volleyRateVsDgram: number; volleyCpuPerPacketVsDgram: number } | null
  targets: Target[]
  notes: string[]
}

export function summarize(
  receiveRuns: readonly ReceiveRun[],
  sendRuns: readonly SendRun[],
  notes: readonly string[],
  gso: boolean,
): Summary {
  const receive: ReceiveSummary[] = []
  for (const size of unique(receiveRuns.map((run) => run.size))) {
    for (const receiver of unique(receiveRuns.map((run) => run.receiver))) {
      const runs = receiveRuns.filter((run) => run.size === size && run.receiver === receiver)
      if (runs.length === 0) continue
      const rates = runs.map((run) => run.rate)
      receive.push({
        size,
        receiver,
        runs: runs.length,
        rate: median(rates),
        rateMin: minimum(rates),
        rateMax: maximum(rates),
        loss: median(runs.map((run) => run.loss)),
        cpuPerPacketUs: median(runs.map((run) => run.cpuPerPacketUs)),
        cpuShare: median(runs.map((run) => run.cpuShare)),
        blasterRate: median(runs.map((run) => run.sendRate)),
        userPerPacketUs: median(runs.map((run) => run.cpuUserUs / run.received)),
        systemPerPacketUs: median(runs.map((run) => run.cpuSystemUs / run.received)),
        contextSwitchesPerThousand: median(runs.map((run) => (contextSwitches(run.details) / run.received) * 1000)),
        meanBatch: median(runs.map(meanBatch)),
        disturbedRuns: runs.filter((run) => isDisturbed(run.disturbance, run.seconds)).length,
      })
    }
  }
  const receiveRatios = unique(receive.map((entry) => entry.size)).map((size): ReceiveRatios => {
    const of = (id: ReceiverId): ReceiveSummary | undefined => receive.find((entry) => entry.size === size && entry.receiver === id)
    const volley = of('volley')
    return {
      size,
      volleyCpuPerPacketVsDgram: ratio(volley?.cpuPerPacketUs, of('dgram')?.cpuPerPacketUs),
      volleyRateVsC: ratio(volley?.rate, of('c-recvmmsg')?.rate),
      volleyRateVsDgram: ratio(volley?.rate, of('dgram')?.rate),
      volleyRateVsUdx: ratio(volley?.rate, of('udx-native')?.rate),
      volleyCpuPerPacketVsC: ratio(volley?.cpuPerPacketUs, of('c-recvmmsg')?.cpuPerPacketUs),
    }
  })
  const send: SendSummary[] = []
  for (const sender of unique(sendRuns.map((run) => run.sender))) {
    const runs = sendRuns.filter((run) => run.sender === sender)
    const rates = runs.map((run) => run.rate)
    send.push({
      sender,
      size: runs[0]?.size ?? 0,
      runs: runs.length,
      rate: median(rates),
      rateMin: minimum(rates),
      rateMax: maximum(rates),
      cpuPerPacketUs: median(runs.map((run) => run.cpuPerPacketUs)),
      cpuShare: median(runs.map((run) => run.cpuShare)),
      delivered: median(runs.map((run) => run.delivered)),
      disturbedRuns: runs.filter((run) => isDisturbed(run.disturbance, run.seconds)).length,
    })
  }
  const volleySend = send.find((entry) => entry.sender === 'volley')
  const dgramSend = send.find((entry) => entry.sender === 'dgram')
  const sendRatios =
    volleySend && dgramSend
      ? {
          size: volleySend.size,
          volleyRateVsDgram: ratio(volleySend.rate, dgramSend.rate),
          volleyCpuPerPacketVsDgram: ratio(volleySend.cpuPerPacketUs, dgramSend.cpuPerPacketUs),
        }
      : null
  const targets: Target[] = []
  const small = receiveRatios.find((entry) => entry.size === 64)
  if (small) targets.push(target('volley CPU/packet ÷ node:dgram CPU/packet, 64 B', small.volleyCpuPerPacketVsDgram, 0.4, 'at most'))
  for (const entry of receiveRatios) targets.push(rateTarget(entry, receive))
  return { receive, receiveRatios, send, sendRatios, targets, notes: [...notes, ...keptUpNotes(receive, gso), ...receiveNotes(receiveRuns), ...sendNotes(sendRuns)] }
}

function contextSwitches(details: Record<string, unknown>): number {
  const value = details.contextSwitches
  if (!isRecord(value) || typeof value.voluntary !== 'number' || typeof value.involuntary !== 'number') return Number.NaN
  return value.voluntary + value.involuntary
}

function meanBatch(run: ReceiveRun): number {
  const stats = run.details.stats
  if (isRecord(stats) && typeof stats.packetsIn === 'number' && typeof stats.batchesIn === 'number' && stats.batchesIn > 0) {
    return stats.packetsIn / stats.batchesIn
  }
  const batches = run.details.batches
  return typeof batches === 'number' && batches > 0 ? run.received / batches : Number.NaN
}

/** Receivers that lost (almost) nothing only kept up: their rate is the blaster's, not their ceiling. */
function keptUpNotes(receive: readonly ReceiveSummary[], gso: boolean): string[] {
  // Sizes with the same receivers that kept up share one note.
  const bySet = new Map<string, number[]>()
  for (const size of unique(receive.map((entry) => entry.size))) {
    const keptUp = receive.filter((entry) => entry.size === size && entry.loss < SATURATED_LOSS).map((entry) => receiverLabels[entry.receiver])
    if (keptUp.length === 0) continue
    const key = keptUp.join(', ')
    bySet.set(key, [...(bySet.get(key) ?? []), size])
  }
  return [...bySet].map(
    ([receivers, sizes]) =>
      `${sizes.map((size) => `${size} B`).join(' and ')}: ${receivers} lost under 0.5 % (median), so they kept up with the blaster: ` +
      'their rates are the blaster\'s speed (which also depends on how often it must wake the receiver), not their ceilings, ' +
      'and their CPU per packet is measured below saturation.' +
      (gso ? '' : ' `--gso` makes the blaster fast enough to saturate them.'),
  )
}

/**
 * The receive rate target compares ceilings, and only a receiver that lost datagrams showed its ceiling:
 * one that kept up received at the blaster's speed. With volley saturated and the C loop not, the ratio is
 * an upper bound (it can show "not met", never "met"); with the C loop saturated and volley not, a lower
 * bound; with neither, nothing was measured.
 */
function rateTarget(entry: ReceiveRatios, receive: readonly ReceiveSummary[]): Target {
  const loss = (id: ReceiverId): number => receive.find((summary) => summary.size === entry.size && summary.receiver === id)?.loss ?? Number.NaN
  const value = entry.volleyRateVsC
  const { bound, met } = judgeSaturatedRate(value, loss('volley'), loss('c-recvmmsg'))
  const why = {
    ceilings: '',
    upper: ' (an upper bound: the C loop kept up)',
    lower: ' (a lower bound: volley kept up)',
    none: " (neither receiver was saturated: both received at the blaster's speed)",
  }[bound]
  return { ...target(`volley rate ÷ C recvmmsg rate, ${entry.size} B${why}`, value, SATURATED_RATE_GOAL, 'at least'), met }
}

/** The receive rate at saturation's goal: volley's rate at least this share of the C loop's. */
export const SATURATED_RATE_GOAL = 0.9

/**
 * What volley's receive rate over the C loop's shows, from which of the two lost datagrams (reached its
 * ceiling; a receiver that kept up received at the blaster's speed): the ratio of their ceilings, an upper
 * bound on it (only the C loop kept up: met never, not met when under the goal), a lower bound (only volley
 * kept up: met when over the goal), or nothing. met: null when the figures do not decide it.
 */
export function judgeSaturatedRate(ratio: number, volleyLoss: number, cLoss: number): { bound: 'ceilings' | 'upper' | 'lower' | 'none'; met: boolean | null } {
  const bound = saturationBound(volleyLoss, cLoss)
  if (!Number.isFinite(ratio)) return { bound, met: null }
  if (bound === 'ceilings') return { bound, met: ratio >= SATURATED_RATE_GOAL }
  if (bound === 'upper') return { bound, met: ratio < SATURATED_RATE_GOAL ? false : null }
  if (bound === 'lower') return { bound, met: ratio >= SATURATED_RATE_GOAL ? true : null }
  return { bound, met: null }
}

/**
 * What volley's rate over the C loop's can bound, from which of the two lost datagrams (a receiver that
 * lost none received at the blaster's speed): their ceilings' ratio, an upper bound, a lower bound, or none.
 */
export function saturationBound(volleyLoss: number, cLoss: number): 'ceilings' | 'upper' | 'lower' | 'none' {
  const volleySaturated = volleyLoss >= SATURATED_LOSS
  const cSaturated = cLoss >= SATURATED_LOSS
  return volleySaturated ? (cSaturated ? 'ceilings' : 'upper') : cSaturated ? 'lower' : 'none'
}

/** Median loss from which a receiver is taken to have reached its ceiling. */
export const SATURATED_LOSS = 0.005

function target(what: string, value: number, limit: number, kind: Target['kind']): Target {
  const met = Number.isFinite(value) ? (kind === 'at most' ? value <= limit : value >= limit) : null
  return { what, value, limit, kind, met }
}

/** What the runs say beyond the medians: datagrams lost where they should not be, volley's own counters. */
function receiveNotes(runs: readonly ReceiveRun[]): string[] {
  const notes: string[] = []
  for (const run of runs) {
    const tag = `${receiverLabels[run.receiver]}, ${run.size} B, run ${run.round}`
    if (isDisturbed(run.disturbance, run.seconds)) notes.push(disturbedNote(`receive ${tag}`, run.disturbance, run.seconds))
    // The kernel's counters cover the whole machine: other UDP traffic can only make this smaller.
    if (run.unaccounted !== null && run.unaccounted > 0) {
      notes.push(
        `${tag}: ${run.unaccounted} datagrams neither received nor dropped for a full receive buffer ` +
          `(sent ${run.sent}, received ${run.received}, kernel RcvbufErrors ${run.kernel?.RcvbufErrors ?? '?'})`,
      )
    }
    if (run.receiver === 'volley') {
      const stats = isRecord(run.details.stats) ? run.details.stats : undefined
      const packetsIn = typeof stats?.packetsIn === 'number' ? stats.packetsIn : undefined
      const drops = isRecord(stats?.drops) && typeof stats.drops.receiveBufferFull === 'number' ? stats.drops.receiveBufferFull : undefined
      if (packetsIn !== undefined && packetsIn !== run.received) {
        notes.push(`${tag}: the engine read ${packetsIn} datagrams (stats().packetsIn) but the handler saw ${run.received}`)
      }
      // volley's socket counts its own drops (the kernel's counter, read as its queue drains); read before
      // close, they must account for every datagram that went missing.
      const missing = run.sent - run.received
      if (drops !== undefined && missing !== drops) {
        notes.push(
          `${tag}: sent ${run.sent} − received ${run.received} = ${missing}, but stats().drops.receiveBufferFull = ${drops} ` +
            `and the kernel counted ${run.kernel?.RcvbufErrors ?? '?'} RcvbufErrors: ${missing - drops} datagrams unaccounted for by the socket`,
        )
      }
    }
  }
  return notes
}

function sendNotes(runs: readonly SendRun[]): string[] {
  return runs
    .filter((run) => isDisturbed(run.disturbance, run.seconds))
    .map((run) => disturbedNote(`send ${senderLabels[run.sender]}, run ${run.round}`, run.disturbance, run.seconds))
}

function disturbedNote(tag: string, value: Disturbance | null, seconds: number): string {
  return (
    `${tag} was disturbed: other processes used ${value?.testedCpuSeconds ?? '?'} s of the tested CPU and ` +
    `${value?.counterpartCpuSeconds ?? '?'} s of the C side's CPU (steal ${value?.stealSeconds ?? '?'} s) during its ${seconds.toFixed(2)} s window`
  )
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)]
}
