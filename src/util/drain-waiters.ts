// What drained() of a Peer, a Client or a DatagramSocket waits on: whether a send was refused since the last
// drain, and the callers waiting for the next one; and what flushed() of a Peer or a Client waits on (the
// queue to empty).
import { abortedError, checkSignal, settleUnlistening } from './errors.ts'
import { checkOptions, signalOnly } from './options.ts'

interface Waiter {
  resolve: () => void
  reject: (error: Error) => void
}

export class DrainWaiters {
  /** What the callers wait for, as an abort's message says it. */
  readonly #awaited: string
  #blocked = false
  /** Made on first use: most connections never wait. */
  #waiters: Waiter[] | null = null

  constructor(awaited = 'the drain') {
    this.#awaited = awaited
  }

  /** A send was refused: drained() waits for the next drain. */
  block(): void {
    this.#blocked = true
  }

  /**
   * At once unless a send was refused since the last drain, else at the next drain. notConnected: the error
   * to reject with when the connection is not up (null when it is). Rejects with ABORT_ERR when
   * options.signal aborts.
   */
  wait(options: { signal?: AbortSignal | undefined }, notConnected: Error | null): Promise<void> {
    try {
      checkOptions('"options" argument', options, signalOnly)
      checkSignal(options.signal)
    } catch (error) {
      return Promise.reject(error)
    }
    const { signal } = options
    // A signal aborted already is checked first, as Node's own APIs do.
    if (signal?.aborted === true) return Promise.reject(abortedError(`Waiting for ${this.#awaited} was aborted`, signal))
    if (notConnected !== null) return Promise.reject(notConnected)
    if (!this.#blocked) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters = (this.#waiters ?? []).filter((waiter) => waiter !== entry)
        reject(abortedError(`Waiting for ${this.#awaited} was aborted`, signal))
      }
      const entry: Waiter = settleUnlistening(signal, onAbort, resolve, reject)
      ;(this.#waiters ??= []).push(entry)
    })
  }

  /** The queue that refused has room again. */
  drain(): void {
    this.#blocked = false
    const waiters = this.#waiters
    this.#waiters = null
    if (waiters !== null) for (const waiter of waiters) waiter.resolve()
  }

  /** The connection ended: nothing drains any more. */
  fail(error: () => Error): void {
    this.#blocked = false
    const waiters = this.#waiters
    this.#waiters = null
    if (waiters !== null) for (const waiter of waiters) waiter.reject(error())
  }
}

/**
 * What flushed() waits on: the connection's queue to empty (sent, the reliable acknowledged). The I/O thread
 * reports it once asked (watch); what JavaScript queued after asking may reach it after the report, so an
 * empty report with bytes still queued asks again.
 */
export class FlushWaiters {
  readonly #waiters = new DrainWaiters('the queue to empty')
  readonly #queued: () => number
  readonly #watch: () => void

  /** queued: the connection's bufferedAmount, 0 once it cannot send; watch: asks the I/O thread for a report. */
  constructor(queued: () => number, watch: () => void) {
    this.#queued = queued
    this.#watch = watch
  }

  /** notConnected: as DrainWaiters.wait's. */
  wait(options: { signal?: AbortSignal | undefined }, notConnected: Error | null): Promise<void> {
    // Checked before the I/O thread is asked to watch: a call that rejects (a misspelt option, a signal
    // aborted already, no connection) leaves nothing asked.
    try {
      checkOptions('"options" argument', options, signalOnly)
      checkSignal(options.signal)
    } catch (error) {
      return Promise.reject(error)
    }
    if (options.signal?.aborted === true || notConnected !== null) return this.#waiters.wait(options, notConnected)
    if (this.#queued() > 0) {
      this.#waiters.block()
      this.#watch()
    }
    return this.#waiters.wait(options, notConnected)
  }

  /** The I/O thread found the queue empty. */
  emptied(): void {
    if (this.#queued() > 0) this.#watch()
    else this.#waiters.drain()
  }

  fail(error: () => Error): void {
    this.#waiters.fail(error)
  }
}
