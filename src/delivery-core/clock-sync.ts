// The peer's clock, estimated from ping/pong exchanges (NTP's four timestamps), as native/delivery/clock_sync.h:
// the exchange with the smallest RTT of each one-second period is kept (minimum-RTT filtering) and a
// straight line fitted through the kept offsets follows a drifting clock; half the kept RTTs bound the
// estimate's error. The same arithmetic in the same order as the native one, so both give the same figures.
const periodUs = 1_000_000
const periods = 16
/** The largest drift the line may show (µs per µs): a forged echo must not make a clock run backwards. */
const maxDrift = 2e-3
const tagModulus = 2 ** 32

interface Best {
  /** The period's number plus one, modulo 2^32 (0: never used). */
  periodTag: number
  /** Half the exchange's RTT, as a 32-bit float (as the native one keeps it). */
  errorUs: number
  offset: number
  /** Local time of the exchange's middle. */
  at: number
}

export class ClockSync {
  readonly #periods: Best[] = Array.from({ length: periods }, () => ({ periodTag: 0, errorUs: 0, offset: 0, at: 0 }))
  samples = 0
  #offsetAtUs = 0
  #atUs = 0
  #drift = 0
  #errorAtCentreUs = Number.POSITIVE_INFINITY
  #errorGrowth = 0
  #driftKnown = false

  /**
   * t0: local clock when the ping left; t1: the peer's clock when it arrived; delayUs: how long the peer
   * held it before the pong left; t3: local clock when the pong arrived.
   */
  sample(t0: number, t1: number, delayUs: number, t3: number): void {
    if (t3 < t0) return
    const elapsed = t3 - t0
    const rtt = elapsed > delayUs ? elapsed - delayUs : 0
    const halfSpan = (rtt + Math.abs(this.#drift) * delayUs) / 2
    const offset = (t1 - t0 + t1 + delayUs - t3) / 2
    const at = (t0 + t3) / 2
    const period = Math.floor(t3 / periodUs)
    const tag = (period + 1) % tagModulus
    const errorUs = Math.fround(halfSpan)
    const slot = this.#periods[period % periods]!
    if (slot.periodTag !== tag || errorUs < slot.errorUs) {
      slot.periodTag = tag
      slot.errorUs = errorUs
      slot.offset = offset
      slot.at = at
    }
    this.samples++
    this.#fit(period)
  }

  get synced(): boolean {
    return this.samples > 0
  }

  /** The peer's clock minus ours at local time `now` (µs; 0 before any sample). */
  offsetUs(now: number): number {
    return this.#offsetAtUs + this.#drift * (now - this.#atUs)
  }

  /** The most the offset at local time `now` can be wrong by, µs (infinite before any sample). */
  errorBoundUs(now: number): number {
    return this.#errorAtCentreUs + this.#errorGrowth * Math.max(0, now - this.#atUs)
  }

  /** How fast that bound widens (µs per µs). */
  get errorGrowth(): number {
    return this.#errorGrowth
  }

  /** The drift of the peer's clock against ours (µs per µs; 0 until four periods have samples). */
  get drift(): number {
    return this.#drift
  }

  get driftKnown(): boolean {
    return this.#driftKnown
  }

  static #live(slot: Best, currentPeriod: number): boolean {
    return slot.periodTag !== 0 && (((currentPeriod + 1) % tagModulus) - slot.periodTag) >>> 0 < periods
  }

  #fit(currentPeriod: number): void {
    let sumT = 0
    let sumO = 0
    let count = 0
    let best: Best | undefined
    for (const slot of this.#periods) {
      if (!ClockSync.#live(slot, currentPeriod)) continue
      sumT += slot.at
      sumO += slot.offset
      count++
      if (best === undefined || slot.errorUs < best.errorUs) best = slot
    }
    if (best === undefined) return // (the period whose tag wrapped to 0)
    this.#driftKnown = count >= 4
    if (!this.#driftKnown) {
      this.#offsetAtUs = best.offset
      this.#atUs = best.at
      this.#drift = 0
      this.#errorAtCentreUs = best.errorUs
      this.#errorGrowth = 0
      return
    }
    const meanT = sumT / count
    const meanO = sumO / count
    let covariance = 0
    let variance = 0
    let sumError = 0
    let tilt = 0
    for (const slot of this.#periods) {
      if (!ClockSync.#live(slot, currentPeriod)) continue
      covariance += (slot.at - meanT) * (slot.offset - meanO)
      variance += (slot.at - meanT) * (slot.at - meanT)
      sumError += slot.errorUs
      tilt += Math.abs(slot.at - meanT) * slot.errorUs
    }
    const fitted = variance > 0 ? covariance / variance : 0
    this.#drift = Math.min(Math.max(fitted, -maxDrift), maxDrift)
    this.#offsetAtUs = meanO
    this.#atUs = meanT
    // A drift past the limit is not the line the exchanges give: nothing bounds the estimate then.
    const clamped = this.#drift !== fitted
    this.#errorAtCentreUs = clamped ? Number.POSITIVE_INFINITY : sumError / count
    this.#errorGrowth = clamped || variance <= 0 ? 0 : tilt / variance
  }
}
