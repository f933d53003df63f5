// DevKme, the development KME of ETSI GS QKD 014: its API over real HTTPS on loopback (requests made by hand,
// so that the test sees the status, the content type and the JSON as they are), mutual TLS, the key pools,
// every normative error message, and `volley kme`. Certificates are made once for the file.
import { spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { type DevCredential, issueDevCertificate, makeDevCa, makeDevCertificates } from '../../src/sessions/keysync/dev-certificates.ts'
import { DevKme, type DevKmeCertificates, type DevKmeOptions } from '../../src/sessions/keysync/dev-kme.ts'
import { KmeClient } from '../../src/sessions/keysync/kme-client.ts'
import { KME_MESSAGES } from '../../src/sessions/keysync/kme-wire.ts'
import { within } from '../helpers.ts'

/** Every buffer of random bytes made, as DevKme draws its keys: to see that it wipes them. */
const minted = vi.hoisted((): Buffer[] => [])
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>()
  const randomBytes = (size: number): Buffer => {
    const bytes = actual.randomBytes(size)
    minted.push(bytes)
    return bytes
  }
  return { ...actual, randomBytes }
})

const saeIds = ['sae1', 'sae2', 'sae3']
let certificates: DevKmeCertificates
/** A certificate of the KME's CA whose CN is no SAE of the KME. */
let stranger: DevCredential
/** A certificate for sae1 from another CA. */
let foreign: DevCredential

beforeAll(async () => {
  const ca = await makeDevCa()
  const server = await issueDevCertificate(ca, 'dev-kme', { server: ['127.0.0.1', 'localhost'] })
  const clients: Record<string, DevCredential> = {}
  for (const id of saeIds) clients[id] = await issueDevCertificate(ca, id)
  certificates = { caCert: ca.cert, serverCert: server.cert, serverKey: server.key, clients }
  stranger = await issueDevCertificate(ca, 'sae9')
  foreign = (await makeDevCertificates('127.0.0.1', { clients: ['sae1'] })).clients.sae1!
})

const running: DevKme[] = []
const clients: KmeClient[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.close()
  await Promise.all(running.splice(0).map((kme) => kme.close()))
})

async function start(options: Partial<DevKmeOptions> = {}): Promise<DevKme> {
  const kme = await DevKme.start({ saeIds, certificates, ...options })
  running.push(kme)
  return kme
}

interface Answer {
  status: number
  contentType: string | undefined
  json: any
}

/** One request as `as` (an SAE of the KME, or a credential), on a connection of its own. */
function call(kme: DevKme, as: string | DevCredential, method: string, path: string, options: { body?: string | Buffer | object; contentType?: string } = {}): Promise<Answer> {
  const { cert, key } = typeof as === 'string' ? certificates.clients[as]! : as
  const body = options.body === undefined || typeof options.body === 'string' || Buffer.isBuffer(options.body) ? options.body : JSON.stringify(options.body)
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json'
  return within(
    new Promise<Answer>((resolve, reject) => {
      const request = https.request(`${kme.url}${path}`, { method, cert, key, ca: certificates.caCert, agent: false, headers }, (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          resolve({ status: response.statusCode!, contentType: response.headers['content-type'], json: text === '' ? undefined : JSON.parse(text) })
        })
      })
      request.on('error', reject)
      request.end(body)
    }),
    5000,
    `${method} ${path}`,
  )
}

const status = (kme: DevKme, master: string, slave: string): Promise<Answer> => call(kme, master, 'GET', `/api/v1/keys/${slave}/status`)
const encKeys = (kme: DevKme, master: string, slave: string, body: object = {}): Promise<Answer> => call(kme, master, 'POST', `/api/v1/keys/${slave}/enc_keys`, { body })
const decKeys = (kme: DevKme, slave: string, master: string, ids: string[]): Promise<Answer> =>
  call(kme, slave, 'POST', `/api/v1/keys/${master}/dec_keys`, { body: { key_IDs: ids.map((id) => ({ key_ID: id })) } })

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

