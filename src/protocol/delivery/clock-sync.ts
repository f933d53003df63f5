// The peer's clock, estimated from ping/pong exchanges (NTP's four timestamps), as native/protocol/delivery/clock_sync.h:
// the exchange with the smallest RTT of each one-second period is kept (minimum-RTT filtering) and a
// straight line fitted through the kept offsets follows a drifting clock; half the kept RTTs bound the
// estimate's error. The same arithmetic in the same order as the native one, so both give the same figures.
const periodUs = 1_000_000
const periods = 16
/** The largest drift the line may show (µs per µs): a forged echo must not make a clock run backwards. */
const maxDrift = 2.5e-3
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
    // Without a line (one exchange alone), the drift may be anything up to the growth its bound takes.
    const driftBound = Math.abs(this.#drift) + (this.#driftKnown ? 0 : this.#errorGrowth)
    const halfSpan = (rtt + driftBound * delayUs) / 2
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

  /** As the native core's Fit: a line through the periods' best exchanges, weighted by 1 / (hᵢ + 1 µs)². */
  #fit(currentPeriod: number): void {
    let sumW = 0
    let sumT = 0
    let sumO = 0
    let latestAt = 0
    let count = 0
    for (const slot of this.#periods) {
      if (!ClockSync.#live(slot, currentPeriod)) continue
      const w = weight(slot)
      sumW += w
      sumT += w * slot.at
      sumO += w * slot.offset
      latestAt = Math.max(latestAt, slot.at)
      count++
    }
    if (count === 0) return // (the period whose tag wrapped to 0)
    if (count < 4) {
      this.#useAnchor(currentPeriod, latestAt, 0)
      return
    }
    const meanT = sumT / sumW
    const meanO = sumO / sumW
    let covariance = 0
    let variance = 0
    let sumError = 0
    let tilt = 0
    for (const slot of this.#periods) {
      if (!ClockSync.#live(slot, currentPeriod)) continue
      const w = weight(slot)
      covariance += w * (slot.at - meanT) * (slot.offset - meanO)
      variance += w * (slot.at - meanT) * (slot.at - meanT)
      sumError += w * slot.errorUs
      tilt += w * Math.abs(slot.at - meanT) * slot.errorUs
    }
    const fitted = variance > 0 ? covariance / variance : 0
    if (fitted < -maxDrift || fitted > maxDrift) {
      // Past the limit: not a line the exchanges can give. One exchange alone, as the native core.
      this.#useAnchor(currentPeriod, latestAt, maxDrift)
      return
    }
    this.#driftKnown = true
    this.#drift = fitted
    this.#offsetAtUs = meanO
    this.#atUs = meanT
    this.#errorAtCentreUs = sumError / sumW
    this.#errorGrowth = variance > 0 ? tilt / variance : 0
  }

  /** One exchange alone, no drift, its bound widening by `growth`: the one whose bound is smallest at the latest exchange (as the native core's UseAnchor). */
  #useAnchor(currentPeriod: number, latestAt: number, growth: number): void {
    let anchor: Best | undefined
    let anchorBound = 0
    for (const slot of this.#periods) {
      if (!ClockSync.#live(slot, currentPeriod)) continue
      const bound = slot.errorUs + growth * (latestAt - slot.at)
      if (anchor === undefined || bound < anchorBound) {
        anchor = slot
        anchorBound = bound
      }
    }
    this.#driftKnown = false
    this.#offsetAtUs = anchor!.offset
    this.#atUs = anchor!.at
    this.#drift = 0
    this.#errorAtCentreUs = anchor!.errorUs
    this.#errorGrowth = growth
  }
}

/** An exchange's weight in the fit: 1 / (its half RTT + 1 µs)². */
function weight(slot: Best): number {
  const h = slot.errorUs + 1
  return 1 / (h * h)
}
