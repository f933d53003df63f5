// native/protocol/delivery/delivery_clock.h's clock in JavaScript: Server reads its peers' clock figures with it.
/**
 * The clock a socket's delivery layer reads: the monotonic clock, or one the network simulator's
 * clockOffsetMs and clockDriftPpm set ahead of it and running fast or slow. Deadlines in its time go back
 * to the monotonic clock through real().
 */
export class DeliveryClock {
  constructor(
    readonly offsetUs = 0,
    /** µs gained per µs; > -1. */
    readonly drift = 0,
    /** Monotonic time the drift counts from. */
    readonly startUs = 0,
  ) {}

  get skewed(): boolean {
    return this.offsetUs !== 0 || this.drift !== 0
  }

  local(realUs: number): number {
    if (!this.skewed) return realUs
    const since = realUs > this.startUs ? realUs - this.startUs : 0
    return Math.floor(realUs + this.offsetUs + this.drift * since)
  }

  /** The monotonic time at which this clock reads localUs. */
  real(localUs: number): number {
    if (!this.skewed || localUs === Number.POSITIVE_INFINITY) return localUs
    const since = (localUs - this.offsetUs - this.startUs) / (1 + this.drift)
    return since <= 0 ? this.startUs : this.startUs + Math.ceil(since)
  }

  /** This clock minus the monotonic one at realUs, µs. */
  aheadUs(realUs: number): number {
    return this.local(realUs) - realUs
  }
}
