// What drained() of a Peer, a Client or a DatagramSocket waits on: whether a send was refused since the last
// drain, and the callers waiting for the next one. flushed() waits on one too: whether the queue held
// anything, and the callers waiting for it to empty.
import { abortedError, checkSignal, settleUnlistening } from './errors.ts'
import { checkOptions, signalOnly } from './options.ts'

interface Waiter {
  resolve: () => void
  reject: (error: Error) => void
}

export class DrainWaiters {
  #blocked = false
  /** Made on first use: most connections never wait. */
  #waiters: Waiter[] | null = null

  /** A send was refused: drained() waits for the next drain. */
  block(): void {
    this.#blocked = true
  }

  /**
   * At once unless a send was refused since the last drain, else at the next drain. notConnected: the error
   * to reject with when the connection is not up (null when it is). Rejects with ERR_ABORTED when
   * options.signal aborts.
   */
  wait(options: { signal?: AbortSignal }, notConnected: Error | null): Promise<void> {
    try {
      checkOptions('"options" argument', options, signalOnly)
      checkSignal(options.signal)
    } catch (error) {
      return Promise.reject(error)
    }
    const { signal } = options
    if (notConnected !== null) return Promise.reject(notConnected)
    if (signal?.aborted === true) return Promise.reject(abortedError('Waiting for the drain was aborted', signal))
    if (!this.#blocked) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters = (this.#waiters ?? []).filter((waiter) => waiter !== entry)
        reject(abortedError('Waiting for the drain was aborted', signal))
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
