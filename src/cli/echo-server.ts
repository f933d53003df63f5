// The server `volley serve` runs, in its main thread or in each worker thread (--workers): it echoes every
// message on its channel, and reports what `volley load` and an operator need.
import { Server, type ServerOptions, type ServerStats } from '../index.ts'
import { ServerMetrics } from '../metrics/index.ts'

/** What serve reports of a server as it stops. */
export interface StoppedReport {
  /** Clients connected when the stop came (close() disconnects them). */
  connectedAtStop: number
  /** Echoes a full send queue refused (the load outran the server's sends): counted, as nothing else would. */
  echoesRefused: number
  stats: ServerStats
}

/** A socket error the server reported ('error' event), as serve prints it. */
export interface ServerErrorReport {
  event: 'error'
  code: string | undefined
  message: string
}

export class EchoServer {
  readonly server: Server
  /** Counted from before the server listens: its connections and disconnects, and what stats() gives. */
  readonly metrics: ServerMetrics
  #echoesRefused = 0

  /** onError: a socket error (a send the kernel refused), reported, not thrown: the server runs on. */
  constructor(options: ServerOptions, onError: (report: ServerErrorReport) => void) {
    this.server = new Server(options)
    this.metrics = new ServerMetrics(this.server)
    this.server.on('message', (peer, data, channel) => {
      if (peer.connected && !peer.send(data, { channel })) this.#echoesRefused++ // echo, on its channel, while the server runs
    })
    this.server.on('error', (error: Error & { code?: string }) => onError({ event: 'error', code: error.code, message: error.message }))
  }

  /**
   * Listens, a port in use said with what to do: another process holds it (a server still running, or one
   * that just stopped), unless every server on it asks to share it.
   */
  async listen(): Promise<{ port: number }> {
    try {
      return await this.server.listen()
    } catch (error) {
      const code = (error as { code?: unknown }).code
      if (code !== 'EADDRINUSE') throw error
      throw Object.assign(
        new Error(`${(error as Error).message}: another process holds this port; stop it or give another --address (--reuse-port shares a port on purpose, among servers that all give it)`),
        { code },
      )
    }
  }

  /** Disconnects every client (close() sends the redundant disconnects, for about a second) and reports. */
  async stop(): Promise<StoppedReport> {
    const connectedAtStop = this.server.stats().connectedClients // close() disconnects them
    await this.server.close()
    this.metrics.close()
    return { connectedAtStop, echoesRefused: this.#echoesRefused, stats: this.server.stats() }
  }
}