describe('DevKme: the API of ETSI GS QKD 014', () => {
  it('Get status: every field of §6.1, from the caller (master) to the slave named', async () => {
    const kme = await start({ kmeId: 'KME-A', keySize: 352, maxKeyCount: 1000, storedKeyCount: 250, maxKeyPerRequest: 64, minKeySize: 64, maxKeySize: 1024, keyRate: 0 })
    const answer = await status(kme, 'sae1', 'sae2')
    expect(answer.status).toBe(200)
    expect(answer.contentType).toBe('application/json')
    expect(answer.json).toEqual({
      source_KME_ID: 'KME-A',
      target_KME_ID: 'KME-A',
      master_SAE_ID: 'sae1',
      slave_SAE_ID: 'sae2',
      key_size: 352,
      stored_key_count: 250,
      max_key_count: 1000,
      max_key_per_request: 64,
      max_key_size: 1024,
      min_key_size: 64,
      max_SAE_ID_count: 1,
    })
    expect((await status(kme, 'sae2', 'sae1')).json).toMatchObject({ master_SAE_ID: 'sae2', slave_SAE_ID: 'sae1' })
    // The slave is another SAE of this KME; the route and the method are the API's.
    expect(await status(kme, 'sae1', 'sae1')).toMatchObject({ status: 400, json: { message: expect.stringContaining('another SAE') } })
    expect(await status(kme, 'sae1', 'nobody')).toMatchObject({ status: 400, json: { message: expect.stringContaining('not an SAE') } })
    expect(await call(kme, 'sae1', 'GET', '/api/v1/keys/sae2/status?x=1')).toMatchObject({ status: 400 })
    expect(await call(kme, 'sae1', 'GET', '/api/v1/keys/sae2/nothing')).toMatchObject({ status: 404, json: { message: expect.any(String) } })
    expect(await call(kme, 'sae1', 'GET', '/api/v2/keys/sae2/status')).toMatchObject({ status: 404 })
    expect(await call(kme, 'sae1', 'GET', '/')).toMatchObject({ status: 404 })
    expect(await call(kme, 'sae1', 'POST', '/api/v1/keys/sae2/status', { body: {} })).toMatchObject({ status: 405 })
    expect(await call(kme, 'sae1', 'DELETE', '/api/v1/keys/sae2/enc_keys')).toMatchObject({ status: 405 })
    expect(await call(kme, 'sae1', 'GET', '/api/v1/keys/%E0%A4%A/status')).toMatchObject({ status: 400, json: { message: expect.stringContaining('URL-encoded') } })
  })

  it('Get key then Get key with key IDs: the same keys, which leave the pool, by POST and by GET', async () => {
    const kme = await start({ storedKeyCount: 100, keyRate: 0 })
    const got = await encKeys(kme, 'sae1', 'sae2', { number: 3, size: 512 })
    expect(got.status).toBe(200)
    expect(got.contentType).toBe('application/json')
    expect(got.json.keys).toHaveLength(3)
    for (const key of got.json.keys) {
      expect(Object.keys(key).sort()).toEqual(['key', 'key_ID'])
      expect(key.key_ID).toMatch(uuid)
      expect(Buffer.from(key.key, 'base64')).toHaveLength(64)
    }
    // A 512-bit key costs two of the pool's 256-bit keys.
    expect((await status(kme, 'sae1', 'sae2')).json.stored_key_count).toBe(94)
    // The other direction is a pool of its own.
    expect((await status(kme, 'sae2', 'sae1')).json.stored_key_count).toBe(100)
    const ids = got.json.keys.map((key: { key_ID: string }) => key.key_ID)
    const fetched = await decKeys(kme, 'sae2', 'sae1', ids)
    expect(fetched).toMatchObject({ status: 200, json: { keys: got.json.keys } })
    // Gone for good: a second fetch of any of them is refused, as a key not found.
    expect(await decKeys(kme, 'sae2', 'sae1', [ids[0]])).toMatchObject({ status: 400, json: { message: KME_MESSAGES.keysNotFound } })

    // GET forms: enc_keys with ?number=&size=, or nothing (one key of key_size); dec_keys with ?key_ID=.
    const byGet = await call(kme, 'sae1', 'GET', '/api/v1/keys/sae2/enc_keys?number=2&size=128')
    expect(byGet.status).toBe(200)
    expect(byGet.json.keys.map((key: { key: string }) => Buffer.from(key.key, 'base64').byteLength)).toEqual([16, 16])
    const plain = await call(kme, 'sae1', 'GET', '/api/v1/keys/sae2/enc_keys')
    expect(plain.json.keys).toHaveLength(1)
    expect(Buffer.from(plain.json.keys[0].key, 'base64')).toHaveLength(32)
    const one = await call(kme, 'sae2', 'GET', `/api/v1/keys/sae1/dec_keys?key_ID=${plain.json.keys[0].key_ID}`)
    expect(one).toMatchObject({ status: 200, json: { keys: plain.json.keys } })
    expect(await call(kme, 'sae1', 'POST', '/api/v1/keys/sae2/enc_keys')).toMatchObject({ status: 200, json: { keys: [expect.anything()] } }) // an empty POST: the defaults
    expect((await status(kme, 'sae1', 'sae2')).json.stored_key_count).toBe(94 - 2 - 1 - 1)
    // GET takes only number and size, and dec_keys by GET one key_ID.
    expect(await call(kme, 'sae1', 'GET', '/api/v1/keys/sae2/enc_keys?number=x')).toMatchObject({ status: 400 })
    expect(await call(kme, 'sae1', 'GET', '/api/v1/keys/sae2/enc_keys?colour=red')).toMatchObject({ status: 400 })
    expect(await call(kme, 'sae2', 'GET', `/api/v1/keys/sae1/dec_keys?key_ID=${ids[1]}&key_ID=${ids[2]}`)).toMatchObject({ status: 400 })
    expect(await call(kme, 'sae2', 'GET', '/api/v1/keys/sae1/dec_keys')).toMatchObject({ status: 400 })
    expect(kme.stats).toMatchObject({ keysDelivered: 7, keysRetrieved: 4 })
  })

  it('Get key with key IDs: 401 for an SAE the keys were not asked for, 400 for keys not found', async () => {
    const kme = await start()
    const got = await encKeys(kme, 'sae1', 'sae2', { number: 2 })
    const ids = got.json.keys.map((key: { key_ID: string }) => key.key_ID)
    // sae3 was not named at Get key (§5.4), nor is the master its own slave.
    expect(await decKeys(kme, 'sae3', 'sae1', ids)).toMatchObject({ status: 401, json: { message: expect.any(String) } })
    expect(await decKeys(kme, 'sae1', 'sae1', ids)).toMatchObject({ status: 401 })
    // The master named in the URL must be the one that got them; an unknown ID anywhere refuses them all.
    expect(await decKeys(kme, 'sae2', 'sae3', ids)).toMatchObject({ status: 400, json: { message: KME_MESSAGES.keysNotFound } })
    const unknown = '550e8400-e29b-41d4-a716-446655440000'
    expect(await decKeys(kme, 'sae2', 'sae1', [ids[0], unknown])).toMatchObject({
      status: 400,
      json: { message: 'one or more keys specified are not found on KME', details: [{ key_IDs_not_found: [unknown] }] },
    })
    expect(await decKeys(kme, 'sae2', 'sae1', ['not-a-uuid'])).toMatchObject({ status: 400, json: { message: KME_MESSAGES.keysNotFound } })
    expect(await decKeys(kme, 'sae2', 'sae1', [ids[0], ids[0]])).toMatchObject({ status: 400, json: { message: expect.stringContaining('twice') } })
    // None of that took them: the slave still gets both, in the order it asks (key IDs in any case).
    const fetched = await decKeys(kme, 'sae2', 'sae1', [ids[1].toUpperCase(), ids[0]])
    expect(fetched.status).toBe(200)
    expect(fetched.json.keys.map((key: { key: string }) => key.key)).toEqual([got.json.keys[1].key, got.json.keys[0].key])
    // A malformed Key IDs body.
    for (const body of [{}, { key_IDs: [] }, { key_IDs: [{}] }, { key_IDs: 'x' }, { key_IDs: [{ key_ID: 1 }] }, { key_IDs: [{ key_ID: ids[0] }], extra: 1 }, []]) {
      expect(await call(kme, 'sae2', 'POST', '/api/v1/keys/sae1/dec_keys', { body })).toMatchObject({ status: 400, json: { message: expect.any(String) } })
    }
  })

  it('additional_slave_SAE_IDs: every slave named gets the keys, once each', async () => {
    const kme = await start()
    expect((await status(kme, 'sae1', 'sae2')).json.max_SAE_ID_count).toBe(1)
    const got = await encKeys(kme, 'sae1', 'sae2', { additional_slave_SAE_IDs: ['sae3'] })
    const ids = [got.json.keys[0].key_ID]
    expect(await decKeys(kme, 'sae3', 'sae1', ids)).toMatchObject({ status: 200, json: { keys: got.json.keys } })
    expect(await decKeys(kme, 'sae3', 'sae1', ids)).toMatchObject({ status: 400, json: { message: KME_MESSAGES.keysNotFound } })
    expect(await decKeys(kme, 'sae2', 'sae1', ids)).toMatchObject({ status: 200, json: { keys: got.json.keys } })
    expect(await decKeys(kme, 'sae2', 'sae1', ids)).toMatchObject({ status: 400 })
    // More than max_SAE_ID_count, an unknown SAE, the master, the slave again.
    for (const additional of [['sae3', 'sae1'], ['sae7'], ['sae1'], ['sae2'], 'sae3', [3]]) {
      expect(await encKeys(kme, 'sae1', 'sae2', { additional_slave_SAE_IDs: additional })).toMatchObject({ status: 400, json: { message: expect.any(String) } })
    }
  })

  it('Key request checks, and every normative message of §6.2 word for word', async () => {
    const kme = await start({ maxKeyPerRequest: 4, minKeySize: 64, maxKeySize: 1024 })
    expect(await encKeys(kme, 'sae1', 'sae2', { size: 100 })).toEqual({ status: 400, contentType: 'application/json', json: { message: 'size shall be a multiple of 8' } })
    expect(await call(kme, 'sae1', 'GET', '/api/v1/keys/sae2/enc_keys?size=65')).toMatchObject({ status: 400, json: { message: 'size shall be a multiple of 8' } })
    expect(await encKeys(kme, 'sae1', 'sae2', { extension_mandatory: [{ abc_route_type: 'direct' }, { volley_route_type: 'direct' }] })).toMatchObject({
      status: 400,
      json: { message: 'not all extension_mandatory parameters are supported', details: [{ extension_mandatory_unsupported: 'abc_route_type is not supported' }] },
    })
    expect(await encKeys(kme, 'sae1', 'sae2', { extension_mandatory: [{ volley_route_type: 'indirect' }] })).toMatchObject({
      status: 400,
      json: { message: 'not all extension_mandatory request options could be met', details: [{ extension_mandatory_unmet: expect.stringContaining('volley_route_type') }] },
    })
    // Met, and optional ones ignored, unless the KME is told to refuse those it does not handle.
    expect(await encKeys(kme, 'sae1', 'sae2', { extension_mandatory: [{ volley_route_type: 'direct' }], extension_optional: [{ abc_max_age: 30000 }] })).toMatchObject({ status: 200 })
    const strict = await start({ strictExtensionOptional: true })
    expect(await encKeys(strict, 'sae1', 'sae2', { extension_optional: [{ abc_max_age: 30000 }] })).toMatchObject({
      status: 400,
      json: { message: 'not all extension_optional request options handled', details: [{ extension_optional_unhandled: 'abc_max_age is not handled' }] },
    })
    expect(await encKeys(strict, 'sae1', 'sae2', { extension_optional: [{ volley_route_type: 'indirect' }] })).toMatchObject({ status: 200 })
    // The other checks: a message each, never a crash.
    const refused: object[] = [
      { number: 0 },
      { number: 1.5 },
      { number: '2' },
      { number: 5 }, // over max_key_per_request
      { size: 56 }, // under min_key_size
      { size: 1032 }, // over max_key_size
      { size: -8 },
      { sizes: 8 }, // no such field
      { extension_mandatory: {} },
      { extension_optional: [1] },
    ]
    for (const body of refused) {
      const answer = await encKeys(kme, 'sae1', 'sae2', body)
      expect(answer, JSON.stringify(body)).toMatchObject({ status: 400, contentType: 'application/json', json: { message: expect.any(String) } })
    }
    expect((await encKeys(kme, 'sae1', 'sae2', { number: 5 })).json.details).toEqual([{ max_key_per_request: 4 }])
    expect(await encKeys(kme, 'sae1', 'sae2', [] as unknown as object)).toMatchObject({ status: 400, json: { message: 'the key request must be a JSON object' } })
  })

  it('a body that is not JSON, of another content type, not UTF-8 or too large: 400 with a message', async () => {
    const kme = await start()
    const path = '/api/v1/keys/sae2/enc_keys'
    expect(await call(kme, 'sae1', 'POST', path, { body: '{"number": 1' })).toMatchObject({ status: 400, json: { message: 'the body is not JSON' } })
    expect(await call(kme, 'sae1', 'POST', path, { body: '{"number": 1}', contentType: 'text/plain' })).toMatchObject({ status: 400, json: { message: expect.stringContaining('application/json') } })
    expect(await call(kme, 'sae1', 'POST', path, { body: '{"number": 1}', contentType: 'application/json; charset=latin1' })).toMatchObject({ status: 400 })
    expect(await call(kme, 'sae1', 'POST', path, { body: '{"number": 1}', contentType: 'application/json; charset=utf-8' })).toMatchObject({ status: 200 })
    expect(await call(kme, 'sae1', 'POST', path, { body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]) })).toMatchObject({ status: 400, json: { message: 'the body is not UTF-8' } })
    const huge = JSON.stringify({ number: 1, extension_optional: [{ pad: 'x'.repeat(70_000) }] })
    expect(await call(kme, 'sae1', 'POST', path, { body: huge })).toMatchObject({ status: 400, json: { message: expect.stringContaining('larger than 65536 bytes') } })
    // Without a declared length (chunked), refused as it grows past the limit.
    const chunked = await new Promise<Answer>((resolve, reject) => {
      const { cert, key } = certificates.clients.sae1!
      const request = https.request(`${kme.url}${path}`, { method: 'POST', cert, key, ca: certificates.caCert, agent: false, headers: { 'content-type': 'application/json' } }, (response) => {
        let text = ''
        response.on('data', (chunk: Buffer) => (text += chunk.toString()))
        response.on('end', () => resolve({ status: response.statusCode!, contentType: response.headers['content-type'], json: JSON.parse(text) }))
      })
      request.on('error', reject)
      for (let i = 0; i < 10; i++) request.write('x'.repeat(10_000))
      request.end()
    })
    expect(chunked).toMatchObject({ status: 400, json: { message: expect.stringContaining('larger than') } })
    expect(await status(kme, 'sae1', 'sae2')).toMatchObject({ status: 200 }) // still serving
    expect(kme.stats.responses[400]).toBeGreaterThanOrEqual(5)
  })

  it('an empty pool answers 503 with a message; keyRate refills it', async () => {
    const kme = await start({ storedKeyCount: 2, keyRate: 0 })
    expect((await encKeys(kme, 'sae1', 'sae2', { number: 2 })).status).toBe(200)
    const empty = await encKeys(kme, 'sae1', 'sae2')
    expect(empty).toMatchObject({ status: 503, contentType: 'application/json', json: { message: expect.stringContaining('not enough keys'), details: [{ stored_key_count: 0 }, { keys_needed: 1 }] } })
    expect((await status(kme, 'sae1', 'sae2')).json.stored_key_count).toBe(0)
    expect((await encKeys(kme, 'sae2', 'sae1')).status).toBe(200) // another pair's pool
    const refilled = await start({ storedKeyCount: 0, keyRate: 50, maxKeyCount: 3 })
    expect((await encKeys(refilled, 'sae1', 'sae2')).status).toBe(503)
    await new Promise((resolve) => setTimeout(resolve, 120))
    expect((await encKeys(refilled, 'sae1', 'sae2', { number: 2 })).status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect((await status(refilled, 'sae1', 'sae2')).json.stored_key_count).toBe(3) // up to max_key_count
  })
})

