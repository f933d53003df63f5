// Round-trip time from acknowledgements (RFC 9002 §5) and from pongs, as native/protocol/delivery/rtt_estimator.h:
// smoothed RTT and its variation, the minimum, the maximum, the variance, and jitter as the smoothed difference between
// consecutive samples of one kind (RFC 3550 §6.4.1's form), and the path's minimum for congestion control, which may rise.
// Integer µs, divided as the native one divides.
const recentSamples = 32
const ackSample = 0
const pongSample = 1
const pathMinHoldUs = 10_000_000

/**
 * How far above the path's minimum RTT a round trip may be and still show no standing queue: jitter alone
 * keeps some samples within it.
 */
export function queueSlackUs(minRttUs: number): number {
  return Math.max(Math.floor(minRttUs / 8), 250)
}

/**
 * A longer round trip is no sample: a forged echo in a pong, or an acknowledgement the peer held back for
 * minutes (which would set the timeouts and pacing to match). It also bounds the clocks' drift before and
 * after the clock sync has measured it.
 */
export const maxRttSampleUs = 60_000_000

export class RttEstimator {
  smoothedUs: number
  variationUs: number
  latestUs = 0
  /** 0 until a sample gave one. */
  minUs = 0
  maxUs = 0
  latestAckSampleUs = 0
  jitterUs = 0
  samples = 0
  /** The latest sample of each kind (ackSample, pongSample), 0 before its first (a sample is at least 1 µs). */
  readonly #latestOfKindUs = [0, 0]
  #squaredDeviationUs2 = 0
  /** (7/8)^n: what the average still owes its start at 0. */
  #squaredDeviationWeight = 1
  readonly #recentMin = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]
  #recentCount = 0
  /** The path's minimum RTT (pathMinUs), when a sample last came within the queue slack of it, and the drain's. */
  #pathMinUs = 0
  #pathMinHeldUs = 0
  #draining = false
  #drainMinUs = Number.POSITIVE_INFINITY

  constructor(initialRttUs: number) {
    this.smoothedUs = initialRttUs
    this.variationUs = Math.floor(initialRttUs / 2)
  }

  /**
   * sampleUs: ack time − send time of the newest packet an ACK acknowledged; ackDelayUs: what the peer says
   * it held the ACK back (not subtracted below the minimum RTT, as RFC 9002 says); nowUs: when it came.
   */
  sample(sampleUs: number, ackDelayUs: number, nowUs: number, transmitUs = 0): void {
    if (sampleUs === 0) sampleUs = 1
    this.#lowerMin(sampleUs)
    this.#lowerPathMin(sampleUs, nowUs, transmitUs)
    this.latestAckSampleUs = sampleUs
    let adjusted = sampleUs
    if (adjusted >= this.minUs + ackDelayUs) adjusted -= ackDelayUs
    if (adjusted > this.maxUs) this.maxUs = adjusted // net of the ACK delay, as a pong's is of its hold
    this.#smooth(adjusted, ackSample)
  }

  /**
   * A round trip measured net of the peer's delay (a pong): rttUs for the smoothed figures; minCandidateUs
   * an upper bound of it for the minimum, 0 to leave the minimum alone.
   */
  sampleNet(rttUs: number, minCandidateUs: number): void {
    if (rttUs === 0) rttUs = 1
    if (minCandidateUs !== 0) this.#lowerMin(minCandidateUs)
    if (rttUs > this.maxUs) this.maxUs = rttUs
    this.#smooth(rttUs, pongSample)
  }

  /**
   * The samples' variance, µs² (variationUs is RFC 9002's mean deviation): the smoothed square of each
   * sample's distance from the smoothed RTT before it, at gain 1/8, divided by the weight it has gathered
   * (1 − (7/8)^n), times 15/16, as the native estimator computes it.
   */
  get varianceUs2(): number {
    return this.#squaredDeviationWeight < 1 ? (this.#squaredDeviationUs2 / (1 - this.#squaredDeviationWeight)) * (15 / 16) : 0
  }

