// MASH keep-alive (seed 003 §4): a ping every interval; a pong not back within the pong timeout is a miss;
// the third miss in a row ends the connection. The pong deadline is timed exactly (the seed's state
// machine, 95 s worst case), where the reference only looks at each tick (up to 120 s).
import { Timer, type Scheduler } from '../timers.ts'
import { VolleyRangeError } from '../../util/errors.ts'
import { integerOption } from '../../util/options.ts'

/** The keepAlive option of MASH controllers and devices: pings, and how many missed pongs end a connection. */
export interface KeepAliveOptions {
  /** Time between pings, ms (default 30,000). 0 turns the keep-alive off (pings are still answered). */
  intervalMs?: number | undefined
  /** How long a pong may take, ms (default 5,000); less than the interval. */
  pongTimeoutMs?: number | undefined
  /** Misses in a row that end the connection (default 3). */
  maxMissedPongs?: number | undefined
}

/** The keep-alive settings, every one given. @inline */
export interface KeepAliveSettings {
  intervalMs: number
  pongTimeoutMs: number
  maxMissedPongs: number
}

/** The keep-alive defaults: a ping every 30 s, its pong within 5 s, and 3 misses in a row end the connection. */
export const keepAliveDefaults: Readonly<KeepAliveSettings> = Object.freeze({ intervalMs: 30_000, pongTimeoutMs: 5_000, maxMissedPongs: 3 })

export function keepAliveSettings(options: KeepAliveOptions | undefined, name = 'keepAlive'): KeepAliveSettings {
  const intervalMs = integerOption(`${name}.intervalMs`, options?.intervalMs, keepAliveDefaults.intervalMs, 0, 2 ** 31 - 1)
  const pongTimeoutMs = integerOption(`${name}.pongTimeoutMs`, options?.pongTimeoutMs, keepAliveDefaults.pongTimeoutMs, 1, 2 ** 31 - 1)
  const maxMissedPongs = integerOption(`${name}.maxMissedPongs`, options?.maxMissedPongs, keepAliveDefaults.maxMissedPongs, 1, 1000)
  // Each ping starts a new wait for its pong: a wait as long as the interval would never see a miss.
  if (intervalMs > 0 && pongTimeoutMs >= intervalMs) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}.pongTimeoutMs" option must be below "${name}.intervalMs" (${intervalMs} ms). Received ${pongTimeoutMs}`)
  }
  return { intervalMs, pongTimeoutMs, maxMissedPongs }
}

/** What the keep-alive does to its connection. */
export interface KeepAliveHost {
  sendPing(seq: number): void
  /** A pong came back for the pending ping, after latencyMs. */
  latency(latencyMs: number): void
  /** maxMissedPongs in a row: the connection is dead. */
  timedOut(missed: number): void
}

/** The ping side of one connection (answering pings is the connection's job: a pong needs no state). */
export class KeepAlive {
  readonly #settings: KeepAliveSettings
  readonly #scheduler: Scheduler
  readonly #host: KeepAliveHost
  readonly #pingTimer = new Timer(() => this.#ping())
  readonly #pongTimer = new Timer(() => this.#missed())
  #seq = 0
  /** The seq of the ping awaiting its pong; 0 when none is. */
  #pendingSeq = 0
  #pendingSentAt = 0
  #missedInRow = 0
  #stopped = false

  constructor(settings: KeepAliveSettings, scheduler: Scheduler, host: KeepAliveHost) {
    this.#settings = settings
    this.#scheduler = scheduler
    this.#host = host
  }

  get missedInRow(): number {
    return this.#missedInRow
  }

  /** Sends the first ping now (as the reference does at start), then one every interval. */
  start(): void {
    if (this.#settings.intervalMs === 0 || this.#stopped) return
    this.#ping()
  }

  stop(): void {
    this.#stopped = true
    this.#scheduler.disarm(this.#pingTimer)
    this.#scheduler.disarm(this.#pongTimer)
  }

  /** A pong arrived: one for the pending ping ends the wait; any other seq is ignored (a late or forged one). */
  pong(seq: number): boolean {
    if (this.#pendingSeq === 0 || seq !== this.#pendingSeq) return false
    this.#pendingSeq = 0
    this.#missedInRow = 0
    this.#scheduler.disarm(this.#pongTimer)
    this.#host.latency(this.#scheduler.now() - this.#pendingSentAt)
    return true
  }

  #ping(): void {
    if (this.#stopped) return
    const now = this.#scheduler.now()
    // seq is a u32 from 1; 0 means "absent" on the wire, so the wrap skips it.
    this.#seq = this.#seq >= 0xffff_ffff ? 1 : this.#seq + 1
    this.#pendingSeq = this.#seq
    this.#pendingSentAt = now
    this.#scheduler.arm(this.#pongTimer, now + this.#settings.pongTimeoutMs)
    this.#scheduler.arm(this.#pingTimer, now + this.#settings.intervalMs)
    this.#host.sendPing(this.#seq)
  }

  #missed(): void {
    if (this.#stopped || this.#pendingSeq === 0) return
    this.#pendingSeq = 0
    this.#missedInRow++
    if (this.#missedInRow >= this.#settings.maxMissedPongs) {
      this.stop()
      this.#host.timedOut(this.#missedInRow)
    }
  }
}
