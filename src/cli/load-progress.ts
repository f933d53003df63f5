// `volley load`'s progress on stderr while it runs: on a terminal one line rewritten every second, else
// (a log, a CI job) a plain line every few seconds. stdout keeps the reports alone.
import { type LatencySummary, type LoadProgress, loadProgressText } from './load-report.ts'

/** How often the line is rewritten on a terminal, and written elsewhere, ms. */
const terminalPeriodMs = 1000
const logPeriodMs = 5000

/** What the progress reads at each line: counts since the start, and the interval's latency (which it resets). */
export interface ProgressSource {
  phase(): LoadProgress['phase']
  connected(): number
  messagesSent(): number
  messagesReceived(): number
  /** The round trips since the last call, and a fresh interval; undefined where none came back. */
  takeLatency(): LatencySummary | undefined
}

export class ProgressLine {
  readonly #source: ProgressSource
  readonly #terminal: boolean
  readonly #timer: NodeJS.Timeout
  #shown = false
  #last: { at: number; sent: number; received: number }

  /** Starts the lines: on a terminal (stderr a TTY) always; elsewhere when `plain` (not with --json). */
  static start(source: ProgressSource, plain: boolean): ProgressLine | undefined {
    const terminal = process.stderr.isTTY === true
    return terminal || plain ? new ProgressLine(source, terminal) : undefined
  }

  private constructor(source: ProgressSource, terminal: boolean) {
    this.#source = source
    this.#terminal = terminal
    this.#last = { at: performance.now(), sent: source.messagesSent(), received: source.messagesReceived() }
    this.#timer = setInterval(() => this.#write(), terminal ? terminalPeriodMs : logPeriodMs)
    this.#timer.unref()
  }

  #write(): void {
    const now = performance.now()
    const sent = this.#source.messagesSent()
    const received = this.#source.messagesReceived()
    const seconds = (now - this.#last.at) / 1000
    const latency = this.#source.takeLatency()
    const text = loadProgressText({
      phase: this.#source.phase(),
      connected: this.#source.connected(),
      sentPerSecond: (sent - this.#last.sent) / seconds,
      receivedPerSecond: (received - this.#last.received) / seconds,
      ...(latency === undefined ? {} : { latency }),
    })
    this.#last = { at: now, sent, received }
    if (this.#terminal) {
      process.stderr.write(`\r\x1b[K${text}`) // the line rewritten where it is, the rest of the old one erased
      this.#shown = true
    } else {
      process.stderr.write(`volley load: ${text}\n`)
    }
  }

  /** Erases the terminal's line, so that a report can take its place; the next tick writes it again. */
  clear(): void {
    if (!this.#shown) return
    process.stderr.write('\r\x1b[K')
    this.#shown = false
  }

  stop(): void {
    clearInterval(this.#timer)
    this.clear()
  }
}