describe('DevKme: mutual TLS', () => {
  /** A raw TLS connection as `credential` (or none): whether the server took it, and the error if not. */
  async function handshake(kme: DevKme, credential: DevCredential | undefined): Promise<{ answered: boolean; error?: string }> {
    const socket = tls.connect({ host: '127.0.0.1', port: kme.port, ca: certificates.caCert, ...(credential ?? {}) })
    const outcome = new Promise<{ answered: boolean; error?: string }>((resolve) => {
      let answer = ''
      socket.on('secureConnect', () => socket.write('GET /api/v1/keys/sae2/status HTTP/1.1\r\nhost: kme\r\nconnection: close\r\n\r\n'))
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()))
      socket.on('error', (error: Error & { code?: string }) => resolve({ answered: false, error: error.code ?? error.message }))
      socket.on('close', () => resolve({ answered: answer.startsWith('HTTP/1.1 ') }))
    })
    return within(outcome, 5000, 'the TLS connection')
  }

  it('a client without a certificate, or with one of another CA, is refused at the handshake', async () => {
    const kme = await start()
    expect(await handshake(kme, certificates.clients.sae1)).toEqual({ answered: true })
    const none = await handshake(kme, undefined)
    expect(none.answered).toBe(false)
    expect(none.error).toMatch(/CERTIFICATE_REQUIRED|ECONNRESET/)
    expect((await handshake(kme, foreign)).answered).toBe(false)
    expect(kme.stats.tlsRefused).toBe(2)
    expect(kme.stats.requests).toBe(1)
    // KmeClient says what went wrong, without retrying a refusal that would only repeat.
    const client = new KmeClient({ ...kme.credentialsFor('sae1'), ...foreign, retryDelayMs: 1 })
    clients.push(client)
    await expect(client.status('sae2')).rejects.toMatchObject({ code: 'ERR_KME_TLS', message: expect.stringContaining('certificate') })
    expect(kme.stats.tlsRefused).toBe(3)
  })

  it('a resumed TLS session keeps the SAE it authenticated', async () => {
    const kme = await start()
    const { cert, key } = certificates.clients.sae1!
    const agent = new https.Agent({ keepAlive: false, cert, key, ca: certificates.caCert })
    const reused: boolean[] = []
    for (let i = 0; i < 3; i++) {
      const answer = await within(
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const request = https.request(`${kme.url}/api/v1/keys/sae2/status`, { agent }, (response) => {
            let body = ''
            response.on('data', (chunk: Buffer) => (body += chunk.toString()))
            response.on('end', () => resolve({ status: response.statusCode!, body }))
          })
          request.on('socket', (socket) => socket.once('secureConnect', () => reused.push((socket as tls.TLSSocket).isSessionReused())))
          request.on('error', reject)
          request.end()
        }),
        5000,
        'a status on a new connection',
      )
      expect(answer.status).toBe(200)
      expect(JSON.parse(answer.body)).toMatchObject({ master_SAE_ID: 'sae1' })
    }
    agent.destroy()
    expect(reused).toContain(true)
  })

  it("a certificate of the KME's CA that names no SAE of it: 401", async () => {
    const kme = await start()
    expect(await call(kme, stranger, 'GET', '/api/v1/keys/sae2/status')).toMatchObject({ status: 401, json: { message: expect.stringContaining('no SAE') } })
    const got = await encKeys(kme, 'sae1', 'sae2')
    expect(await decKeys(kme, 'sae2', 'sae1', [got.json.keys[0].key_ID])).toMatchObject({ status: 200 })
  })
})

