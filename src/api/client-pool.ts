// A load generator: many clients, each with a socket of its own, all on one engine thread. Used by the
// benchmarks and the tests, and by `volley load`.
import { setMaxListeners } from 'node:events'
import { Client, type ClientOptions, type ClientDisconnectReason, clientOptionNames } from './client.ts'
import { type Engine, dedicatedEngine, useDedicatedEngine } from '../engine/engine.ts'
import { VolleyRangeError, VolleyTypeError, type VolleyErrorCode, abortedError, checkSignal, describe } from '../util/errors.ts'
import { checkOptions, integerOption, uint8ArrayOf } from '../util/options.ts'
import { copyBytes, goneBytes, isDetached } from '../util/bytes.ts'
import { LifetimeSignal } from '../util/lifetime-signal.ts'
import { SendQueue, deliverySettings } from './channels.ts'

const connectOptionNames: ReadonlySet<string> = new Set(['concurrency', 'signal'])

/** A connect token: its 2048 bytes, or their base64. */
export type ConnectTokenLike = Uint8Array | string

/**
 * Connect tokens made as the attempts need them, rather than all at once beforehand (100,000 tokens made
 * ahead take seconds and hundreds of MiB, and each must outlive every attempt before its own): make(index)
 * is called once for each index from 0 to count − 1, in order, when a handshake slot is free for it.
 */
export interface ConnectTokenSource {
  readonly count: number
  make(index: number): ConnectTokenLike | PromiseLike<ConnectTokenLike>
}

/** The most tokens a source may give: the bound of an array's length. */
const maxSourceCount = 2 ** 32 - 1

/**
 * Counts or texts by error code: volley's codes (named, for completion), a system error's (EMFILE, ...) or
 * `unknown` for a failure without one. A code that never came is absent, not 0.
 */
export type ByErrorCode<T> = Partial<Record<VolleyErrorCode | (string & {}), T>>

/** What pool.stats() returns. */
export interface ClientPoolStats {
  /** Clients that connected, those whose connection has ended since included. */
  clients: number
  /** Clients connected now. */
  connected: number
  /** Clients whose connection ended after it was established, by reason (not those the pool's close() ended). */
  ended: Partial<Record<ClientDisconnectReason, number>>
  /** Connection attempts that failed, by error code. */
  failed: ByErrorCode<number>
  /** For each code in `failed`, the message of its first failure: what it means and its likely causes. */
  failureMessages: ByErrorCode<string>
  /** Every client's datagrams (requests, keep-alives, payloads), those of attempts under way and failed included. */
  packets: { in: number; out: number }
  bytes: { in: number; out: number }
  /** Datagrams the kernel dropped: the clients' receive buffers were full (a saturated pool), or their send buffers. */
  drops: { receiveBufferFull: number; sendBufferFull: number }
  messagesReceived: number
  /** Messages broadcast() did not queue because a client's send queue was full (its send() returned false). */
  sendsRefused: number
  /**
   * Messages broadcast() did not send because a client's send() threw, by code: a message over the maximum
   * its server announced (servers of different settings), memory refused for a large one.
   */
  sendsFailed: ByErrorCode<number>
  /** Errors the clients' sockets reported as 'error' events (a receive the kernel failed), by code. */
  errors: ByErrorCode<number>
  /** Datagrams the kernel refused to send (an unreachable address, ...): as `client.stats().errors.send` counts them. */
  sendErrors: number
}

/** The counters stats() sums over clients. */
type ClientTotals = Pick<ClientPoolStats, 'packets' | 'bytes' | 'drops' | 'sendErrors'>

function emptyTotals(): ClientTotals {
  return { packets: { in: 0, out: 0 }, bytes: { in: 0, out: 0 }, drops: { receiveBufferFull: 0, sendBufferFull: 0 }, sendErrors: 0 }
}

