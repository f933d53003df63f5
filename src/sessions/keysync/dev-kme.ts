// A development KME of ETSI GS QKD 014 V1.1.1 for a set of SAEs: the three API methods over HTTPS with
// mutual TLS, key pools per (master, slave) pair refilled at a set rate, and the specification's error
// messages. One process plays both KMEs of a QKD link: what a master gets, its slaves get from the same
// server. Keys come from node:crypto's randomBytes: this is for development and tests, not a QKD network.
import { randomBytes, randomUUID } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { isIP } from 'node:net'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { VolleyRangeError, VolleyTypeError, describe } from '../../util/errors.ts'
import { booleanOption, checkOptions, integerOption, numberOption } from '../../util/options.ts'
import type { DevCertificates, DevCredential } from './dev-credentials.ts'
import { KME_API_PREFIX, KME_MESSAGES, type KmeStatus, devSaeIdsProblem, encodeBase64, isJsonContentType, isJsonObject, parseJsonBody } from './kme-wire.ts'

/** The CA, the KME's server certificate and key, and a client certificate and key per SAE (`clients`, by SAE ID). */
export type DevKmeCertificates = DevCertificates

export interface DevKmeOptions {
  /** The SAEs this KME serves (at least 2): each gets a client certificate whose subject CN is its ID. */
  saeIds: readonly string[]
  /** The KME's ID, in Get status as source_KME_ID and target_KME_ID (default 'volley-dev-kme'). */
  kmeId?: string | undefined
  /** The address to listen on (default 127.0.0.1) and the port (default 0: any free one). */
  host?: string | undefined
  port?: number | undefined
  /** The size of each key in the pools, bits (default 256). */
  keySize?: number | undefined
  /** The keys each (master, slave) pool starts with (default: maxKeyCount). */
  storedKeyCount?: number | undefined
  /** The most keys a pool holds (default 100,000). */
  maxKeyCount?: number | undefined
  /**
   * The most keys one Get key or Get key with key IDs may ask for (default 128). Its largest Get key (this
   * many keys of maxKeySize) must fit in maxDeliveredBytes.
   */
  maxKeyPerRequest?: number | undefined
  /** The smallest and largest key a Get key may ask for, bits, multiples of 8 (defaults 64 and 8192). */
  minKeySize?: number | undefined
  maxKeySize?: number | undefined
  /** The most additional_slave_SAE_IDs a Get key may name (default: every SAE but the master and the slave). */
  maxSaeIdCount?: number | undefined
  /** Keys per second added to each pool, up to maxKeyCount (default 1000; 0: none, a pool once empty stays so). */
  keyRate?: number | undefined
  /**
   * The most memory the keys delivered to masters and waiting for their slaves take, bytes: each key counts
   * its bytes plus 256 for its record (default 64 MiB). Beyond it the oldest are forgotten (and wiped).
   */
  maxDeliveredBytes?: number | undefined
  /** Refuse a Get key with extension_optional parameters this KME does not handle (400), rather than ignore them. */
  strictExtensionOptional?: boolean | undefined
  /** The certificates to serve with; made at start (an in-memory CA, valid for a day) when absent. */
  certificates?: DevKmeCertificates | undefined
}

/** What a KmeClient needs to act as one SAE of this KME. */
export interface DevKmeCredentials {
  url: string
  cert: string
  key: string
  ca: string
}

/** Counters of a DevKme's work since it started. */
export interface DevKmeStats {
  /** HTTP requests received. */
  requests: number
  /** Answers, by HTTP status. */
  responses: Record<number, number>
  /** Keys handed to masters (Get key) and to slaves (Get key with key IDs). */
  keysDelivered: number
  keysRetrieved: number
  /** TLS handshakes refused (no client certificate, one of another CA, ...). */
  tlsRefused: number
}

/** The files writeCredentials() wrote. */
export interface DevKmeFiles {
  /** The CA's certificate. */
  ca: string
  /** Each SAE's certificate and private key (mode 0600). */
  saes: Record<string, { cert: string; key: string }>
}

const optionNames: ReadonlySet<string> = new Set([
  'saeIds',
  'kmeId',
  'host',
  'port',
  'keySize',
  'storedKeyCount',
  'maxKeyCount',
  'maxKeyPerRequest',
  'minKeySize',
  'maxKeySize',
  'maxSaeIdCount',
  'keyRate',
  'maxDeliveredBytes',
  'strictExtensionOptional',
  'certificates',
])