describe('DevKme: options, credentials and certificates', () => {
  it('checks its options', async () => {
    const bad: [Partial<DevKmeOptions>, string][] = [
      [{ saeIds: ['one'] }, 'ERR_INVALID_ARG_VALUE'],
      [{ saeIds: ['a', 'a'] }, 'ERR_INVALID_ARG_VALUE'],
      [{ saeIds: ['a', 'b c'] }, 'ERR_INVALID_ARG_VALUE'],
      // Names that are no file name of their own (ca.pem is the CA's; one file for two on a case-insensitive
      // file system) or no path segment (a URL resolves . and .. away).
      [{ saeIds: ['ca', 'b'] }, 'ERR_INVALID_ARG_VALUE'],
      [{ saeIds: ['a', 'CA'] }, 'ERR_INVALID_ARG_VALUE'],
      [{ saeIds: ['.', 'b'] }, 'ERR_INVALID_ARG_VALUE'],
      [{ saeIds: ['a', '..'] }, 'ERR_INVALID_ARG_VALUE'],
      [{ saeIds: ['Sae1', 'sae1'] }, 'ERR_INVALID_ARG_VALUE'],
      [{ saeIds: 'ab' as unknown as string[] }, 'ERR_INVALID_ARG_TYPE'],
      [{ keySize: 100 }, 'ERR_OUT_OF_RANGE'],
      [{ keySize: 16 }, 'ERR_OUT_OF_RANGE'], // under minKeySize
      [{ storedKeyCount: 11, maxKeyCount: 10 }, 'ERR_OUT_OF_RANGE'],
      [{ maxSaeIdCount: 2 }, 'ERR_OUT_OF_RANGE'], // three SAEs: at most one more slave
      [{ keyRate: -1 }, 'ERR_OUT_OF_RANGE'],
      [{ port: 70000 }, 'ERR_OUT_OF_RANGE'],
      [{ colour: 'red' } as Partial<DevKmeOptions>, 'ERR_INVALID_ARG_VALUE'],
      [{ certificates: { caCert: 'x' } as DevKmeCertificates }, 'ERR_INVALID_ARG_TYPE'],
      // Its largest Get key (128 keys of 8192 bits, and their records) must fit in the keys kept for slaves.
      [{ maxDeliveredBytes: 128 * (1024 + 256) - 1 }, 'ERR_OUT_OF_RANGE'],
      [{ maxDeliveredBytes: 0 }, 'ERR_OUT_OF_RANGE'],
    ]
    for (const [options, code] of bad) {
      await expect(DevKme.start({ saeIds, certificates, ...options }), JSON.stringify(options)).rejects.toMatchObject({ code })
    }
    await expect(DevKme.start({ saeIds: ['a', 'CA'], certificates })).rejects.toThrow("cannot be 'CA': its files would be the CA's (ca.pem)")
    await expect(DevKme.start({ saeIds: ['Sae1', 'sae1'], certificates })).rejects.toThrow("'Sae1' and 'sae1', which differ only in case")
    const kme = await start()
    expect(() => kme.credentialsFor('sae9')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => kme.credentialsFor('__proto__')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(kme.credentialsFor('sae2')).toEqual({ url: kme.url, cert: certificates.clients.sae2!.cert, key: certificates.clients.sae2!.key, ca: certificates.caCert })
    expect(kme.url).toBe(`https://127.0.0.1:${kme.port}`)
    await kme.close()
    await kme.close() // once is enough; twice is harmless
  })

  it('makes its own CA and certificates (each SAE its CN) when given none, and writes them out', async () => {
    const kme = await DevKme.start({ saeIds: ['alice', 'bob'], kmeId: 'KME-X' })
    running.push(kme)
    const alice = new KmeClient(kme.credentialsFor('alice'))
    const bob = new KmeClient(kme.credentialsFor('bob'))
    clients.push(alice, bob)
    expect(await alice.status('bob')).toMatchObject({ source_KME_ID: 'KME-X', master_SAE_ID: 'alice', slave_SAE_ID: 'bob', max_SAE_ID_count: 0 })
    const { keys } = await alice.getKeys('bob', { number: 2 })
    const fetched = await bob.getKeysWithIds('alice', keys.map((key) => key.keyId))
    expect(fetched.keys).toEqual(keys)
    expect(new X509Certificate(kme.certificates.clients.bob!.cert).subject).toBe('CN=bob')
    expect(new X509Certificate(kme.certificates.serverCert).checkIP('127.0.0.1')).toBe('127.0.0.1')

    const directory = await mkdtemp(join(tmpdir(), 'volley-kme-'))
    try {
      const files = await kme.writeCredentials(join(directory, 'certs'))
      expect(files).toEqual({
        ca: join(directory, 'certs', 'ca.pem'),
        saes: {
          alice: { cert: join(directory, 'certs', 'alice.pem'), key: join(directory, 'certs', 'alice.key') },
          bob: { cert: join(directory, 'certs', 'bob.pem'), key: join(directory, 'certs', 'bob.key') },
        },
      })
      expect(await readFile(files.ca, 'utf8')).toBe(kme.certificates.caCert)
      expect(await readFile(files.saes.bob!.key, 'utf8')).toBe(kme.certificates.clients.bob!.key)
      expect((await stat(files.saes.bob!.key)).mode & 0o777).toBe(0o600)
      expect((await stat(join(directory, 'certs'))).mode & 0o777).toBe(0o700)
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  })
})

describe('DevKme: writeCredentials() in a directory of its own', () => {
  it('replaces a file or a symbolic link that was there with a new file, never writing through it', async () => {
    const kme = await start()
    const directory = await mkdtemp(join(tmpdir(), 'volley-kme-'))
    try {
      const outside = join(directory, 'outside.txt')
      await writeFile(outside, 'not a key')
      const certs = join(directory, 'certs')
      await mkdir(certs, { mode: 0o700 })
      // A key file left readable by others, and a link where another key goes.
      await writeFile(join(certs, 'sae1.key'), 'old', { mode: 0o644 })
      await symlink(outside, join(certs, 'sae2.key'))
      const files = await kme.writeCredentials(certs)
      for (const id of saeIds) {
        const key = await lstat(files.saes[id]!.key)
        expect(key.isFile(), id).toBe(true)
        expect(key.mode & 0o777, id).toBe(0o600)
        expect(await readFile(files.saes[id]!.key, 'utf8')).toBe(certificates.clients[id]!.key)
      }
      expect(await readFile(outside, 'utf8')).toBe('not a key')
      // Nothing left behind but the files: no temporary one.
      expect((await readdir(certs)).sort()).toEqual(['ca.pem', 'sae1.key', 'sae1.pem', 'sae2.key', 'sae2.pem', 'sae3.key', 'sae3.pem'])
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  })

  it('refuses a directory that is a symbolic link or open to other users, and leaves it as it was', async () => {
    const kme = await start()
    const directory = await mkdtemp(join(tmpdir(), 'volley-kme-'))
    try {
      const shared = join(directory, 'shared')
      await mkdir(shared)
      await chmod(shared, 0o755)
      await expect(kme.writeCredentials(shared)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('open to other users (mode 0755)') })
      expect((await stat(shared)).mode & 0o777).toBe(0o755)
      const own = join(directory, 'own')
      await mkdir(own, { mode: 0o700 })
      const link = join(directory, 'link')
      await symlink(own, link)
      await expect(kme.writeCredentials(link)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('symbolic link') })
      expect([...(await readdir(shared)), ...(await readdir(own))]).toEqual([])
      const file = join(directory, 'file')
      await writeFile(file, '')
      await expect(kme.writeCredentials(file)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' })
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  })
})

describe('DevKme: the keys it holds for slaves', () => {
  const keyOf = (answer: Answer, index: number): Buffer => Buffer.from(answer.json.keys[index].key, 'base64')
  /** The buffer DevKme drew a key into: the one of those made whose bytes were the key's when delivered. */
  const drawn = (key: Buffer, from: number): Buffer => minted.slice(from).find((bytes) => bytes.equals(key))!

  it('bounded by bytes: the oldest go (wiped) when a Get key needs room, never the keys of that Get key', async () => {
    // Four 256-bit keys a request, each 32 bytes and 256 of record: room for exactly two such requests.
    const kme = await start({ maxKeyPerRequest: 4, maxKeySize: 256, maxDeliveredBytes: 2 * 4 * (32 + 256), keyRate: 0 })
    const from = minted.length
    const first = await encKeys(kme, 'sae1', 'sae2', { number: 4 })
    const firstKeys = [0, 1, 2, 3].map((index) => drawn(keyOf(first, index), from))
    const second = await encKeys(kme, 'sae1', 'sae2', { number: 4 })
    expect(firstKeys.every((key) => key.some((byte) => byte !== 0))).toBe(true) // all still held
    const third = await encKeys(kme, 'sae1', 'sae2', { number: 4 })
    // The first four made room, and were wiped; the second and third requests' keys are all there.
    expect(firstKeys.every((key) => key.every((byte) => byte === 0))).toBe(true)
    const ids = (answer: Answer): string[] => answer.json.keys.map((key: { key_ID: string }) => key.key_ID)
    expect(await decKeys(kme, 'sae2', 'sae1', ids(first).slice(0, 1))).toMatchObject({ status: 400, json: { message: KME_MESSAGES.keysNotFound } })
    expect(await decKeys(kme, 'sae2', 'sae1', ids(second))).toMatchObject({ status: 200, json: { keys: second.json.keys } })
    expect(await decKeys(kme, 'sae2', 'sae1', ids(third))).toMatchObject({ status: 200, json: { keys: third.json.keys } })
  })

  it('wipes a key once its last slave fetched it, and those still held at close()', async () => {
    const kme = await start()
    const from = minted.length
    const shared = await encKeys(kme, 'sae1', 'sae2', { additional_slave_SAE_IDs: ['sae3'] })
    const held = await encKeys(kme, 'sae1', 'sae2')
    const sharedKey = drawn(keyOf(shared, 0), from)
    const heldKey = drawn(keyOf(held, 0), from)
    const id = shared.json.keys[0].key_ID
    expect(await decKeys(kme, 'sae2', 'sae1', [id])).toMatchObject({ status: 200, json: { keys: shared.json.keys } })
    expect(sharedKey.some((byte) => byte !== 0)).toBe(true) // sae3 has yet to fetch it
    expect(await decKeys(kme, 'sae3', 'sae1', [id])).toMatchObject({ status: 200, json: { keys: shared.json.keys } })
    expect(sharedKey.every((byte) => byte === 0)).toBe(true)
    expect(heldKey.some((byte) => byte !== 0)).toBe(true)
    await kme.close()
    expect(heldKey.every((byte) => byte === 0)).toBe(true)
  })
})

describe('DevKme: close()', () => {
  it('does not wait for a connection stalled before or in its TLS handshake', async () => {
    const kme = await start()
    // A TCP connection that sends nothing, and one that starts a handshake and then goes quiet.
    const silent = net.connect(kme.port, '127.0.0.1')
    const stalled = net.connect(kme.port, '127.0.0.1', () => stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40])))
    const closed = Promise.all([once(silent, 'close'), once(stalled, 'close')])
    for (const socket of [silent, stalled]) socket.on('error', () => {})
    try {
      await within(Promise.all([once(silent, 'connect'), once(stalled, 'connect')]), 5000, 'the connections')
      await new Promise((resolve) => setTimeout(resolve, 50)) // accepted by the server
      const started = performance.now()
      await within(kme.close(), 2000, 'close()')
      expect(performance.now() - started).toBeLessThan(1000)
      await within(closed, 2000, 'the connections to end')
      expect(kme.stats.tlsRefused).toBe(0) // handshakes cut short by close() are no refusals
    } finally {
      silent.destroy()
      stalled.destroy()
    }
  })
})