function addClientTotals(totals: ClientTotals, client: Client): void {
  const stats = client.stats()
  totals.packets.in += stats.packets.in
  totals.packets.out += stats.packets.out
  totals.bytes.in += stats.bytes.in
  totals.bytes.out += stats.bytes.out
  totals.drops.receiveBufferFull += stats.drops.receiveBufferFull
  totals.drops.sendBufferFull += stats.drops.sendBufferFull
  totals.sendErrors += stats.errors.send
}

/**
 * Many clients at once, each with a socket of its own, all on one engine thread: a load generator. connect()
 * connects one client per token; broadcast() sends from each; stats() adds up their counters.
 */
export class ClientPool {
  readonly #options: ClientOptions
  readonly #clients: Client[] = []
  // Keyed by error codes, some from the caller's make(): records with no prototype, so that a code such as
  // 'constructor' or '__proto__' counts as any other.
  readonly #ended: Partial<Record<ClientDisconnectReason, number>> = {}
  readonly #failed: Record<string, number> = recordByCode()
  readonly #failureMessages: Record<string, string> = recordByCode()
  readonly #errors: Record<string, number> = recordByCode()
  /** Clients whose attempt is under way. */
  readonly #attempting = new Set<Client>()
  /**
   * The counters of clients that left the pool, as they were when they did: those whose attempt failed, and
   * those whose connection ended (closed then, so that a pool that replaces lost clients for weeks holds
   * the sockets and memory of the clients it has now, not of every one it ever had).
   */
  readonly #leftTotals = emptyTotals()
  /** Clients that connected, those that left since included. */
  #connectedOnce = 0
  #messagesReceived = 0
  #sendsRefused = 0
  readonly #sendsFailed: Record<string, number> = recordByCode()
  /** Aborts the attempts in flight when the pool closes. */
  readonly #closing = new AbortController()
  readonly #lifetime: LifetimeSignal
  /** Clients that failed or whose connection ended, still closing: close() waits for them. */
  readonly #retiring = new Set<Promise<void>>()
  /** connect() calls still running: close() waits for them. */
  readonly #running = new Set<Promise<unknown>>()
  /** With engine: 'dedicated', the pool's own engine: one thread for all its clients, not one per client. */
  #engine: Engine | undefined
  readonly #dedicatedEngine = (): Engine => {
    if (this.#engine === undefined || this.#engine.stopped) this.#engine = dedicatedEngine() // stops with its last socket
    return this.#engine
  }

  /** Clients made so far: the number of the next (each seeds its network simulator with its number). */
  #made = 0
  /** Checks broadcast()'s message as each client's send() does, so that it is checked with no client connected too. */
  readonly #messages: SendQueue

  /** options.signal closes the pool (its clients do not take it: the pool closes them). */
  constructor(options: ClientOptions = {}) {
    checkOptions('"options" argument', options, clientOptionNames) // before taking it apart: null, 5 or [] is refused
    const { signal, ...clientOptions } = options
    new Client(clientOptions) // the same checks as each client's, now rather than at connect()
    this.#lifetime = new LifetimeSignal(signal)
    // The caller's objects may change after: each client gets what was checked, nested options included.
    this.#options = {
      ...clientOptions,
      ...(options.channels !== undefined ? { channels: options.channels.map((channel) => ({ ...channel })) } : {}),
      ...(options.networkSimulator !== undefined ? { networkSimulator: { ...options.networkSimulator } } : {}),
    }
    this.#messages = new SendQueue(deliverySettings(this.#options), () => null, 0, 'the server')
    // Each connect() call listens to it while its attempts run: any number at once is no leak.
    setMaxListeners(0, this.#closing.signal)
    this.#lifetime.watch(() => void this.close())
  }

  /**
   * The options of the pool's next client. With a seeded network simulator, each client draws its own
   * random choices (one seed for all would make them lose the same packets at once): the first client
   * takes the seed given, client n a seed derived from it and n, so that a run repeats as a whole.
   */
  #nextClientOptions(): ClientOptions {
    const number = this.#made++
    const simulator = this.#options.networkSimulator
    if (simulator?.seed === undefined || number === 0) return this.#options
    return { ...this.#options, networkSimulator: { ...simulator, seed: clientSeed(simulator.seed, number) } }
  }

