// One receive run: a receiver process binds, the C blaster floods it for a fixed time from another
// process, then the receiver is told to stop and reports what it got in its window.
import type { Launcher } from './launch.ts'
import type { ReceiverId } from './options.ts'
import type { BenchChild } from './processes.ts'
import {
  type CoreTimes,
  type Disturbance,
  type UdpCounters,
  diffCoreTimes,
  diffUdpCounters,
  disturbance,
  readCoreTimes,
  readUdpCounters,
} from './system.ts'

export interface ReceiveRun {
  receiver: ReceiverId
  size: number
  round: number
  /** Blaster: datagrams that sendmmsg accepted, over its sending time. */
  sent: number
  sentSeconds: number
  sendRate: number
  /** Receiver: datagrams its handler saw, over its window (first datagram to last). */
  received: number
  seconds: number
  rate: number
  /** 1 - received / sent */
  loss: number
  /** Receiver process CPU (user + system, all threads) over its window. */
  cpuUserUs: number
  cpuSystemUs: number
  cpuPerPacketUs: number
  /** CPU time / window length: 1 = one core fully busy. */
  cpuShare: number
  recvBufferSize: number
  /** Kernel UDP counters over the run (the whole network namespace, but only the bench sends). */
  kernel: UdpCounters | null
  /** Per-CPU time over the run, from the start of sending to the end of the receiver's drain. */
  cores: CoreTimes[] | null
  /** Other processes' CPU time on the pinned cores during the run (see system.ts). */
  disturbance: Disturbance | null
  /** sent - received - kernel receive-buffer drops: datagrams lost somewhere else (should be 0). */
  unaccounted: number | null
  details: Record<string, unknown>
  blasterDetails: Record<string, unknown>
}

export interface Timeouts {
  startMs: number
  drainMs: number
}

export const defaultTimeouts: Timeouts = { startMs: 30_000, drainMs: 30_000 }

export async function runReceive(
  launch: Launcher,
  receiver: ReceiverId,
  size: number,
  milliseconds: number,
  round: number,
  timeouts: Timeouts = defaultTimeouts,
): Promise<ReceiveRun> {
  const children: BenchChild[] = []
  try {
    const sink = launch.receiver(receiver)
    children.push(sink)
    const ready = await sink.expect('ready', timeouts.startMs)
    const before = readUdpCounters()
    const coresBefore = readCoreTimes()
    const blaster = launch.blaster(ready.port, size, milliseconds)
    children.push(blaster)
    const sent = await blaster.expect('result', milliseconds + timeouts.startMs)
    await blaster.finish(5_000)
    sink.tell('stop')
    const got = await sink.expect('result', timeouts.drainMs)
    await sink.finish(5_000)
    const kernel = diffUdpCounters(before, readUdpCounters())
    const cores = diffCoreTimes(coresBefore, readCoreTimes())
    // A run that delivered nothing measured nothing: a failure, not a NaN among the medians.
    if (got.packets === 0) throw new Error(`the receiver got none of the ${sent.packets} datagrams sent`)
    const cpu = got.cpuUserUs + got.cpuSystemUs
    const blasterCpu = sent.cpuUserUs + sent.cpuSystemUs
    return {
      receiver,
      size,
      round,
      sent: sent.packets,
      sentSeconds: sent.seconds,
      sendRate: sent.seconds > 0 ? sent.packets / sent.seconds : 0,
      received: got.packets,
      seconds: got.seconds,
      rate: got.seconds > 0 ? got.packets / got.seconds : 0,
      loss: sent.packets > 0 ? 1 - got.packets / sent.packets : 0,
      cpuUserUs: got.cpuUserUs,
      cpuSystemUs: got.cpuSystemUs,
      cpuPerPacketUs: got.packets > 0 ? cpu / got.packets : Number.NaN,
      cpuShare: got.seconds > 0 ? cpu / 1e6 / got.seconds : 0,
      recvBufferSize: ready.recvBufferSize,
      kernel,
      cores,
      disturbance: disturbance(cores, launch.cpus, cpu / 1e6, blasterCpu / 1e6),
      unaccounted: kernel === null ? null : sent.packets - got.packets - kernel.RcvbufErrors,
      details: got.details,
      blasterDetails: sent.details,
    }
  } finally {
    for (const child of children) child.kill()
  }
}
