// The measurement window of a JavaScript sender process: from the first send to the moment every
// datagram it queued has been handed to the kernel. Arguments: <port> <size> <milliseconds>.
import { emit } from './protocol.ts'
import { usageBetween } from './usage.ts'

export interface SendPlan {
  port: number
  payload: Uint8Array
  milliseconds: number
}

/** A child that has lost its parent must not linger. */
const MAX_LIFETIME_MS = 10 * 60 * 1000

export function readPlan(argv: readonly string[] = process.argv.slice(2)): SendPlan {
  const [port, size, milliseconds] = argv.map(Number)
  if (!isInteger(port, 1, 65535) || !isInteger(size, 1, 65507) || !isInteger(milliseconds, 1, 600_000)) {
    throw new Error(`usage: <port 1..65535> <size 1..65507> <milliseconds>; got ${argv.join(' ')}`)
  }
  setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref()
  const payload = new Uint8Array(size)
  for (let i = 0; i < size; i++) payload[i] = (i * 31 + 7) & 0xff
  return { port, payload, milliseconds }
}

/** Create it right before the first send: it tells the runner that the window is open. */
export class SendMeter {
  readonly #startTime = performance.now()
  readonly #startUsage = process.resourceUsage()

  constructor() {
    emit({ type: 'started' })
  }

  /** Milliseconds since the window opened. */
  elapsed(): number {
    return performance.now() - this.#startTime
  }

  /** Call once everything is sent; reports and exits. */
  finish(packets: number, bytes: number, details: Record<string, unknown>): never {
    const seconds = this.elapsed() / 1000
    const used = usageBetween(this.#startUsage, process.resourceUsage())
    const contextSwitches = { voluntary: used.voluntaryContextSwitches, involuntary: used.involuntaryContextSwitches }
    emit({ type: 'result', packets, bytes, seconds, cpuUserUs: used.userCPUTime, cpuSystemUs: used.systemCPUTime, details: { ...details, contextSwitches } })
    process.exit(0)
  }
}

function isInteger(value: number | undefined, min: number, max: number): value is number {
  return value !== undefined && Number.isInteger(value) && value >= min && value <= max
}