/** The largest request body read, bytes: a Key request or Key IDs of maxKeyPerRequest keys fits many times over. */
const maxBodyBytes = 64 * 1024

/** The vendor extension parameter this KME handles (§6.2's abc_route_type, with our prefix): it has direct keys only. */
const routeTypeExtension = 'volley_route_type'

/**
 * What a delivered key's record costs beyond its bytes, roughly (its map entry, its ID, its sets of slaves):
 * counted in maxDeliveredBytes, so that many tiny keys cannot take far more memory than it says.
 */
const deliveredRecordBytes = 256

/**
 * How long a client may take over its TLS handshake, ms (node's default is 120 s): one that stalls holds a
 * socket, and the HTTP server's timeouts start only after the handshake.
 */
const handshakeTimeoutMs = 10_000

/** The most connections served at once (TLS handshakes included); more are closed as they come. */
const maxConnections = 1024

interface Pool {
  /** Keys of keySize bits, fractions of one accrued by keyRate. */
  count: number
  refilledMs: number
}

/** A key handed to a master, waiting for its slaves. */
interface Delivered {
  master: string
  /** Every slave the Get key named, and those that have not fetched it yet. */
  slaves: ReadonlySet<string>
  pending: Set<string>
  key: Buffer
}

/** A refusal: the status and the error body (§6.5). */
class Refusal {
  constructor(
    readonly status: number,
    readonly message: string,
    readonly details?: Record<string, unknown>[],
    readonly headers: Record<string, string> = {},
  ) {}
}

function positiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1
}

/** The settled options. */
interface Settings {
  saeIds: readonly string[]
  kmeId: string
  host: string
  port: number
  keySize: number
  storedKeyCount: number
  maxKeyCount: number
  maxKeyPerRequest: number
  minKeySize: number
  maxKeySize: number
  maxSaeIdCount: number
  keyRate: number
  maxDeliveredBytes: number
  strictExtensionOptional: boolean
}

function settle(options: DevKmeOptions): Settings {
  checkOptions('DevKme options', options, optionNames)
  const { saeIds } = options
  if (!Array.isArray(saeIds)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "saeIds" option must be an array of SAE IDs. Received ${describe(saeIds)}`)
  if (saeIds.length < 2) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "saeIds" option must name at least 2 SAEs (a master and a slave). Received ${saeIds.length}`)
  // The rules `volley kme` checks its --sae by too: an ID is also a path segment and a file name.
  const problem = devSaeIdsProblem(saeIds)
  if (problem !== undefined) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The SAE IDs of the "saeIds" option ${problem}`)
  const kmeId = options.kmeId ?? 'volley-dev-kme'
  if (typeof kmeId !== 'string' || kmeId.length === 0) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "kmeId" option must be a non-empty string. Received ${describe(kmeId)}`)
  const host = options.host ?? '127.0.0.1'
  if (typeof host !== 'string' || host.length === 0) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "host" option must be a non-empty string. Received ${describe(host)}`)
  const port = integerOption('port', options.port, 0, 0, 65535)
  const minKeySize = integerOption('minKeySize', options.minKeySize, 64, 8, 1 << 20)
  const maxKeySize = integerOption('maxKeySize', options.maxKeySize, Math.max(8192, minKeySize), minKeySize, 1 << 20)
  const keySize = integerOption('keySize', options.keySize, Math.min(Math.max(256, minKeySize), maxKeySize), minKeySize, maxKeySize)
  for (const [name, value] of [['minKeySize', minKeySize], ['maxKeySize', maxKeySize], ['keySize', keySize]] as const) {
    if (value % 8 !== 0) throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}" option must be a multiple of 8 (bits). Received ${value}`)
  }
  const maxKeyCount = integerOption('maxKeyCount', options.maxKeyCount, 100_000, 1, 1e9)
  const storedKeyCount = integerOption('storedKeyCount', options.storedKeyCount, maxKeyCount, 0, maxKeyCount)
  const maxKeyPerRequest = integerOption('maxKeyPerRequest', options.maxKeyPerRequest, 128, 1, 1e6)
  const maxSaeIdCount = integerOption('maxSaeIdCount', options.maxSaeIdCount, saeIds.length - 2, 0, saeIds.length - 2)
  const keyRate = numberOption('keyRate', options.keyRate, 1000, 0, 1e9, ' keys a second')
  const maxDeliveredBytes = integerOption('maxDeliveredBytes', options.maxDeliveredBytes, 64 << 20, 1, 2 ** 40)
  // The keys of one Get key must all wait for its slaves: the largest one must not push its own out.
  const largestRequestBytes = maxKeyPerRequest * (maxKeySize / 8 + deliveredRecordBytes)
  if (largestRequestBytes > maxDeliveredBytes) {
    throw new VolleyRangeError(
      'ERR_OUT_OF_RANGE',
      `The "maxKeyPerRequest" option (${maxKeyPerRequest}) allows a Get key of ${largestRequestBytes} bytes (keys of maxKeySize ${maxKeySize} bits, plus ${deliveredRecordBytes} bytes of record each), more than "maxDeliveredBytes" (${maxDeliveredBytes}) holds: lower maxKeyPerRequest or maxKeySize, or raise maxDeliveredBytes`,
    )
  }
  const strictExtensionOptional = booleanOption('strictExtensionOptional', options.strictExtensionOptional)
  return {
    saeIds: [...saeIds],
    kmeId,
    host,
    port,
    keySize,
    storedKeyCount,
    maxKeyCount,
    maxKeyPerRequest,
    minKeySize,
    maxKeySize,
    maxSaeIdCount,
    keyRate,
    maxDeliveredBytes,
    strictExtensionOptional,
  }
}

