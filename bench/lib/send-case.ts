// One send run: the C sink binds, a JS sender sends 64 B datagrams to it for a fixed time, then the
// sink is told to stop. The sender reports what it sent and its CPU time; the sink what arrived.
import type { Launcher } from './launch.ts'
import type { SenderId } from './options.ts'
import type { BenchChild } from './processes.ts'
import type { Timeouts } from './receive-case.ts'
import { defaultTimeouts } from './receive-case.ts'
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

export interface SendRun {
  sender: SenderId
  size: number
  round: number
  /** Sender: datagrams handed to the kernel, over its window (first send to last completion). */
  sent: number
  seconds: number
  rate: number
  cpuUserUs: number
  cpuSystemUs: number
  cpuPerPacketUs: number
  cpuShare: number
  /** Sink: datagrams that arrived; delivered = received / sent. */
  received: number
  delivered: number
  sinkRate: number
  kernel: UdpCounters | null
  /** Per-CPU time over the run, from the start of sending to the end of the receiver's drain. */
  cores: CoreTimes[] | null
  /** Other processes' CPU time on the pinned cores during the run (see system.ts). */
  disturbance: Disturbance | null
  details: Record<string, unknown>
}

export async function runSend(
  launch: Launcher,
  sender: SenderId,
  size: number,
  milliseconds: number,
  round: number,
  timeouts: Timeouts = defaultTimeouts,
): Promise<SendRun> {
  const children: BenchChild[] = []
  try {
    const sink = launch.sink()
    children.push(sink)
    const ready = await sink.expect('ready', timeouts.startMs)
    const source = launch.sender(sender, ready.port, size, milliseconds)
    children.push(source)
    await source.expect('started', timeouts.startMs)
    const before = readUdpCounters()
    const coresBefore = readCoreTimes()
    const sent = await source.expect('result', milliseconds + timeouts.startMs)
    await source.finish(5_000)
    sink.tell('stop')
    const got = await sink.expect('result', timeouts.drainMs)
    await sink.finish(5_000)
    const cpu = sent.cpuUserUs + sent.cpuSystemUs
    const cores = diffCoreTimes(coresBefore, readCoreTimes())
    return {
      sender,
      size,
      round,
      sent: sent.packets,
      seconds: sent.seconds,
      rate: sent.seconds > 0 ? sent.packets / sent.seconds : 0,
      cpuUserUs: sent.cpuUserUs,
      cpuSystemUs: sent.cpuSystemUs,
      cpuPerPacketUs: sent.packets > 0 ? cpu / sent.packets : Number.NaN,
      cpuShare: sent.seconds > 0 ? cpu / 1e6 / sent.seconds : 0,
      received: got.packets,
      delivered: sent.packets > 0 ? got.packets / sent.packets : 0,
      sinkRate: got.seconds > 0 ? got.packets / got.seconds : 0,
      kernel: diffUdpCounters(before, readUdpCounters()),
      cores,
      disturbance: disturbance(cores, launch.cpus, cpu / 1e6, (got.cpuUserUs + got.cpuSystemUs) / 1e6),
      details: sent.details,
    }
  } finally {
    for (const child of children) child.kill()
  }
}
