// The process's exit, as both engines see it. Once 'exit' is emitted nothing sent would leave the process:
// the native engines' I/O threads are joined then (process.exit() skips the cleanup hooks that would), and a
// send or a socket from a later 'exit' handler throws ERR_SOCKET_CLOSED on either engine, rather than start
// an engine that could send nothing. The listener is added as this module loads, ahead of any an
// application adds after importing volley, so that its handlers find the engines stopped.
import { VolleyError } from '../util/errors.ts'

let exiting = false
const atExit = new Set<() => void>()

process.on('exit', () => {
  exiting = true
  for (const stop of [...atExit]) stop()
})

/** Calls `stop` as the process exits, unless forgotten first (the returned function). */
export function stopAtExit(stop: () => void): () => void {
  atExit.add(stop)
  return () => atExit.delete(stop)
}

/** Throws ERR_SOCKET_CLOSED once the process is exiting. */
export function checkNotExiting(): void {
  if (exiting) throw exitingError()
}

/** What a send or a socket gets once the engines have stopped for the process's exit. */
export function exitingError(): VolleyError {
  return new VolleyError('ERR_SOCKET_CLOSED', 'The engine has stopped: the process is exiting')
}