function checkCertificates(value: unknown, saeIds: readonly string[]): DevKmeCertificates {
  const pem = (text: unknown): boolean => typeof text === 'string' && text.includes('-----BEGIN')
  const candidate = value as Partial<DevKmeCertificates> | null
  if (typeof value !== 'object' || candidate === null || !pem(candidate.caCert) || !pem(candidate.serverCert) || !pem(candidate.serverKey)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "certificates" option must hold caCert, serverCert and serverKey (PEM). Received ${describe(value)}`)
  }
  const clients = candidate.clients ?? {}
  if (typeof clients !== 'object' || clients === null) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "certificates" option's clients must be an object. Received ${describe(clients)}`)
  for (const [id, credential] of Object.entries(clients)) {
    if (!saeIds.includes(id) || !pem(credential?.cert) || !pem(credential?.key)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "certificates" option's clients must be SAEs of "saeIds", each with cert and key (PEM). Received ${describe(id)}`)
    }
  }
  return { caCert: candidate.caCert!, serverCert: candidate.serverCert!, serverKey: candidate.serverKey!, clients: { ...clients } }
}

/** The names the server certificate carries for `host`: a wildcard address is reached on loopback. */
function serverNames(host: string): string[] {
  const wildcard = host === '0.0.0.0' || host === '::'
  const names = wildcard ? ['127.0.0.1', '::1', 'localhost'] : [host]
  if (host === '127.0.0.1' || host === '::1') names.push('localhost')
  return names
}

/** The base URL for `host`: a wildcard address as loopback, an IPv6 address in brackets. */
function baseUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `https://${isIP(reachable) === 6 ? `[${reachable}]` : reachable}:${port}`
}

/**
 * A development KME (ETSI GS QKD 014 V1.1.1) for a set of SAEs: its three API methods over HTTPS with mutual
 * TLS, and key pools refilled at a set rate. Keys come from node:crypto's randomBytes: for development and
 * tests, not for a QKD network.
 */
export class DevKme {
  readonly #settings: Settings
  readonly #server: https.Server
  readonly #saeIds: ReadonlySet<string>
  readonly #pools = new Map<string, Pool>()
  /** Keys delivered to masters, by key ID (lower case), oldest first; what they take, as maxDeliveredBytes counts it. */
  readonly #delivered = new Map<string, Delivered>()
  #deliveredBytes = 0
  /** Every TCP connection, from its accept: one still in its TLS handshake is no HTTP connection yet. */
  readonly #sockets: ReadonlySet<Socket>
  readonly #stats: DevKmeStats = { requests: 0, responses: {}, keysDelivered: 0, keysRetrieved: 0, tlsRefused: 0 }
  #closed: Promise<void> | undefined
  /** The base URL SAEs reach the KME at, https://host:port. */
  readonly url: string
  /** The CA, the server's certificate, and each SAE's client certificate and key. */
  readonly certificates: DevKmeCertificates

