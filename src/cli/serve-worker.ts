// A worker thread of `volley serve --workers N`: one echo server on the shared port (SO_REUSEPORT), driven by
// the main thread's messages (serve-workers.ts): its metrics when asked, and a graceful stop.
import { parentPort, workerData } from 'node:worker_threads'
import type { ServerOptions } from '../index.ts'
import { engineInUse } from '../api/native-info.ts'
import { EchoServer } from './echo-server.ts'
import type { FromWorker, ToWorker } from './serve-workers.ts'

const port = parentPort!
const post = (message: FromWorker): void => port.postMessage(message)

async function serveInWorker(): Promise<void> {
  const echo = new EchoServer(workerData as ServerOptions, (report) => post({ type: 'error', report }))
  try {
    const { port: listening } = await echo.listen()
    post({ type: 'listening', port: listening, publicAddress: echo.server.publicAddress, engine: engineInUse().engine })
  } catch (error) {
    post({ type: 'failed', message: (error as Error).message, code: (error as { code?: unknown }).code as string | undefined })
    port.close()
    return
  }
  port.on('message', (message: ToWorker) => {
    if (message.type === 'snapshot') {
      try {
        post({ type: 'snapshot', id: message.id, snapshot: echo.metrics.snapshot() })
      } catch (error) {
        post({ type: 'snapshot', id: message.id, error: (error as Error).message }) // stopping already
      }
    } else {
      void echo.stop().then((report) => {
        post({ type: 'stopped', report })
        port.close() // nothing else holds the thread: it ends
      })
    }
  })
}

await serveInWorker()
