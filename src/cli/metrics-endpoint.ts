// `volley serve --metrics-address`: an HTTP endpoint, bound where asked only, for a Prometheus scrape
// (GET /metrics, from one metric snapshot per scrape: the server's, or the sum of the workers') and a health
// check (GET /healthz: 200 while serving, 503 while stopping).
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { MetricSnapshot } from '../metrics/index.ts'

/** What /healthz answers. */
export interface Health {
  status: 'listening' | 'stopping'
  engine: 'native' | 'fallback'
  workers: number
  connectedClients: number
}

/** The Prometheus exporter, and prom-client's registry: loaded only for an endpoint, as prom-client is optional. */
type Prometheus = {
  registerPrometheusMetrics: typeof import('../metrics/prometheus.ts').registerPrometheusMetrics
  Registry: typeof import('prom-client').Registry
}

/**
 * Loads the Prometheus exporter, refusing clearly where prom-client (an optional peer dependency) is not
 * installed: serve fails as it starts, not at the first scrape.
 */
export async function loadPrometheus(setting: string): Promise<Prometheus> {
  try {
    const [{ registerPrometheusMetrics }, { Registry }] = await Promise.all([import('../metrics/prometheus.ts'), import('prom-client')])
    return { registerPrometheusMetrics, Registry }
  } catch (error) {
    const code = (error as { code?: unknown }).code
    if (code !== 'ERR_MODULE_NOT_FOUND' || !(error as Error).message.includes("'prom-client'")) throw error
    throw Object.assign(new Error(`${setting} needs prom-client, which is not installed: npm install prom-client`), { code })
  }
}

export class MetricsEndpoint {
  readonly #http: ReturnType<typeof createServer>
  readonly #close: () => void
  /** The port it listens on (the one asked for, or the one port 0 got). */
  readonly port: number

  private constructor(http: ReturnType<typeof createServer>, close: () => void) {
    this.#http = http
    this.#close = close
    this.port = (http.address() as AddressInfo).port
  }

  /**
   * Listens at host:port. snapshot: the metrics now (each scrape takes one); health: what /healthz says.
   * A port in use rejects with EADDRINUSE, said with the setting to change.
   */
  static async start(address: { host: string; port: number; from: string }, prometheus: Prometheus, snapshot: () => MetricSnapshot | Promise<MetricSnapshot>, health: () => Promise<Health>): Promise<MetricsEndpoint> {
    const registry = new prometheus.Registry()
    const registration = prometheus.registerPrometheusMetrics(snapshot, { registry })
    const http = createServer((request, response) => void answer(request, response, registry, health))
    try {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject)
        http.listen({ host: address.host, port: address.port }, () => {
          http.off('error', reject)
          resolve()
        })
      })
    } catch (error) {
      registration.close()
      const code = (error as { code?: unknown }).code
      if (code !== 'EADDRINUSE') throw error
      throw Object.assign(new Error(`${(error as Error).message}: another process holds this port; give another ${address.from}`), { code })
    }
    return new MetricsEndpoint(http, () => registration.close())
  }

  /** Stops listening, and ends the connections kept alive (a scraper's). */
  async close(): Promise<void> {
    this.#close()
    const closed = new Promise<void>((resolve) => this.#http.close(() => resolve()))
    this.#http.closeAllConnections()
    await closed
  }
}

type Registry = InstanceType<Prometheus['Registry']>

async function answer(request: IncomingMessage, response: ServerResponse, registry: Registry, health: () => Promise<Health>): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://endpoint').pathname
  if (path !== '/metrics' && path !== '/healthz') return send(response, 404, 'text/plain; charset=utf-8', 'Not found: GET /metrics or /healthz\n')
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD')
    return send(response, 405, 'text/plain; charset=utf-8', 'Method not allowed: GET\n')
  }
  try {
    if (path === '/metrics') return send(response, 200, registry.contentType, await registry.metrics())
    const state = await health()
    return send(response, state.status === 'listening' ? 200 : 503, 'application/json', `${JSON.stringify(state)}\n`)
  } catch (error) {
    // A worker that did not answer: the scrape fails, and says why (the endpoint serves on).
    return send(response, 500, 'text/plain; charset=utf-8', `${(error as Error).message}\n`)
  }
}

function send(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' })
  response.end(response.req.method === 'HEAD' ? undefined : body)
}