  /**
   * The clients connected (or whose connection is ending now): one whose connection ended is closed and
   * leaves the pool, its counts kept in stats(). Not a copy: the pool changes it as clients come and go.
   */
  get clients(): readonly Client[] {
    return this.#clients
  }

  /**
   * Connects one client per token, at most `concurrency` handshakes at a time. Resolves when every attempt
   * has ended; failures are counted (stats().failed), not thrown. options.signal aborting, or close(), ends
   * the attempts in flight (counted as ABORT_ERR; their clients finish closing afterwards, and close()
   * waits for them) and starts no more, resolving at once: the tokens never tried are
   * `skipped` (connected + failed + skipped = the tokens' count). A signal aborted already rejects with ABORT_ERR,
   * a token that is neither a Uint8Array nor a string with ERR_INVALID_ARG_TYPE, before any attempt.
   *
   * tokens: an array, or a source that makes each as its attempt starts (ConnectTokenSource). A token the
   * source fails to make (make() throws or rejects, or gives no Uint8Array or string) fails that attempt,
   * counted by the error's code (ERR_INVALID_ARG_TYPE for a wrong type; `unknown` for an error without a
   * string code, or a throw of something not an Error), as a token that does not parse does.
   */
  connect(tokens: readonly ConnectTokenLike[] | ConnectTokenSource, options: { concurrency?: number | undefined; signal?: AbortSignal | undefined } = {}): Promise<{ connected: number; failed: number; skipped: number; ms: number }> {
    try {
      checkOptions('"options" argument', options, connectOptionNames)
      checkSignal(options.signal)
      const source = tokenSource(tokens)
      const concurrency = integerOption('concurrency', options.concurrency, 256, 1, 1_000_000)
      // A signal aborted already first, as Node's own APIs and Client.connect() check it.
      if (options.signal?.aborted === true) throw abortedError('The connection attempts were aborted', options.signal)
      if (this.#closing.signal.aborted) throw this.#lifetime.closedError('ERR_CLIENT_CLOSED', 'The pool was closed; make a new ClientPool')
      // One signal for this call's attempts (each listens to it), aborted by the caller's or by the pool
      // closing, with that one's reason. Listened to for this call only: AbortSignal.any() on the pool's
      // long-lived signal, at every call of a pool that replaces lost clients, kept each composite alive
      // (and took no signal but the platform's own).
      const attempts = new AbortController()
      const sources = options.signal === undefined ? [this.#closing.signal] : [options.signal, this.#closing.signal]
      const listeners = sources.map((source) => {
        const listener = (): void => attempts.abort(source.reason)
        source.addEventListener('abort', listener, { once: true })
        return () => source.removeEventListener('abort', listener)
      })
      setMaxListeners(concurrency + 1, attempts.signal)
      const run = this.#connect(source, concurrency, attempts.signal)
      this.#running.add(run)
      void run
        .finally(() => {
          this.#running.delete(run)
          for (const unlisten of listeners) unlisten()
        })
        .catch(() => {})
      return run
    } catch (error) {
      return Promise.reject(error)
    }
  }

  async #connect(tokens: TokenSource, concurrency: number, signal: AbortSignal): Promise<{ connected: number; failed: number; skipped: number; ms: number }> {
    const started = performance.now()
    let next = 0
    let connected = 0
    let failed = 0
    const countFailure = (error: unknown): void => {
      failed++
      const code = errorCode(error)
      this.#failed[code] = (this.#failed[code] ?? 0) + 1
      this.#failureMessages[code] ??= failureMessage(error, code)
    }
    // Tokens a source fails to make at once, or that fail at once, take no I/O: without a turn of the event
    // loop now and then, a million of them would hold it (and the abort, and Ctrl-C) until the end. The
    // budget is the call's, not each worker's: the workers resume one after another in one turn, and with a
    // budget each, 256 of them held the loop for 2.6 s.
    let turnStarted = performance.now()
    let nextTurn: Promise<void> | undefined
    const yieldTurn = (): Promise<void> =>
      (nextTurn ??= new Promise<void>((resolve) =>
        setImmediate(() => {
          turnStarted = performance.now()
          nextTurn = undefined
          resolve()
        }),
      ))
    const worker = async (): Promise<void> => {
      while (next < tokens.count && !signal.aborted) {
        if (performance.now() - turnStarted > maxTurnMs) {
          await yieldTurn()
          continue // the other workers may have taken the last tokens meanwhile, or the signal aborted
        }
        const index = next++
        // Numbered as its index is taken, not as its token comes: a seeded simulator repeats whatever order
        // the source's promises settle in.
        const clientOptions = this.#nextClientOptions()
        let token: ConnectTokenLike
        try {
          const made = await tokens.take(index, signal)
          if (made === aborted) return // not tried: skipped
          token = made
        } catch (error) {
          countFailure(error)
          continue
        }
        const client = new Client(clientOptions)
        if (this.#options.engine === 'dedicated') useDedicatedEngine(client, this.#dedicatedEngine)
        client.on('message', () => this.#messagesReceived++)
        // Counted, not thrown: with no listener an 'error' event would throw out of the engine's dispatch.
        client.on('error', (error: Error) => {
          const code = errorCode(error)
          this.#errors[code] = (this.#errors[code] ?? 0) + 1
        })
        client.on('disconnect', (reason) => {
          // Those the pool's own close() ends are not counted: ended says which connections were lost.
          if (!this.#closing.signal.aborted) this.#ended[reason] = (this.#ended[reason] ?? 0) + 1
          this.#retire(client, () => {
            const index = this.#clients.indexOf(client)
            if (index >= 0) this.#clients.splice(index, 1)
          })
        })
        this.#attempting.add(client)
        try {
          await client.connect(token, { signal })
          this.#clients.push(client)
          this.#attempting.delete(client)
          connected++
          this.#connectedOnce++
        } catch (error) {
          countFailure(error)
          // Its counts stay: its requests, a token's unreachable address, ...
          const retired = this.#retire(client, () => this.#attempting.delete(client))
          // A failed attempt may owe the server its redundant disconnects (a second at 10 Hz). The next attempt
          // waits for them (the pool holds at most `concurrency` sockets), unless the signal aborts first: then
          // they go out after connect() has returned, as the abort asked for at once; close() waits for them.
          if (!signal.aborted) await settledOrAborted(retired, signal)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, tokens.count) }, worker))
    // Every token taken was tried (connected or failed) unless the abort came while it was being made.
    return { connected, failed, skipped: tokens.count - connected - failed, ms: performance.now() - started }
  }

  /**
   * Closes a client that leaves the pool (its attempt failed, or its connection ended); once it has closed,
   * its counts join #leftTotals and `leave` takes it out of the pool's sets. close() waits for it.
   */
  #retire(client: Client, leave: () => void): Promise<void> {
    const retired: Promise<void> = client
      .close()
      .then(() => {
        addClientTotals(this.#leftTotals, client)
        leave()
      })
      .finally(() => this.#retiring.delete(retired))
    this.#retiring.add(retired)
    return retired
  }

  /**
   * Sends data from every connected client; returns how many took it. A client whose send() throws is
   * counted (stats().sendsFailed) and the others still send; when none took it or refused it for a full
   * queue (every server announced a smaller maximum), the first client's error is thrown.
   */
  broadcast(data: Uint8Array): number {
    this.#messages.check(data, undefined)
    if (this.#closing.signal.aborted) return 0 // closing clients refuse sends
    let sent = 0
    let refused = 0
    let failure: unknown
    for (const client of this.#clients) {
      if (client.state !== 'connected') continue
      try {
        if (client.send(data)) sent++
        else refused++
      } catch (error) {
        const code = errorCode(error)
        // A client closed on its own (pool.clients) says 'connected' until its disconnects have gone out.
        if (code === 'ERR_CLIENT_CLOSED') continue
        // Thrown at once, it left the clients after this one without the message, and the caller without
        // the count of those before.
        this.#sendsFailed[code] = (this.#sendsFailed[code] ?? 0) + 1
        failure ??= error
      }
    }
    this.#sendsRefused += refused
    if (failure !== undefined && sent === 0 && refused === 0) throw failure
    return sent
  }

  /** Totals over every client the pool made: connections, failures by code, packets, bytes and drops. */
  stats(): ClientPoolStats {
    const left = this.#leftTotals
    const totals: ClientTotals = { packets: { ...left.packets }, bytes: { ...left.bytes }, drops: { ...left.drops }, sendErrors: left.sendErrors }
    let connected = 0
    for (const client of this.#clients) {
      if (client.state === 'connected') connected++
      addClientTotals(totals, client)
    }
    for (const client of this.#attempting) addClientTotals(totals, client)
    return {
      clients: this.#connectedOnce,
      connected,
      ended: { ...this.#ended },
      failed: { ...this.#failed },
      failureMessages: { ...this.#failureMessages },
      ...totals,
      messagesReceived: this.#messagesReceived,
      sendsRefused: this.#sendsRefused,
      sendsFailed: { ...this.#sendsFailed },
      errors: { ...this.#errors },
    }
  }

  /** Ends the attempts in flight, then closes every client (each sends its redundant disconnects). */
  async close(): Promise<void> {
    this.#lifetime.release()
    this.#closing.abort()
    await Promise.allSettled([...this.#running])
    await Promise.all([...this.#clients.map((client) => client.close()), ...this.#retiring])
  }
}

/** A seed for client `number` of a pool seeded with `seed`: splitmix64's mix of the two, in 0 .. 2^53 − 1. */
function clientSeed(seed: number, number: number): number {
  const mask = (1n << 64n) - 1n
  let z = (BigInt(seed) + BigInt(number) * 0x9e3779b97f4a7c15n) & mask
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask
  return Number((z ^ (z >> 31n)) >> 11n)
}

/** The likely cause of a system error a pool's client met, where the code alone does not say it. */
const systemErrorCauses: ReadonlyMap<string, string> = new Map([
  ['EMFILE', 'this process is out of file descriptors: each client has a socket of its own; raise the limit (ulimit -n, systemd LimitNOFILE)'],
  ['ENFILE', 'the system is out of file descriptors: each client has a socket of its own; raise fs.file-max'],
  ['ENOBUFS', 'the kernel is out of socket buffer memory'],
  ['ENOMEM', 'the kernel or this process is out of memory'],
])

/** failureMessages' text: a connect error's own message says what it means; a system error's gets its cause. */
function failureMessage(error: unknown, code: string): string {
  const message = error instanceof Error ? error.message : String(error)
  const cause = systemErrorCauses.get(code)
  return cause === undefined ? message : `${message}: ${cause}`
}

/** The longest a worker runs without a turn of the event loop, in ms. */
const maxTurnMs = 10

/** Records keyed by error codes: no prototype, so that no code is taken for one of its properties. */
function recordByCode<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>
}

/** The code a failure is counted under: its `code` where that is a string, `unknown` otherwise. */
function errorCode(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' && code !== '' ? code : 'unknown'
}

/**
 * connect()'s tokens, whichever form they came in: take(index) gives the token for an index, owned by the
 * pool (the caller may reuse or wipe its own), or `aborted` when the signal aborts while it is being made.
 */
interface TokenSource {
  readonly count: number
  take(index: number, signal: AbortSignal): Promise<ConnectTokenLike | typeof aborted>
}

const aborted: unique symbol = Symbol('aborted')

/**
 * The source of connect()'s tokens. An array's are checked now (a token of the wrong type is a mistake in
 * the call, not a connection that failed: refused before any attempt; a Uint8Array or string that is no
 * token fails its attempt with ERR_INVALID_CONNECT_TOKEN) and copied: the attempts read them later, and the
 * caller may wipe or reuse its own once connect() returns. A source's properties are read once, now.
 */
function tokenSource(tokens: unknown): TokenSource {
  if (Array.isArray(tokens)) {
    const misfit = tokens.findIndex((token: unknown) => typeof token !== 'string' && uint8ArrayOf(token) === undefined)
    if (misfit >= 0) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `tokens[${misfit}] must be a connect token (a Uint8Array of 2048 bytes, or its base64). Received ${describe(tokens[misfit])}`)
    }
    const owned = tokens.map((token: ConnectTokenLike) => (typeof token === 'string' ? token : ownedBytes(uint8ArrayOf(token)!)))
    return { count: owned.length, take: (index) => Promise.resolve(owned[index]!) }
  }
  if (typeof tokens !== 'object' || tokens === null) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "tokens" argument must be an array of connect tokens, or a source of them ({ count, make(index) }). Received ${describe(tokens)}`)
  }
  const source = tokens as { count?: unknown; make?: unknown }
  const make = source.make
  if (typeof make !== 'function') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "tokens.make" property must be a function that gives the connect token for an index. Received ${describe(make)}`)
  }
  const count = source.count
  if (typeof count !== 'number') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "tokens.count" property must be of type number: how many tokens make() gives. Received ${describe(count)}`)
  }
  if (!Number.isInteger(count) || count < 0 || count > maxSourceCount) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "tokens.count" property must be an integer from 0 to ${maxSourceCount}: how many tokens make() gives. Received ${count}`)
  }
  return { count, take: (index, signal) => madeToken(() => make.call(tokens, index) as unknown, index, signal) }
}

/**
 * The token a source's make() gives for an index, owned by the pool: one given at once is copied at once
 * (the source may reuse its buffer for the next call), one given through a promise as the promise settles.
 * A throw, a rejection or a value that is no token rejects (a throw of something not an Error becomes one).
 * `aborted` when the signal aborts first, or make() aborted it; a late result is then dropped, a late
 * rejection handled.
 */
function madeToken(make: () => unknown, index: number, signal: AbortSignal): Promise<ConnectTokenLike | typeof aborted> {
  let made: unknown
  try {
    made = make()
  } catch (error) {
    return signal.aborted ? Promise.resolve(aborted) : Promise.reject(makeFailure(error, index))
  }
  if (!isPromiseLike(made)) {
    if (signal.aborted) return Promise.resolve(aborted)
    try {
      return Promise.resolve(ownedToken(made, index))
    } catch (error) {
      return Promise.reject(error)
    }
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(aborted)
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    Promise.resolve(made).then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        try {
          resolve(ownedToken(value, index))
        } catch (error) {
          reject(error)
        }
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(makeFailure(error, index))
      },
    )
  })
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

/** What a make() threw or rejected with, as an error to count: an Error as it is, anything else wrapped. */
function makeFailure(error: unknown, index: number): unknown {
  if (error instanceof Error) return error
  return new Error(`tokens.make(${index}) threw or rejected with ${describe(error)}, not an Error`)
}

/** A token a source made, checked and copied. */
function ownedToken(made: unknown, index: number): ConnectTokenLike {
  if (typeof made === 'string') return made
  const bytes = uint8ArrayOf(made)
  if (bytes === undefined) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `tokens.make(${index}) must give a connect token (a Uint8Array of 2048 bytes, or its base64). Received ${describe(made)}`)
  }
  return ownedBytes(bytes)
}

/**
 * A token's bytes as the pool keeps them: a copy, or a view of its own whose bytes are gone too when the
 * caller's are (its attempt fails with connect()'s error for it, as any token that is none; the caller's
 * view is not kept: a shrunk resizable buffer may grow again, with other bytes).
 */
function ownedBytes(bytes: Uint8Array): Uint8Array {
  return isDetached(bytes) ? goneBytes() : copyBytes(bytes)
}

/** Resolves when `work` settles or `signal` aborts, whichever comes first (its abort listener then goes). */
function settledOrAborted(work: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const onAbort = (): void => resolve()
    signal.addEventListener('abort', onAbort, { once: true })
    const settled = (): void => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }
    work.then(settled, settled) // its failure is the caller's to see (close() awaits it), not this wait's
  })
}
