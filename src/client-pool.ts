// A load generator: many clients, each with a socket of its own, all on one engine thread. Used by the
// benchmarks and the tests, and by `volley load`.
import { Client, type ClientOptions, type ClientState } from './client.ts'
import { VolleyRangeError, describe } from './errors.ts'

export interface ClientPoolStats {
  clients: number
  connected: number
  /** Clients whose connection ended after it was established, by final state. */
  ended: Partial<Record<ClientState, number>>
  /** Connection attempts that failed, by error code. */
  failed: Record<string, number>
  packets: { in: number; out: number }
  bytes: { in: number; out: number }
  messagesReceived: number
}

export class ClientPool {
  readonly #options: ClientOptions
  readonly #clients: Client[] = []
  readonly #ended: Partial<Record<ClientState, number>> = {}
  readonly #failed: Record<string, number> = {}
  #messagesReceived = 0

  constructor(options: ClientOptions = {}) {
    this.#options = options
  }

  get clients(): readonly Client[] {
    return this.#clients
  }

  /**
   * Connects one client per token, at most `concurrency` handshakes at a time. Resolves when every attempt
   * has ended; failures are counted (stats().failed), not thrown.
   */
  async connect(tokens: readonly (Uint8Array | string)[], options: { concurrency?: number; signal?: AbortSignal } = {}): Promise<{ connected: number; failed: number; ms: number }> {
    const concurrency = options.concurrency ?? 256
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "concurrency" option must be a positive integer. Received ${describe(concurrency)}`)
    }
    const started = performance.now()
    let next = 0
    let connected = 0
    let failed = 0
    const worker = async (): Promise<void> => {
      while (next < tokens.length) {
        const token = tokens[next++] as Uint8Array | string
        const client = new Client(this.#options)
        client.on('message', () => this.#messagesReceived++)
        client.on('disconnect', (state) => {
          this.#ended[state] = (this.#ended[state] ?? 0) + 1
        })
        try {
          await client.connect(token, { signal: options.signal })
          this.#clients.push(client)
          connected++
        } catch (error) {
          failed++
          const code = (error as { code?: string }).code ?? 'unknown'
          this.#failed[code] = (this.#failed[code] ?? 0) + 1
          await client.close()
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, tokens.length) }, worker))
    return { connected, failed, ms: performance.now() - started }
  }

  /** Sends data from every connected client; returns how many took it. */
  broadcast(data: Uint8Array): number {
    let sent = 0
    for (const client of this.#clients) if (client.state === 'connected' && client.send(data)) sent++
    return sent
  }

  stats(): ClientPoolStats {
    const totals = { packets: { in: 0, out: 0 }, bytes: { in: 0, out: 0 } }
    let connected = 0
    for (const client of this.#clients) {
      if (client.state === 'connected') connected++
      const stats = client.stats()
      totals.packets.in += stats.packets.in
      totals.packets.out += stats.packets.out
      totals.bytes.in += stats.bytes.in
      totals.bytes.out += stats.bytes.out
    }
    return { clients: this.#clients.length, connected, ended: { ...this.#ended }, failed: { ...this.#failed }, ...totals, messagesReceived: this.#messagesReceived }
  }

  async close(): Promise<void> {
    await Promise.all(this.#clients.map((client) => client.close()))
  }
}