  /** Starts a KME: its certificates made (unless given), listening on host:port. */
  static async start(options: DevKmeOptions): Promise<DevKme> {
    const settings = settle(options)
    let certificates: DevKmeCertificates
    if (options.certificates !== undefined) {
      certificates = checkCertificates(options.certificates, settings.saeIds)
    } else {
      // Loaded here: @peculiar/x509 (and reflect-metadata, which patches Reflect) only for a KME that makes certificates.
      const { makeDevCa, issueDevCertificate } = await import('./dev-certificates.ts')
      const ca = await makeDevCa({ name: `${settings.kmeId} development CA` })
      const server = await issueDevCertificate(ca, settings.kmeId, { server: serverNames(settings.host) })
      const clients: Record<string, DevCredential> = {}
      for (const id of settings.saeIds) clients[id] = await issueDevCertificate(ca, id)
      certificates = { caCert: ca.cert, serverCert: server.cert, serverKey: server.key, clients }
    }
    const server = https.createServer({
      key: certificates.serverKey,
      cert: certificates.serverCert,
      ca: certificates.caCert,
      // Mutual authentication (§5.1): a client without a certificate of this CA is refused at the handshake.
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: handshakeTimeoutMs,
      headersTimeout: 10_000,
      requestTimeout: 30_000,
    })
    server.maxConnections = maxConnections
    const sockets = new Set<Socket>()
    server.on('connection', (socket: Socket) => {
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(settings.port, settings.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    return new DevKme(settings, server, sockets, certificates)
  }

  private constructor(settings: Settings, server: https.Server, sockets: ReadonlySet<Socket>, certificates: DevKmeCertificates) {
    this.#settings = settings
    this.#server = server
    this.#sockets = sockets
    this.#saeIds = new Set(settings.saeIds)
    this.certificates = certificates
    this.url = baseUrl(settings.host, (server.address() as AddressInfo).port)
    server.on('request', (request: IncomingMessage, response: ServerResponse) => this.#handle(request, response))
    // Counted only: node ends the connection itself, after the TLS alert that tells the client why. Not the
    // handshakes close() cuts short.
    server.on('tlsClientError', () => {
      if (this.#closed === undefined) this.#stats.tlsRefused++
    })
  }

  /** The port the KME listens on. */
  get port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? 0
  }

  /** The KME's ID (Get status's source_KME_ID and target_KME_ID). */
  get kmeId(): string {
    return this.#settings.kmeId
  }

  /** A copy of the counters. */
  get stats(): DevKmeStats {
    return { ...this.#stats, responses: { ...this.#stats.responses } }
  }

  /** The URL and TLS material of one SAE, as KmeClient takes them. */
  credentialsFor(saeId: string): DevKmeCredentials {
    const credential = Object.hasOwn(this.certificates.clients, saeId) ? this.certificates.clients[saeId] : undefined
    if (credential === undefined) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The DevKme has no certificate for SAE ${describe(saeId)}: its SAEs are ${[...this.#saeIds].join(', ')}`)
    }
    return { url: this.url, cert: credential.cert, key: credential.key, ca: this.certificates.caCert }
  }

  /**
   * Writes the CA's certificate (ca.pem) and each SAE's certificate and key (<SAE ID>.pem, <SAE ID>.key,
   * the key mode 0600) into `directory`, made with mode 0700 when missing. A directory that is a symbolic
   * link, or that other users may enter (group or other permission bits), is refused (ERR_INVALID_ARG_VALUE)
   * rather than changed: it may be one the user shares, such as the current one. Each file is written anew
   * and renamed into place: one that was there (or a symbolic link) is replaced, never written through. The
   * KME's own key is not written.
   */
  async writeCredentials(directory: string): Promise<DevKmeFiles> {
    if (typeof directory !== 'string' || directory.length === 0) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "directory" argument must be a non-empty string. Received ${describe(directory)}`)
    }
    await safeDirectory(directory)
    const files: DevKmeFiles = { ca: join(directory, 'ca.pem'), saes: {} }
    await writeNewFile(files.ca, this.certificates.caCert, 0o644)
    for (const [id, credential] of Object.entries(this.certificates.clients)) {
      const cert = join(directory, `${id}.pem`)
      const key = join(directory, `${id}.key`)
      await writeNewFile(cert, credential.cert, 0o644)
      await writeNewFile(key, credential.key, 0o600)
      files.saes[id] = { cert, key }
    }
    return files
  }

  /** Stops listening, ends every connection (those in their TLS handshake too), and wipes the keys held. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
      // closeAllConnections() knows HTTP connections only: a socket still in its TLS handshake would hold
      // close() up until the handshake timeout.
      for (const socket of this.#sockets) socket.destroy()
      for (const delivered of this.#delivered.values()) delivered.key.fill(0)
      this.#delivered.clear()
      this.#deliveredBytes = 0
    })
    return this.#closed
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    this.#stats.requests++
    this.#serve(request).then(
      (body) => this.#send(response, 200, body),
      (error: unknown) => {
        if (error instanceof Refusal) {
          const body: Record<string, unknown> = { message: error.message }
          if (error.details !== undefined) body.details = error.details
          this.#send(response, error.status, body, error.headers)
        } else {
          this.#send(response, 500, { message: 'internal error of the KME' })
        }
      },
    )
  }

  #send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.#stats.responses[status] = (this.#stats.responses[status] ?? 0) + 1
    if (response.destroyed || response.headersSent) return
    const text = Buffer.from(JSON.stringify(body), 'utf8')
    response.writeHead(status, { 'content-type': 'application/json', 'content-length': text.byteLength, ...headers })
    // Wiped once sent (keys, in base64): the JSON string itself is V8's, beyond reach.
    response.end(text, () => text.fill(0))
  }

  /** One request: the body of the 200 answer, or a Refusal. */
  async #serve(request: IncomingMessage): Promise<unknown> {
    let url: URL
    try {
      url = new URL(request.url ?? '/', 'https://kme.invalid')
    } catch {
      throw new Refusal(400, 'the request target is not a URL path')
    }
    const prefix = `${KME_API_PREFIX}/`
    const rest = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length).split('/') : []
    const method = rest[1]
    if (rest.length !== 2 || rest[0] === '' || (method !== 'status' && method !== 'enc_keys' && method !== 'dec_keys')) {
      throw new Refusal(404, `no such API method: ${url.pathname}`)
    }
    const allowed = method === 'status' ? ['GET'] : ['GET', 'POST']
    if (!allowed.includes(request.method ?? '')) throw new Refusal(405, `${method} takes ${allowed.join(' or ')}`, undefined, { allow: allowed.join(', ') })
    let saeId: string
    try {
      saeId = decodeURIComponent(rest[0]!)
    } catch {
      throw new Refusal(400, 'the SAE ID in the URL is not URL-encoded UTF-8')
    }
    // The caller, from its verified certificate (§5.1): the handshake already refused any other CA's.
    const socket = request.socket as TLSSocket
    const subject = socket.authorized ? socket.getPeerCertificate().subject : undefined
    const caller = typeof subject?.CN === 'string' && this.#saeIds.has(subject.CN) ? subject.CN : undefined
    if (caller === undefined) throw new Refusal(401, 'the client certificate names no SAE of this KME')
    const body = await this.#readBody(request)
    if (method === 'status') {
      this.#onlyParameters(url, [])
      if (body !== undefined) throw new Refusal(400, 'Get status takes no body')
      return this.#status(caller, this.#slave(caller, saeId))
    }
    if (method === 'enc_keys') {
      const slave = this.#slave(caller, saeId)
      if (request.method === 'GET') {
        if (body !== undefined) throw new Refusal(400, 'a Get key by GET takes no body: use POST')
        this.#onlyParameters(url, ['number', 'size'])
        const keyRequest: Record<string, unknown> = {}
        for (const name of ['number', 'size']) {
          const text = url.searchParams.get(name)
          if (text === null) continue
          if (!/^\d{1,15}$/.test(text)) throw new Refusal(400, `${name} must be a positive integer`)
          keyRequest[name] = Number(text)
        }
        return this.#getKeys(caller, slave, keyRequest)
      }
      this.#onlyParameters(url, [])
      return this.#getKeys(caller, slave, body ?? {})
    }
    if (request.method === 'GET') {
      if (body !== undefined) throw new Refusal(400, 'a Get key with key IDs by GET takes no body: use POST')
      this.#onlyParameters(url, ['key_ID'])
      const ids = url.searchParams.getAll('key_ID')
      if (ids.length !== 1) throw new Refusal(400, 'a Get key with key IDs by GET takes one key_ID parameter: use POST for more')
      return this.#getKeysWithIds(caller, saeId, ids)
    }
    this.#onlyParameters(url, [])
    return this.#getKeysWithIds(caller, saeId, this.#keyIds(body))
  }

  /** The body's JSON, or undefined when there is none; a Refusal for one too large, of another type, or not JSON. */
  async #readBody(request: IncomingMessage): Promise<unknown> {
    const declared = request.headers['content-length']
    // Refused as soon as it is known; node's server then reads the rest and drops it (the connection stays
    // usable, and the client, still sending, gets the answer rather than a reset).
    const tooLarge = new Refusal(400, `the request body is larger than ${maxBodyBytes} bytes`)
    if (declared !== undefined && Number(declared) > maxBodyBytes) throw tooLarge
    // Read by events, not by for await: leaving that loop early destroys the socket, and the answer with it.
    const chunks: Buffer[] = []
    let size = 0
    await new Promise<void>((resolve, reject) => {
      request.on('data', (chunk: Buffer) => {
        if (size > maxBodyBytes) return // refused already: the rest is dropped
        size += chunk.byteLength
        if (size > maxBodyBytes) reject(tooLarge)
        else chunks.push(chunk)
      })
      request.on('end', resolve)
      request.on('error', reject)
    })
    if (size === 0) return undefined
    if (!isJsonContentType(request.headers['content-type'])) throw new Refusal(400, 'the request body must be application/json (UTF-8)')
    const json = parseJsonBody(Buffer.concat(chunks, size))
    if (!json.ok) throw new Refusal(400, json.problem)
    return json.value
  }

  #onlyParameters(url: URL, allowed: readonly string[]): void {
    for (const name of url.searchParams.keys()) {
      if (!allowed.includes(name)) {
        throw new Refusal(400, allowed.length === 0 ? `this request takes no URL parameters (${name})` : `unknown URL parameter ${name}: this request takes ${allowed.join(', ')}`)
      }
    }
  }

  /** The slave named in the URL of Get status or Get key: another SAE of this KME. */
  #slave(master: string, slave: string): string {
    if (!this.#saeIds.has(slave)) throw new Refusal(400, `slave_SAE_ID ${slave} is not an SAE of this KME`)
    if (slave === master) throw new Refusal(400, 'the slave SAE must be another SAE than the master (the caller)')
    return slave
  }

  /** The pool of keys a master gets for a slave, refilled up to now. */
  #pool(master: string, slave: string): Pool {
    const key = `${master}\u0000${slave}`
    const now = performance.now()
    let pool = this.#pools.get(key)
    if (pool === undefined) {
      pool = { count: this.#settings.storedKeyCount, refilledMs: now }
      this.#pools.set(key, pool)
    }
    pool.count = Math.min(this.#settings.maxKeyCount, pool.count + ((now - pool.refilledMs) / 1000) * this.#settings.keyRate)
    pool.refilledMs = now
    return pool
  }

  #status(master: string, slave: string): KmeStatus {
    const s = this.#settings
    return {
      source_KME_ID: s.kmeId,
      target_KME_ID: s.kmeId,
      master_SAE_ID: master,
      slave_SAE_ID: slave,
      key_size: s.keySize,
      stored_key_count: Math.floor(this.#pool(master, slave).count),
      max_key_count: s.maxKeyCount,
      max_key_per_request: s.maxKeyPerRequest,
      max_key_size: s.maxKeySize,
      min_key_size: s.minKeySize,
      max_SAE_ID_count: s.maxSaeIdCount,
    }
  }

  /** Get key (§5.3, §6.2): the request checked in the order of its fields, then keys drawn from the pool. */
  #getKeys(master: string, slave: string, request: unknown): unknown {
    const s = this.#settings
    if (!isJsonObject(request)) throw new Refusal(400, 'the key request must be a JSON object')
    for (const name of Object.keys(request)) {
      if (!['number', 'size', 'additional_slave_SAE_IDs', 'extension_mandatory', 'extension_optional'].includes(name)) {
        throw new Refusal(400, `the key request has no field ${name}`)
      }
    }
    const number = request.number ?? 1
    if (!positiveInteger(number)) throw new Refusal(400, 'number must be a positive integer')
    if (number > s.maxKeyPerRequest) throw new Refusal(400, 'number is larger than max_key_per_request', [{ max_key_per_request: s.maxKeyPerRequest }])
    const size = request.size ?? s.keySize
    if (!positiveInteger(size)) throw new Refusal(400, 'size must be a positive integer (bits)')
    if (size % 8 !== 0) throw new Refusal(400, KME_MESSAGES.sizeNotMultipleOf8)
    if (size < s.minKeySize || size > s.maxKeySize) throw new Refusal(400, 'size is out of range', [{ min_key_size: s.minKeySize }, { max_key_size: s.maxKeySize }])
    const additional = request.additional_slave_SAE_IDs ?? []
    if (!Array.isArray(additional) || !additional.every((id) => typeof id === 'string')) throw new Refusal(400, 'additional_slave_SAE_IDs must be an array of strings')
    if (additional.length > s.maxSaeIdCount) throw new Refusal(400, 'additional_slave_SAE_IDs names more SAEs than max_SAE_ID_count', [{ max_SAE_ID_count: s.maxSaeIdCount }])
    const slaves = new Set([slave])
    for (const id of additional as string[]) {
      if (!this.#saeIds.has(id)) throw new Refusal(400, `additional_slave_SAE_IDs names ${id}, which is not an SAE of this KME`)
      if (id === master || slaves.has(id)) throw new Refusal(400, `additional_slave_SAE_IDs names ${id}, the master or a slave already named`)
      slaves.add(id)
    }
    this.#extensions(request.extension_mandatory, request.extension_optional)
    // A key of keySize bits costs one of the pool; a larger one as many as it spans (its bytes are fresh).
    const cost = number * Math.ceil(size / s.keySize)
    if (cost > s.maxKeyCount) throw new Refusal(400, 'the request needs more keys than the pool can hold', [{ keys_needed: cost }, { max_key_count: s.maxKeyCount }])
    const pool = this.#pool(master, slave)
    if (pool.count < cost) {
      throw new Refusal(503, 'not enough keys: the pool for this master and slave cannot serve the request now', [{ stored_key_count: Math.floor(pool.count) }, { keys_needed: cost }])
    }
    pool.count -= cost
    const keys: { key_ID: string; key: string }[] = []
    for (let i = 0; i < number; i++) {
      const id = randomUUID()
      const key = randomBytes(size / 8)
      this.#delivered.set(id, { master, slaves, pending: new Set(slaves), key })
      this.#deliveredBytes += key.byteLength + deliveredRecordBytes
      keys.push({ key_ID: id, key: encodeBase64(key) })
    }
    // The oldest go first; this request's keys fit (settle() checked maxKeyPerRequest), so they stay.
    for (const [id, delivered] of this.#delivered) {
      if (this.#deliveredBytes <= s.maxDeliveredBytes) break
      this.#forget(id, delivered)
    }
    this.#stats.keysDelivered += number
    return { keys }
  }

  /**
   * extension_mandatory and extension_optional (§6.2). The one parameter handled is volley_route_type:
   * "direct" is met (one KME, no relay); any other value cannot be. Other mandatory ones are unsupported;
   * other optional ones are ignored, or refused with strictExtensionOptional.
   */
  #extensions(mandatory: unknown, optional: unknown): void {
    const parameters = (value: unknown, name: string): [string, unknown][] => {
      if (value === undefined) return []
      if (!Array.isArray(value) || !value.every(isJsonObject)) throw new Refusal(400, `${name} must be an array of objects`)
      return value.flatMap((item) => Object.entries(item))
    }
    const required = parameters(mandatory, 'extension_mandatory')
    const wished = parameters(optional, 'extension_optional')
    const unsupported = required.filter(([name]) => name !== routeTypeExtension)
    if (unsupported.length > 0) {
      throw new Refusal(
        400,
        KME_MESSAGES.extensionMandatoryUnsupported,
        unsupported.map(([name]) => ({ extension_mandatory_unsupported: `${name} is not supported` })),
      )
    }
    const unmet = required.filter(([, value]) => value !== 'direct')
    if (unmet.length > 0) {
      throw new Refusal(
        400,
        KME_MESSAGES.extensionMandatoryUnmet,
        unmet.map(([name, value]) => ({ extension_mandatory_unmet: `${name} ${JSON.stringify(value)} cannot be met: this KME has direct keys only` })),
      )
    }
    const unhandled = wished.filter(([name]) => name !== routeTypeExtension)
    if (unhandled.length > 0 && this.#settings.strictExtensionOptional) {
      throw new Refusal(
        400,
        KME_MESSAGES.extensionOptionalUnhandled,
        unhandled.map(([name]) => ({ extension_optional_unhandled: `${name} is not handled` })),
      )
    }
  }

  /** The key IDs of a Key IDs body (§6.4). */
  #keyIds(body: unknown): string[] {
    if (!isJsonObject(body)) throw new Refusal(400, 'the request body must be Key IDs, a JSON object')
    for (const name of Object.keys(body)) {
      if (name !== 'key_IDs' && name !== 'key_IDs_extension') throw new Refusal(400, `Key IDs has no field ${name}`)
    }
    const list = body.key_IDs
    if (!Array.isArray(list) || list.length === 0) throw new Refusal(400, 'key_IDs must be a non-empty array')
    return list.map((item: unknown) => {
      if (!isJsonObject(item) || typeof item.key_ID !== 'string') throw new Refusal(400, 'each of key_IDs must be an object with a key_ID string')
      return item.key_ID
    })
  }

  /** Get key with key IDs (§5.4): all the keys, or none; each leaves for the caller. */
  #getKeysWithIds(caller: string, master: string, ids: readonly string[]): unknown {
    if (ids.length > this.#settings.maxKeyPerRequest) {
      throw new Refusal(400, 'key_IDs lists more keys than max_key_per_request', [{ max_key_per_request: this.#settings.maxKeyPerRequest }])
    }
    const wanted = ids.map((id) => id.toLowerCase())
    if (new Set(wanted).size !== wanted.length) throw new Refusal(400, 'key_IDs lists a key twice')
    // Not found: never delivered, delivered by another master, or already fetched by this slave.
    const notFound = wanted.filter((id) => {
      const key = this.#delivered.get(id)
      return key === undefined || key.master !== master || (key.slaves.has(caller) && !key.pending.has(caller))
    })
    if (notFound.length > 0) throw new Refusal(400, KME_MESSAGES.keysNotFound, [{ key_IDs_not_found: notFound }])
    // "The KME shall reject the request with a 401 HTTP status code if the SAE ID of the requestor was not an
    // SAE ID supplied to the Get key method" (§5.4).
    if (wanted.some((id) => !this.#delivered.get(id)!.slaves.has(caller))) {
      throw new Refusal(401, 'the caller is not a slave SAE the keys were requested for')
    }
    const keys = wanted.map((id, index) => {
      const delivered = this.#delivered.get(id)!
      const key = { key_ID: ids[index]!, key: encodeBase64(delivered.key) }
      delivered.pending.delete(caller)
      if (delivered.pending.size === 0) this.#forget(id, delivered)
      return key
    })
    this.#stats.keysRetrieved += keys.length
    return { keys }
  }

  /** A delivered key gone: fetched by its last slave, or pushed out by newer ones. Its bytes are wiped. */
  #forget(id: string, delivered: Delivered): void {
    this.#delivered.delete(id)
    this.#deliveredBytes -= delivered.key.byteLength + deliveredRecordBytes
    delivered.key.fill(0)
  }
}

/**
 * Makes `directory` (mode 0700) when missing; refuses one that is a symbolic link, not a directory, or open
 * to other users (its group or other permission bits: they could swap the CA's certificate or list the keys).
 */
async function safeDirectory(directory: string): Promise<void> {
  let stats = await lstat(directory).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw error
  })
  if (stats === undefined) {
    await mkdir(directory, { recursive: true, mode: 0o700 })
    stats = await lstat(directory)
  }
  if (stats.isSymbolicLink()) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The directory ${directory} is a symbolic link: give the directory itself`)
  if (!stats.isDirectory()) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `${directory} is not a directory`)
  // Windows has no such mode bits (node makes them up from the read-only attribute).
  if (process.platform !== 'win32' && (stats.mode & 0o077) !== 0) {
    throw new VolleyTypeError(
      'ERR_INVALID_ARG_VALUE',
      `The directory ${directory} is open to other users (mode 0${(stats.mode & 0o777).toString(8)}): give a new one (it is made with mode 0700), or chmod 700 it first`,
    )
  }
}

/**
 * Writes `text` to `path` as a new file of `mode`: a temporary file beside it, made with O_EXCL and
 * O_NOFOLLOW (never one that was there, never through a symbolic link), then renamed over `path` (which
 * replaces a file or a link there, without following it).
 */
async function writeNewFile(path: string, text: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomUUID()}.tmp`
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | (fsConstants.O_NOFOLLOW ?? 0)
  const handle = await open(temporary, flags, mode)
  try {
    try {
      await handle.writeFile(text)
    } finally {
      await handle.close()
    }
    await rename(temporary, path)
  } catch (error) {
    await unlink(temporary).catch(() => {})
    throw error
  }
}
