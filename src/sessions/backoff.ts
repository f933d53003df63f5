// Exponential backoff with positive jitter for reconnect loops (MASH behaviours §5.1–5.3): base delays 1, 2, 4,
// 8, 16, 32, 60, 60… s, each stretched by a random 0–25 % so that clients dropped together do not all come back
// in the same instant.
import { VolleyRangeError, VolleyTypeError, describe } from '../util/errors.ts'
import { checkOptions, numberOption } from '../util/options.ts'

export interface BackoffOptions {
  /** The first base delay, ms (default 1000), and the one reset() returns to. */
  initialMs?: number | undefined
  /** The cap of the base delay, ms (default 60000); at least initialMs. */
  maxMs?: number | undefined
  /** How much each base delay grows over the one before (default 2), at least 1. */
  multiplier?: number | undefined
  /** The jitter, a fraction of the base delay from 0 to 1 (default 0.25): a delay is base + U(0, jitter·base). */
  jitter?: number | undefined
  /** The random source, giving numbers in [0, 1) (default Math.random); tests inject their own. */
  random?: (() => number) | undefined
}

const knownOptions: ReadonlySet<string> = new Set(['initialMs', 'maxMs', 'multiplier', 'jitter', 'random'])

/**
 * The largest base delay: with jitter up to 1 a delay stays within the 2^31 − 1 ms that a JS timer takes
 * (beyond it Node fires at once).
 */
const maxDelayMs = 2 ** 30

/**
 * The delays of a reconnect loop. next() gives the delay before the next attempt and moves on; reset() after
 * a fully successful connection starts again from initialMs. Jitter is only ever added (never subtracted),
 * so no delay is shorter than its base.
 */
export class Backoff {
  readonly #initialMs: number
  readonly #maxMs: number
  readonly #multiplier: number
  readonly #jitter: number
  readonly #random: () => number
  /** The base delay (without jitter) of the next attempt. */
  #currentMs: number
  #attempts = 0

  constructor(options: BackoffOptions = {}) {
    checkOptions('Backoff options', options, knownOptions)
    this.#initialMs = numberOption('initialMs', options.initialMs, 1000, 1, maxDelayMs, ' ms')
    this.#maxMs = numberOption('maxMs', options.maxMs, 60_000, 1, maxDelayMs, ' ms')
    if (this.#maxMs < this.#initialMs) {
      throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "maxMs" option must be at least "initialMs" (${this.#initialMs} ms). Received ${this.#maxMs}`)
    }
    this.#multiplier = numberOption('multiplier', options.multiplier, 2, 1, 1024)
    this.#jitter = numberOption('jitter', options.jitter, 0.25, 0, 1)
    const random = options.random ?? Math.random
    if (typeof random !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "random" option must be a function returning a number in [0, 1). Received ${describe(random)}`)
    }
    this.#random = random
    this.#currentMs = this.#initialMs
  }

  /** The jittered delay (ms, fractions allowed) to wait before the next attempt; then the base moves on, up to maxMs. */
  next(): number {
    const delay = this.#jittered(this.#currentMs)
    this.#attempts++
    this.#currentMs = Math.min(this.#currentMs * this.#multiplier, this.#maxMs)
    return delay
  }

  /**
   * A jittered delay on the base next() would use, without moving on. The jitter is drawn anew: a peek and the
   * next() after it share the base, not necessarily the delay.
   */
  peek(): number {
    return this.#jittered(this.#currentMs)
  }

  /** Back to initialMs, with no attempts: after a fully successful connection only. */
  reset(): void {
    this.#currentMs = this.#initialMs
    this.#attempts = 0
  }

  /** How many times next() was called since the last reset (or since construction). */
  get attempts(): number {
    return this.#attempts
  }

  #jittered(baseMs: number): number {
    if (this.#jitter === 0) return baseMs
    const draw = this.#random()
    // An injected source that strays would make delays negative or unbounded: say so rather than wait for ever.
    if (typeof draw !== 'number' || !(draw >= 0 && draw <= 1)) {
      throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "random" option must return a number from 0 to 1. It returned ${describe(draw)}`)
    }
    return baseMs + draw * this.#jitter * baseMs
  }
}
