// `volley serve --workers N`, the main thread's side: N worker threads (serve-worker.ts), each an echo server
// on the same address with SO_REUSEPORT (the kernel spreads the clients over them), asked for their metrics
// by message and summed, and stopped together.
import { Worker } from 'node:worker_threads'
import type { ServerOptions } from '../index.ts'
import { type MetricSnapshot, mergeMetricSnapshots } from '../metrics/index.ts'
import type { ServerErrorReport, StoppedReport } from './echo-server.ts'

/** The main thread's messages to a worker. */
export type ToWorker = { type: 'snapshot'; id: number } | { type: 'stop' }

/** A worker's messages to the main thread. */
export type FromWorker =
  | { type: 'listening'; port: number; publicAddress: string | null; engine: 'native' | 'fallback' }
  | { type: 'failed'; message: string; code: string | undefined }
  | { type: 'error'; report: ServerErrorReport }
  | { type: 'snapshot'; id: number; snapshot: MetricSnapshot }
  | { type: 'snapshot'; id: number; error: string }
  | { type: 'stopped'; report: StoppedReport }

/** How long a worker has to answer for its metrics, and to stop (close() takes about a second), ms. */
const snapshotTimeoutMs = 5000
const stopTimeoutMs = 10_000

/**
 * The worker's module beside this one. Run from the sources (.ts, under tsx), a worker does not inherit tsx's
 * hooks on Node 20: it registers them first, then imports the module.
 */
function startWorker(options: ServerOptions): Worker {
  const source = import.meta.url.endsWith('.ts')
  const entry = new URL(source ? './serve-worker.ts' : './serve-worker.js', import.meta.url)
  if (!source) return new Worker(entry, { workerData: options })
  const tsx = import.meta.resolve('tsx/esm/api')
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}) })`
  return new Worker(bootstrap, { eval: true, workerData: options })
}

type Listening = Extract<FromWorker, { type: 'listening' }>

class ServeWorker {
  readonly index: number
  readonly worker: Worker
  /** Its first message: listening, or why not (a failed listen; the thread's 'error' event: it failed to start). */
  readonly listening: Promise<Listening>
  readonly exited: Promise<number>
  /** Its socket errors, from its listening on. */
  onError: (report: ServerErrorReport) => void = () => {}
  /** What made it end, if it threw. */
  failure: Error | undefined
  readonly #pending = new Map<number, { resolve: (snapshot: MetricSnapshot) => void; reject: (error: Error) => void }>()
  #nextId = 0
  #stopped: ((report: StoppedReport) => void) | undefined

  constructor(index: number, options: ServerOptions) {
    this.index = index
    this.worker = startWorker(options)
    this.exited = new Promise((resolve) => this.worker.once('exit', resolve))
    let listened: (message: Listening) => void = () => {}
    let failed: (error: Error) => void = () => {}
    this.listening = new Promise((resolve, reject) => {
      listened = resolve
      failed = reject
    })
    this.listening.catch(() => {}) // start() reads it; a failure after another's is not unhandled
    this.worker.on('error', (error) => {
      this.failure = error
      failed(error)
    })
    this.worker.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'listening':
          return listened(message)
        case 'failed':
          return failed(Object.assign(new Error(message.message), message.code === undefined ? {} : { code: message.code }))
        case 'error':
          return this.onError(message.report)
        case 'stopped':
          return this.#stopped?.(message.report)
        case 'snapshot': {
          const pending = this.#pending.get(message.id)
          this.#pending.delete(message.id)
          if ('error' in message) pending?.reject(new Error(`worker ${this.index}: ${message.error}`))
          else pending?.resolve(message.snapshot)
        }
      }
    })
  }

  snapshot(): Promise<MetricSnapshot> {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`worker ${this.index} did not send its metrics within ${snapshotTimeoutMs / 1000} s`))
      }, snapshotTimeoutMs)
      const settle = (): void => clearTimeout(timer)
      this.#pending.set(id, {
        resolve: (snapshot) => (settle(), resolve(snapshot)),
        reject: (error) => (settle(), reject(error)),
      })
      this.worker.postMessage({ type: 'snapshot', id } satisfies ToWorker)
    })
  }

  /** Stops its server (its clients disconnected), then the thread ends; one that does not within 10 s is terminated. */
  async stop(): Promise<StoppedReport | undefined> {
    const stopped = new Promise<StoppedReport | undefined>((resolve) => {
      this.#stopped = resolve
      void this.exited.then(() => resolve(undefined)) // ended on its own (it failed): nothing to report
    })
    this.worker.postMessage({ type: 'stop' } satisfies ToWorker)
    let timer: NodeJS.Timeout | undefined
    const report = await Promise.race([stopped, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), stopTimeoutMs)))])
    clearTimeout(timer)
    if (report === undefined) await this.worker.terminate()
    await this.exited
    return report
  }
}

/** N servers on one port, a worker thread each. */
export class ServeWorkers {
  readonly #workers: ServeWorker[]
  /** The first worker's listening message: the port and public address they share, and the engine. */
  readonly listening: Listening
  #stopping = false

  private constructor(workers: ServeWorker[], listening: Listening) {
    this.#workers = workers
    this.listening = listening
  }

  /**
   * Starts `count` workers and resolves once each listens. onError: a worker's socket error; onFailure: a
   * worker that ended while it should be serving (it threw). Rejects with the first worker's failure to
   * listen (a port in use), every worker ended first.
   */
  static async start(count: number, options: ServerOptions, onError: (worker: number, report: ServerErrorReport) => void, onFailure: (error: Error) => void): Promise<ServeWorkers> {
    const workers = Array.from({ length: count }, (_, index) => new ServeWorker(index, options))
    const results = await Promise.allSettled(workers.map((worker) => worker.listening))
    const failure = results.find((result) => result.status === 'rejected')
    if (failure !== undefined || results[0]?.status !== 'fulfilled') {
      await Promise.all(workers.map((worker) => worker.stop()))
      throw failure?.reason
    }
    const served = new ServeWorkers(workers, results[0].value)
    for (const worker of workers) {
      worker.onError = (report) => onError(worker.index, report)
      void worker.exited.then((code) => {
        if (served.#stopping) return
        onFailure(new Error(`worker ${worker.index} ${worker.failure === undefined ? `ended (exit code ${code})` : `failed: ${worker.failure.message}`} while serving`))
      })
    }
    return served
  }

  get count(): number {
    return this.#workers.length
  }

  /** The workers' metrics, summed (mergeMetricSnapshots). */
  async snapshot(): Promise<MetricSnapshot> {
    return mergeMetricSnapshots(...(await Promise.all(this.#workers.map((worker) => worker.snapshot()))))
  }

  /** Stops every worker's server, together; the reports of those that stopped. */
  async stop(): Promise<StoppedReport[]> {
    this.#stopping = true
    const reports = await Promise.all(this.#workers.map((worker) => worker.stop()))
    return reports.filter((report) => report !== undefined)
  }
}
