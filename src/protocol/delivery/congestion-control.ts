// Congestion control of one connection, in bytes, as native/protocol/delivery/congestion_control.h (which says why):
// NewReno's slow start and congestion avoidance; a loss is congestion only when a queue stood behind it or
// more than a tenth of recent packets were lost, and then the window becomes the path's bandwidth-delay
// product (never less than half of what it was); a reduction every loss of which proves spurious is undone.
import { queueSlackUs } from './rtt-estimator.ts'
import { maxPacketBytes } from './wire-format.ts'

export class CongestionControl {
  static readonly initialWindow = 10 * maxPacketBytes
  static readonly minimumWindow = 2 * maxPacketBytes

  #window = CongestionControl.initialWindow
  /** The cap of a drain, Infinity when none. */
  #held = Number.POSITIVE_INFINITY
  slowStartThreshold = Number.POSITIVE_INFINITY
  #recoveryStartUs = 0
  #reduced = false
  #currentMax = 0
  #previousMax = 0
  #periodStartUs = 0
  /** Packets, this period and the one before. */
  readonly #lost = [0, 0]
  readonly #acked = [0, 0]
  #reductions = 0
  readonly #undo = { possible: false, unproven: 0, window: 0, slowStartThreshold: 0, reduced: false, recoveryStartUs: 0 }

  get window(): number {
    return Math.min(this.#window, this.#held)
  }

  /** While the sender drains to recheck the path's RTT, the window is held to capBytes and does not grow. */
  hold(capBytes: number): void {
    this.#held = Math.max(capBytes, CongestionControl.minimumWindow)
  }

  release(): void {
    this.#held = Number.POSITIVE_INFINITY
  }

  get bandwidthBytesPerUs(): number {
    return Math.max(this.#currentMax, this.#previousMax)
  }

  onAcked(bytes: number, sentUs: number, windowInUse: boolean): void {
    this.#acked[0]!++
    if (this.#inRecovery(sentUs)) return // sent before the reduction: no growth
    if (!windowInUse || this.#held !== Number.POSITIVE_INFINITY) return
    if (this.#window < this.slowStartThreshold) this.#window += bytes
    else this.#window += Math.max(1, Math.floor((maxPacketBytes * bytes) / this.#window))
  }

  /** Returns the reduction the loss belongs to (0: none), for onSpuriousLoss. */
  onLost(sentUs: number, nowUs: number, minRttUs: number, recentRttUs: number): number {
    this.#lost[0]!++
    if (this.#inRecovery(sentUs)) {
      this.#undo.unproven++
      return this.#reductions
    }
    const queued = minRttUs === 0 || recentRttUs > minRttUs + queueSlackUs(minRttUs)
    const lost = this.#lost[0]! + this.#lost[1]!
    const acked = this.#acked[0]! + this.#acked[1]!
    if (!queued && lost * 10 <= lost + acked) return 0 // not congestion
    Object.assign(this.#undo, { possible: true, unproven: 1, window: this.#window, slowStartThreshold: this.slowStartThreshold, reduced: this.#reduced, recoveryStartUs: this.#recoveryStartUs })
    this.#reductions++
    this.#reduced = true
    this.#recoveryStartUs = nowUs
    const pathBytes = this.bandwidthBytesPerUs * minRttUs
    const half = Math.floor(this.#window / 2)
    const target = pathBytes >= this.#window ? this.#window : Math.max(half, Math.floor(pathBytes))
    this.#window = Math.max(target, CongestionControl.minimumWindow)
    this.slowStartThreshold = this.#window
    return this.#reductions
  }

  onSpuriousLoss(reduction: number): void {
    if (this.#lost[0]! > 0) this.#lost[0]!--
    const undo = this.#undo
    if (!undo.possible || reduction === 0 || reduction !== this.#reductions) return
    undo.unproven = undo.unproven === 0 ? Number.MAX_SAFE_INTEGER : undo.unproven - 1 // (an unsigned count there)
    if (undo.unproven > 0) return
    this.#window = Math.max(this.#window, undo.window)
    this.slowStartThreshold = undo.slowStartThreshold
    this.#reduced = undo.reduced
    this.#recoveryStartUs = undo.recoveryStartUs
    undo.possible = false
  }

  onPersistentCongestion(thresholdBefore: number): void {
    this.#window = CongestionControl.minimumWindow
    this.slowStartThreshold = Math.max(this.slowStartThreshold, thresholdBefore)
    this.#reduced = false
    this.#undo.possible = false
  }

  onRateSample(bytesPerUs: number, nowUs: number, periodUs: number): void {
    if (nowUs >= this.#periodStartUs + periodUs) {
      const skipped = nowUs >= this.#periodStartUs + 2 * periodUs
      this.#previousMax = skipped ? 0 : this.#currentMax
      this.#lost[1] = skipped ? 0 : this.#lost[0]!
      this.#acked[1] = skipped ? 0 : this.#acked[0]!
      this.#currentMax = 0
      this.#lost[0] = 0
      this.#acked[0] = 0
      this.#periodStartUs = nowUs
    }
    this.#currentMax = Math.max(this.#currentMax, bytesPerUs)
  }

  #inRecovery(sentUs: number): boolean {
    return this.#reduced && sentUs <= this.#recoveryStartUs
  }
}
