// The `signal` option of DatagramSocket, Server, Client and ClientPool: the object closes when the signal
// aborts, as a node:dgram socket or a net.Socket does.
import { VolleyError, type VolleyStateErrorCode, checkSignal } from './errors.ts'

/** Per signal: the objects it closes, and its one 'abort' listener. */
const closersBySignal = new WeakMap<AbortSignal, { closers: Set<() => void>; onAbort: () => void }>()

export class LifetimeSignal {
  readonly #signal: AbortSignal | undefined
  #release: () => void = () => {}
  /** The signal, once it has closed the object. */
  abortedBy: AbortSignal | undefined

  /** Checks the option (ERR_INVALID_ARG_TYPE): first in a constructor, with the other options. */
  constructor(signal: unknown) {
    checkSignal(signal)
    this.#signal = signal
  }

  /**
   * Calls close() when the signal aborts, and at once if it has: last in a constructor, so that an object
   * given a signal aborted already starts closed. A signal has one listener however many objects share it
   * (10,000 clients, say: no MaxListenersExceededWarning).
   */
  watch(close: () => void): void {
    const signal = this.#signal
    if (signal === undefined) return
    const closer = (): void => {
      this.abortedBy = signal
      close()
    }
    if (signal.aborted) return closer()
    let entry = closersBySignal.get(signal)
    if (entry === undefined) {
      const closers = new Set<() => void>()
      const onAbort = (): void => {
        closersBySignal.delete(signal)
        for (const each of closers) each()
      }
      entry = { closers, onAbort }
      closersBySignal.set(signal, entry)
      signal.addEventListener('abort', onAbort, { once: true })
    }
    const { closers, onAbort } = entry
    closers.add(closer)
    this.#release = () => {
      closers.delete(closer)
      if (closers.size > 0) return
      signal.removeEventListener('abort', onAbort)
      if (closersBySignal.get(signal)?.closers === closers) closersBySignal.delete(signal)
    }
  }

  /** Stops listening (the object is closing): a long-lived signal then keeps nothing of it. */
  release(): void {
    this.#release()
    this.#release = () => {}
  }

  /** A message about the object's closing: when the signal closed it, it says so. */
  explain(message: string): string {
    return this.abortedBy === undefined ? message : `${message} (its "signal" option aborted)`
  }

  /** The closed object's error: when the signal closed it, the message says so and the cause is its reason. */
  closedError(code: VolleyStateErrorCode, message: string): VolleyError {
    return new VolleyError(code, this.explain(message), this.abortedBy === undefined ? undefined : { cause: this.abortedBy.reason })
  }
}
