// The measurement window of a JavaScript receiver process. The receiver's handler counts datagrams in
// `counters` and calls first() before counting the very first one. The window runs from that first
// datagram to the last: a timer looks at the counters every SAMPLE_MS and notes the time and the
// process CPU time whenever they moved, so the end is known to within SAMPLE_MS (a small bias against
// the JS receivers, at most 0.2 % of a 2.5 s case) and the idle tail after the last datagram is not
// charged. CPU time comes from process.resourceUsage() (getrusage(RUSAGE_SELF), the same user + system
// time as process.cpuUsage()): every thread of the process, so for volley it includes the native I/O
// thread. The report also carries the process's context switches.
import { createInterface } from 'node:readline'
import { IDLE_MS, SAMPLE_MS } from './constants.ts'
import { emit } from './protocol.ts'
import { usageBetween } from './usage.ts'

export interface Counters {
  packets: number
  bytes: number
}

interface Mark {
  time: number
  usage: NodeJS.ResourceUsage
}

/** A child that has lost its parent must not linger. */
const MAX_LIFETIME_MS = 10 * 60 * 1000

export class ReceiveMeter {
  readonly counters: Counters = { packets: 0, bytes: 0 }
  #first: Mark | undefined
  #last: Mark | undefined
  #seen = 0
  #stopAt = 0
  #finishing = false

  /** Call from the handler when the first datagram arrives, before counting it. */
  first(): void {
    this.#first = { time: performance.now(), usage: process.resourceUsage() }
  }

  /**
   * Announces the bound port and runs until the runner says "stop" (or closes stdin) and the socket
   * has been quiet for IDLE_MS; then reports, calls close and exits.
   */
  run(port: number, recvBufferSize: number, close: () => Promise<Record<string, unknown>>): void {
    setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref()
    const sampler = setInterval(() => {
      const now = performance.now()
      if (this.counters.packets !== this.#seen) {
        this.#seen = this.counters.packets
        this.#last = { time: now, usage: process.resourceUsage() }
      }
      if (this.#stopAt > 0 && !this.#finishing && now - Math.max(this.#stopAt, this.#last?.time ?? 0) >= IDLE_MS) {
        this.#finishing = true
        clearInterval(sampler)
        void this.#finish(close)
      }
    }, SAMPLE_MS)
    const commands = createInterface({ input: process.stdin })
    const stop = (): void => {
      if (this.#stopAt === 0) this.#stopAt = performance.now()
    }
    commands.on('line', (line) => {
      if (line.trim() === 'stop') stop()
    })
    commands.on('close', stop)
    emit({ type: 'ready', port, recvBufferSize })
  }

  async #finish(close: () => Promise<Record<string, unknown>>): Promise<void> {
    const first = this.#first
    const last = this.#last ?? first
    const details = await close()
    const used = first && last ? usageBetween(first.usage, last.usage) : usageBetween(process.resourceUsage(), process.resourceUsage())
    emit({
      type: 'result',
      packets: this.counters.packets,
      bytes: this.counters.bytes,
      seconds: first && last ? (last.time - first.time) / 1000 : 0,
      cpuUserUs: used.userCPUTime,
      cpuSystemUs: used.systemCPUTime,
      details: { ...details, contextSwitches: { voluntary: used.voluntaryContextSwitches, involuntary: used.involuntaryContextSwitches } },
    })
    process.exit(0)
  }
}