  /** The smallest of the last 32 to 64 samples: a standing queue raises it, jitter alone hardly does. */
  get recentMinUs(): number {
    return Math.min(this.#recentMin[0]!, this.#recentMin[1]!)
  }

  /**
   * The path's own round trip for congestion control (0 until a sample gave one): the smallest ACK sample
   * (a pong's are the peer's word), held while samples keep coming within the queue slack of it; stale after
   * 10 s without one, when the sender drains to measure it again (native/protocol/delivery/rtt_estimator.h says why).
   */
  get pathMinUs(): number {
    return this.#pathMinUs
  }

  pathMinStale(nowUs: number): boolean {
    return this.#pathMinUs !== 0 && !this.#draining && nowUs >= this.#pathMinHeldUs + pathMinHoldUs
  }

  get draining(): boolean {
    return this.#draining
  }

  startDrain(): void {
    this.#draining = true
    this.#drainMinUs = Number.POSITIVE_INFINITY
  }

  /** Its time is up with no sample near the old minimum. */
  endDrain(nowUs: number): void {
    this.#draining = false
    if (this.#drainMinUs !== Number.POSITIVE_INFINITY) this.#pathMinUs = this.#drainMinUs
    this.#pathMinHeldUs = nowUs
  }

  /** The path may have changed (persistent congestion, RFC 9002 §5.2): the next sample starts it afresh. */
  forgetPathMin(): void {
    this.#pathMinUs = 0
    this.#draining = false
  }

  #lowerMin(candidateUs: number): void {
    if (this.minUs === 0 || candidateUs < this.minUs) this.minUs = candidateUs
  }

  #lowerPathMin(candidateUs: number, nowUs: number, transmitUs: number): void {
    if (this.#draining) this.#drainMinUs = Math.min(this.#drainMinUs, candidateUs)
    // A large packet's round trip includes sending it at the bottleneck's rate, which a small one's (the
    // minimum may be a probe's) does not: that much is no queue (up to half the minimum).
    const allowanceUs = queueSlackUs(this.#pathMinUs) + Math.min(transmitUs, Math.floor(this.#pathMinUs / 2))
    if (this.#pathMinUs === 0 || candidateUs <= this.#pathMinUs + allowanceUs) {
      if (this.#pathMinUs === 0 || candidateUs < this.#pathMinUs) this.#pathMinUs = candidateUs
      this.#pathMinHeldUs = nowUs
      this.#draining = false // the queue was ours and is gone: the minimum holds, the drain can end
    }
  }

  #smooth(adjusted: number, kind: typeof ackSample | typeof pongSample): void {
    // Jitter compares a sample with the previous one of its kind (native/protocol/delivery/rtt_estimator.h says why).
    const previous = this.#latestOfKindUs[kind]!
    if (previous !== 0) this.jitterUs += (Math.abs(adjusted - previous) - this.jitterUs) / 16
    this.#latestOfKindUs[kind] = adjusted
    this.latestUs = adjusted
    if (this.#recentCount === recentSamples) {
      this.#recentMin[1] = this.#recentMin[0]!
      this.#recentMin[0] = Number.POSITIVE_INFINITY
      this.#recentCount = 0
    }
    this.#recentMin[0] = Math.min(this.#recentMin[0]!, adjusted)
    this.#recentCount++
    if (this.samples === 0) {
      this.smoothedUs = adjusted
      this.variationUs = Math.floor(adjusted / 2)
    } else {
      const distance = adjusted - this.smoothedUs
      this.#squaredDeviationUs2 += (distance * distance - this.#squaredDeviationUs2) / 8
      this.#squaredDeviationWeight *= 0.875
      const deviation = Math.abs(this.smoothedUs - adjusted)
      this.variationUs = Math.floor((3 * this.variationUs + deviation) / 4)
      this.smoothedUs = Math.floor((7 * this.smoothedUs + adjusted) / 8)
    }
    this.samples++
  }
}