describe('DevKme on a wildcard address', () => {
  it('listens on 0.0.0.0, names loopback in its URL and its certificate', async () => {
    const kme = await DevKme.start({ saeIds: ['a', 'b'], host: '0.0.0.0' })
    running.push(kme)
    expect(kme.url).toBe(`https://127.0.0.1:${kme.port}`)
    const sae = new KmeClient(kme.credentialsFor('a'))
    clients.push(sae)
    expect(await sae.status('b')).toMatchObject({ master_SAE_ID: 'a', slave_SAE_ID: 'b' })
    expect(new X509Certificate(kme.certificates.serverCert).checkHost('localhost')).toBe('localhost')
  })
})

describe('volley kme', () => {
  const cli = new URL('../../src/cli/volley.ts', import.meta.url).pathname

  it('serves the SAEs named, writes their files, and stops at SIGINT', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'volley-kme-cli-'))
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', cli, 'kme', '--sae', 'sae1', '--sae', 'sae2', '--dir', directory])
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      let stdout = ''
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      const listening = new Promise<any>((resolve) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString()
          const line = stdout.split('\n').find((text) => text.includes('"listening"'))
          if (line !== undefined) resolve(JSON.parse(line))
        })
      })
      const exited = once(child, 'exit')
      const ready = await within(Promise.race([listening, exited.then(() => Promise.reject(new Error(stderr)))]), 15_000, 'volley kme to listen')
      expect(ready).toMatchObject({ event: 'listening', url: expect.stringMatching(/^https:\/\/127\.0\.0\.1:\d+$/), ca: join(directory, 'ca.pem') })
      expect((await stat(ready.saes.sae1.key)).mode & 0o777).toBe(0o600)
      const read = (file: string): Promise<string> => readFile(file, 'utf8')
      const master = new KmeClient({ url: ready.url, cert: await read(ready.saes.sae1.cert), key: await read(ready.saes.sae1.key), ca: await read(ready.ca) })
      const slave = new KmeClient({ url: ready.url, cert: await read(ready.saes.sae2.cert), key: await read(ready.saes.sae2.key), ca: await read(ready.ca) })
      clients.push(master, slave)
      const { keys } = await master.getKeys('sae2')
      expect((await slave.getKeysWithIds('sae1', [keys[0]!.keyId])).keys).toEqual(keys)
      master.close()
      slave.close()
      child.kill('SIGINT')
      const [code] = await within(exited, 10_000, 'volley kme to stop')
      clearTimeout(killer)
      expect(code).toBe(0)
      expect(stdout).toContain('"event":"stopped"')
      expect(JSON.parse(stdout.split('\n').find((line) => line.includes('"stopped"'))!).stats).toMatchObject({ keysDelivered: 1, keysRetrieved: 1 })
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  })

  it('refuses a command line without two SAEs, an SAE ID its files cannot take, or a shared --dir: status 2', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'volley-kme-cli-'))
    try {
      await chmod(directory, 0o755)
      const run = async (...args: string[]): Promise<{ code: number | null; stderr: string }> => {
        const child = spawn(process.execPath, ['--import', 'tsx', cli, 'kme', ...args])
        let stderr = ''
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
        try {
          const [code] = (await within(once(child, 'exit'), 15_000, `volley kme ${args.join(' ')} to refuse`)) as [number | null]
          return { code, stderr }
        } finally {
          child.kill('SIGKILL') // one that took the command line runs until killed
        }
      }
      // The rules are DevKme's (its options test has them all): the CLI says them in its own words.
      const [one, reserved, shared] = await Promise.all([
        run('--sae', 'only'),
        run('--sae', 'sae1', '--sae', 'CA'),
        run('--sae', 'sae1', '--sae', 'sae2', '--dir', directory),
      ])
      expect(one.code).toBe(2)
      expect(one.stderr).toBe("volley: --sae is needed at least twice: a master SAE and a slave SAE\nRun 'volley --help' for the usage.\n")
      expect(reserved).toMatchObject({ code: 2, stderr: expect.stringContaining("volley: --sae: the SAE IDs cannot be 'CA': its files would be the CA's (ca.pem)") })
      expect(shared).toMatchObject({ code: 2, stderr: expect.stringContaining('is open to other users (mode 0755)') })
      expect(await readdir(directory)).toEqual([])
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  })
})

afterAll(async () => {
  await Promise.all(running.splice(0).map((kme) => kme.close()))
})
