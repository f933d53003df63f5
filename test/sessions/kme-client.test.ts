// KmeClient, an SAE's client of an ETSI GS QKD 014 KME: against DevKme, and against a tiny HTTPS server of the
// test's own that records what the client sends and answers what each test says (garbage included). Typed
// errors for every failure, retries on 503 and refused connections, timeouts, abort and close. All on loopback.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { KmeError } from '../../src/util/errors.ts'
import { type DevCertificates, makeDevCertificates } from '../../src/sessions/keysync/dev-certificates.ts'
import { DevKme } from '../../src/sessions/keysync/dev-kme.ts'
import { KmeClient, type KmeClientOptions } from '../../src/sessions/keysync/kme-client.ts'
import { within } from '../helpers.ts'

const saeIds = ['sae1', 'sae2', 'sae:3@x']
let certificates: DevCertificates
let foreign: DevCertificates
let kme: DevKme

beforeAll(async () => {
  certificates = await makeDevCertificates('127.0.0.1', { clients: saeIds })
  foreign = await makeDevCertificates('127.0.0.1', { clients: ['sae1'] })
  kme = await DevKme.start({ saeIds, certificates })
})

afterAll(async () => {
  await kme.close()
})

const clients: KmeClient[] = []
const servers: https.Server[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.close()
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

function client(options: Partial<KmeClientOptions> & { url: string }, sae = 'sae1'): KmeClient {
  const made = new KmeClient({ cert: certificates.clients[sae]!.cert, key: certificates.clients[sae]!.key, ca: certificates.caCert, ...options })
  clients.push(made)
  return made
}

const devClient = (sae: string, options: Partial<KmeClientOptions> = {}): KmeClient => client({ ...kme.credentialsFor(sae), ...options }, sae)

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
  cn: string | undefined
}

type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void

/**
 * An HTTPS server with the test CA's certificate that asks for client certificates: what it saw, and its URL.
 * maxVersion: TLSv1.2, whose handshake ends on the server's side (TLS 1.3's ends on the client's).
 */
async function rawKme(
  handler: Handler,
  options: { port?: number; certificates?: DevCertificates; maxVersion?: 'TLSv1.2' } = {},
): Promise<{ url: string; seen: Seen[]; server: https.Server }> {
  const own = options.certificates ?? certificates
  const seen: Seen[] = []
  const tlsOptions = { key: own.serverKey, cert: own.serverCert, ca: own.caCert, requestCert: true, rejectUnauthorized: true, ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }) }
  const server = https.createServer(tlsOptions, (request, response) => {
    let body = ''
    request.on('data', (chunk: Buffer) => (body += chunk.toString()))
    request.on('end', () => {
      const cn = (request.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN
      seen.push({ method: request.method!, url: request.url!, headers: request.headers, body, cn: typeof cn === 'string' ? cn : undefined })
      handler(request, response, body)
    })
  })
  servers.push(server)
  server.listen(options.port ?? 0, '127.0.0.1')
  await within(once(server, 'listening'), 5000, 'the test KME to listen')
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

function json(response: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
  response.writeHead(status, { 'content-type': contentType, 'content-length': bytes.byteLength })
  response.end(bytes)
}

const statusBody = {
  source_KME_ID: 'AAAABBBBCCCCDDDD',
  target_KME_ID: 'EEEEFFFFGGGGHHHH',
  master_SAE_ID: 'sae1',
  slave_SAE_ID: 'sae2',
  key_size: 352,
  stored_key_count: 25000,
  max_key_count: 100000,
  max_key_per_request: 128,
  max_key_size: 1024,
  min_key_size: 64,
  max_SAE_ID_count: 0,
}

const key32 = (): string => Buffer.alloc(32, 7).toString('base64')

describe('KmeClient against DevKme', () => {
  it('Get status, Get key and Get key with key IDs, by POST and by GET: both SAEs hold the same keys', async () => {
    const master = devClient('sae1')
    const slave = devClient('sae2')
    expect(await master.status('sae2')).toEqual({
      source_KME_ID: 'volley-dev-kme',
      target_KME_ID: 'volley-dev-kme',
      master_SAE_ID: 'sae1',
      slave_SAE_ID: 'sae2',
      key_size: 256,
      stored_key_count: expect.any(Number),
      max_key_count: 100000,
      max_key_per_request: 128,
      max_key_size: 8192,
      min_key_size: 64,
      max_SAE_ID_count: 1,
    })
    const posted = await master.getKeys('sae2', { number: 3, size: 1024 })
    expect(posted.keys).toHaveLength(3)
    for (const key of posted.keys) {
      expect(key.key).toBeInstanceOf(Uint8Array)
      expect(key.key.byteLength).toBe(128)
    }
    expect(await slave.getKeysWithIds('sae1', posted.keys.map((key) => key.keyId))).toEqual(posted)
    const got = await master.getKeys('sae2', { number: 1, size: 128, method: 'GET' })
    expect(got.keys[0]!.key.byteLength).toBe(16)
    expect(await slave.getKeysWithIds('sae1', [got.keys[0]!.keyId], { method: 'GET' })).toEqual(got)
    // Once fetched, gone: a typed error carrying the KME's status and its normative message.
    const again = await slave.getKeysWithIds('sae1', [got.keys[0]!.keyId]).catch((error: unknown) => error)
    expect(again).toBeInstanceOf(KmeError)
    expect(again).toMatchObject({
      name: 'Error',
      code: 'ERR_KME_BAD_REQUEST',
      status: 400,
      kmeMessage: 'one or more keys specified are not found on KME',
      details: [{ key_IDs_not_found: [got.keys[0]!.keyId] }],
      message: 'Get key with key IDs: the KME answered 400 (bad request): one or more keys specified are not found on KME',
    })
    // An SAE ID with characters a URL path must encode, as master and as slave.
    const third = devClient('sae:3@x')
    const shared = await third.getKeys('sae1')
    expect(await master.getKeysWithIds('sae:3@x', [shared.keys[0]!.keyId])).toEqual(shared)
    expect(await master.status('sae:3@x')).toMatchObject({ slave_SAE_ID: 'sae:3@x' })
  })

  it('401 for an SAE the keys were not for; 400 with details for an extension the KME does not support', async () => {
    const master = devClient('sae1')
    const { keys } = await master.getKeys('sae2')
    await expect(devClient('sae:3@x').getKeysWithIds('sae1', [keys[0]!.keyId])).rejects.toMatchObject({ code: 'ERR_KME_UNAUTHORIZED', status: 401, kmeMessage: expect.any(String) })
    await expect(master.getKeys('sae2', { extensionMandatory: [{ abc_route_type: 'direct' }] })).rejects.toMatchObject({
      code: 'ERR_KME_BAD_REQUEST',
      status: 400,
      kmeMessage: 'not all extension_mandatory parameters are supported',
      details: [{ extension_mandatory_unsupported: 'abc_route_type is not supported' }],
    })
    expect((await master.getKeys('sae2', { extensionMandatory: [{ volley_route_type: 'direct' }], extensionOptional: [{ abc_max_age: 1 }] })).keys).toHaveLength(1)
    const multicast = await master.getKeys('sae2', { additionalSlaveSaeIds: ['sae:3@x'] })
    expect(await devClient('sae:3@x').getKeysWithIds('sae1', [multicast.keys[0]!.keyId])).toEqual(multicast)
  })

  it('an empty pool (503) is retried with backoff until it refills; ERR_KME_UNAVAILABLE when the retries run out', async () => {
    const slow = await DevKme.start({ saeIds, certificates, storedKeyCount: 0, keyRate: 20 })
    try {
      const patient = client({ ...slow.credentialsFor('sae1'), retryDelayMs: 40, retries: 6 })
      expect((await patient.getKeys('sae2')).keys).toHaveLength(1)
      expect(slow.stats.responses[503]).toBeGreaterThanOrEqual(1)
      const impatient = client({ ...slow.credentialsFor('sae1'), retries: 0 })
      const error = await impatient.getKeys('sae2', { number: 100 }).catch((caught: unknown) => caught)
      expect(error).toMatchObject({ code: 'ERR_KME_UNAVAILABLE', status: 503, kmeMessage: expect.stringContaining('not enough keys') })
      // Retries are bounded: three more tries, then the same error.
      const before = slow.stats.responses[503]!
      const bounded = client({ ...slow.credentialsFor('sae1'), retries: 3, retryDelayMs: 1 })
      await expect(bounded.getKeys('sae2', { number: 100 })).rejects.toMatchObject({ code: 'ERR_KME_UNAVAILABLE', message: expect.stringContaining('after 4 attempts') })
      expect(slow.stats.responses[503]! - before).toBe(4)
    } finally {
      await slow.close()
    }
  })
})

describe('KmeClient on the wire', () => {
  it("sends the specification's paths, fields and forms, the SAE IDs URL-encoded, under the base URL's path", async () => {
    const ids = [randomUUID(), randomUUID()]
    const { url, seen } = await rawKme((request, response) => {
      if (request.url!.includes('/status')) return json(response, 200, statusBody)
      const container = request.url!.includes('dec_keys') && request.method === 'GET' ? [ids[0]] : ids
      const number = request.url!.includes('number=1') ? 1 : 2
      json(response, 200, { keys: container.slice(0, number).map((id) => ({ key_ID: id, key: key32() })) })
    })
    const sae = client({ url: `${url}/kme/` })
    expect(await sae.status('sae 2/ü')).toEqual(statusBody)
    await sae.getKeys('sae2', { number: 2, size: 256, additionalSlaveSaeIds: ['sae3'], extensionMandatory: [{ abc_route_type: 'direct' }], extensionOptional: [{ abc_max_age: 30000 }] })
    await sae.getKeys('sae2', { number: 1, size: 256, method: 'GET' })
    await sae.getKeysWithIds('sae1', ids)
    await sae.getKeysWithIds('sae1', [ids[0]!], { method: 'GET' })
    expect(seen.map(({ method, url }) => `${method} ${url}`)).toEqual([
      'GET /kme/api/v1/keys/sae%202%2F%C3%BC/status',
      'POST /kme/api/v1/keys/sae2/enc_keys',
      'GET /kme/api/v1/keys/sae2/enc_keys?number=1&size=256',
      'POST /kme/api/v1/keys/sae1/dec_keys',
      `GET /kme/api/v1/keys/sae1/dec_keys?key_ID=${ids[0]}`,
    ])
    expect(JSON.parse(seen[1]!.body)).toEqual({
      number: 2,
      size: 256,
      additional_slave_SAE_IDs: ['sae3'],
      extension_mandatory: [{ abc_route_type: 'direct' }],
      extension_optional: [{ abc_max_age: 30000 }],
    })
    expect(JSON.parse(seen[3]!.body)).toEqual({ key_IDs: ids.map((id) => ({ key_ID: id })) })
    expect(seen[1]!.headers['content-type']).toBe('application/json')
    expect(seen.map((request) => request.headers.accept)).toEqual(Array(5).fill('application/json'))
    expect([seen[0]!.body, seen[2]!.body, seen[4]!.body]).toEqual(['', '', ''])
    expect(seen.every((request) => request.cn === 'sae1')).toBe(true) // its certificate, on every request
    // A POST with nothing to say sends an empty Key request.
    await sae.getKeys('sae2', { number: 2 })
    expect(JSON.parse(seen[5]!.body)).toEqual({ number: 2 })
  })

  it('checks its arguments before sending anything', async () => {
    const { url, seen } = await rawKme((_request, response) => json(response, 200, statusBody))
    const sae = client({ url })
    const refusals: [Promise<unknown>, string][] = [
      [sae.getKeys('sae2', { size: 100 }), 'ERR_OUT_OF_RANGE'],
      [sae.getKeys('sae2', { size: 0 }), 'ERR_OUT_OF_RANGE'],
      [sae.getKeys('sae2', { number: 0 }), 'ERR_OUT_OF_RANGE'],
      [sae.getKeys('sae2', { number: 1.5 }), 'ERR_OUT_OF_RANGE'],
      [sae.getKeys('sae2', { number: '2' as unknown as number }), 'ERR_INVALID_ARG_TYPE'],
      [sae.getKeys('sae2', { method: 'GET', additionalSlaveSaeIds: ['sae3'] }), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeys('sae2', { method: 'GET', extensionOptional: [{ a: 1 }] }), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeys('sae2', { method: 'PUT' as 'GET' }), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeys('sae2', { extensionMandatory: {} as Record<string, unknown>[] }), 'ERR_INVALID_ARG_TYPE'],
      [sae.getKeys('sae2', { extensionMandatory: [{ big: 1n }] }), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeys('sae2', { additionalSlaveSaeIds: [''] }), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeys('sae2', { colour: 'red' } as object), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeys('', {}), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeys(7 as unknown as string), 'ERR_INVALID_ARG_TYPE'],
      [sae.getKeys('sae2', { signal: 'no' as unknown as AbortSignal }), 'ERR_INVALID_ARG_TYPE'],
      [sae.getKeysWithIds('sae1', []), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeysWithIds('sae1', ['not-a-uuid']), 'ERR_INVALID_ARG_VALUE'],
      [sae.getKeysWithIds('sae1', 'x' as unknown as string[]), 'ERR_INVALID_ARG_TYPE'],
      [sae.getKeysWithIds('sae1', [randomUUID(), randomUUID()], { method: 'GET' }), 'ERR_INVALID_ARG_VALUE'],
      [(() => { const id = randomUUID(); return sae.getKeysWithIds('sae1', [id, id.toUpperCase()]) })(), 'ERR_INVALID_ARG_VALUE'],
      [sae.status('sae2', { method: 'POST' } as object), 'ERR_INVALID_ARG_VALUE'],
    ]
    for (const [promise, code] of refusals) await expect(promise).rejects.toMatchObject({ code })
    expect(seen).toEqual([])
    const base = { cert: certificates.clients.sae1!.cert, key: certificates.clients.sae1!.key, ca: certificates.caCert }
    expect(() => new KmeClient({ ...base, url: 'http://127.0.0.1:1' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new KmeClient({ ...base, url: 'https://u:p@127.0.0.1:1' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new KmeClient({ ...base, url: 'https://127.0.0.1:1/?x=1' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new KmeClient({ ...base, url: 'not a url' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new KmeClient({ ...base, url: 'https://127.0.0.1:1', cert: 5 as unknown as string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new KmeClient({ ...base, url: 'https://127.0.0.1:1', ca: '' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new KmeClient({ ...base, url: 'https://127.0.0.1:1', timeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new KmeClient({ ...base, url: 'https://127.0.0.1:1', retries: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new KmeClient({ ...base, url: 'https://127.0.0.1:1', colour: 1 } as KmeClientOptions)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    // PEM as Buffers serves as well as text.
    const buffers = client({ url, cert: Buffer.from(base.cert), key: Buffer.from(base.key), ca: Buffer.from(base.ca) })
    expect(await buffers.status('sae2')).toEqual(statusBody)
  })

  it('malformed answers are ERR_KME_RESPONSE (or the status code), never a crash or a hang', async () => {
    let answer: Handler = () => {}
    const { url } = await rawKme((request, response, body) => answer(request, response, body))
    const sae = client({ url, retries: 0, maxResponseBytes: 4096 })
    const id = randomUUID()
    const cases: [string, Handler, () => Promise<unknown>, object][] = [
      ['not JSON', (_q, r) => json(r, 200, '{"source_KME_ID": '), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE', status: 200, message: expect.stringContaining('not JSON') }],
      ['not UTF-8', (_q, r) => json(r, 200, Buffer.from([0x22, 0xc3, 0x28, 0x22])), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('not UTF-8') }],
      ['text/html', (_q, r) => json(r, 200, statusBody, 'text/html'), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('text/html') }],
      ['no content type', (_q, r) => r.end(JSON.stringify(statusBody)), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE' }],
      ['a missing status field', (_q, r) => json(r, 200, { ...statusBody, max_SAE_ID_count: undefined }), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('max_SAE_ID_count is missing') }],
      ['a status field of another type', (_q, r) => json(r, 200, { ...statusBody, key_size: '352' }), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('key_size') }],
      ['a negative count', (_q, r) => json(r, 200, { ...statusBody, stored_key_count: -1 }), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE' }],
      ['a status_extension not an object', (_q, r) => json(r, 200, { ...statusBody, status_extension: 3 }), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE' }],
      ['an array', (_q, r) => json(r, 200, []), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE' }],
      ['no keys', (_q, r) => json(r, 200, { kees: [] }), () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('keys are missing') }],
      ['a key not base64', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: 'not base64!' }] }), () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('not base64') }],
      ['a key without padding', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: 'AAAA' + 'AA' }] }), () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE' }],
      ['an empty key', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: '' }] }), () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE' }],
      ['a key_ID not a UUID', (_q, r) => json(r, 200, { keys: [{ key_ID: 'k1', key: key32() }] }), () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('not a UUID') }],
      ['a key missing', (_q, r) => json(r, 200, { keys: [{ key_ID: id }] }), () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('key is missing') }],
      ['fewer keys than asked', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: key32() }] }), () => sae.getKeys('sae2', { number: 2 }), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('1 key for 2 asked') }],
      ['a key of another size', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: key32() }] }), () => sae.getKeys('sae2', { size: 128 }), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('256 bits for 128') }],
      ['a key_ID twice', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: key32() }, { key_ID: id, key: key32() }] }), () => sae.getKeys('sae2', { number: 2 }), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('twice') }],
      ['a key not asked for', (_q, r) => json(r, 200, { keys: [{ key_ID: randomUUID(), key: key32() }] }), () => sae.getKeysWithIds('sae1', [id]), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('not asked for') }],
      ['a key asked for missing', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: key32() }] }), () => sae.getKeysWithIds('sae1', [id, randomUUID()]), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('1 key for 2 asked') }],
      ['a key_extension not an object', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: key32(), key_extension: 'x' }] }), () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE' }],
      ['too large, declared', (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: Buffer.alloc(8192).toString('base64') }] }), () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('larger than 4096 bytes') }],
      ['too large, chunked', (_q, r) => { r.writeHead(200, { 'content-type': 'application/json' }); r.write('['.repeat(3000)); r.write('['.repeat(3000)); r.end() }, () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('larger than') }],
      ['cut short', (_q, r) => { r.writeHead(200, { 'content-type': 'application/json', 'content-length': 1000 }); r.write('{"keys":'); setTimeout(() => r.destroy(), 20) }, () => sae.getKeys('sae2'), { code: 'ERR_KME_RESPONSE', message: expect.stringContaining('cut short') }],
      ['500', (_q, r) => json(r, 500, { message: 'key data access error' }), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE', status: 500, kmeMessage: 'key data access error' }],
      ['404 in HTML', (_q, r) => json(r, 404, '<html>not found</html>', 'text/html'), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE', status: 404, kmeMessage: undefined }],
      ['201', (_q, r) => json(r, 201, statusBody), () => sae.status('sae2'), { code: 'ERR_KME_RESPONSE', status: 201 }],
      ['400 without a body', (_q, r) => { r.writeHead(400); r.end() }, () => sae.status('sae2'), { code: 'ERR_KME_BAD_REQUEST', status: 400, kmeMessage: undefined, details: undefined }],
      ['400 with details not objects', (_q, r) => json(r, 400, { message: 'bad', details: [1] }), () => sae.status('sae2'), { code: 'ERR_KME_BAD_REQUEST', kmeMessage: 'bad', details: undefined }],
      ['401', (_q, r) => json(r, 401, { message: 'who are you' }), () => sae.getKeysWithIds('sae1', [id]), { code: 'ERR_KME_UNAUTHORIZED', status: 401, kmeMessage: 'who are you' }],
    ]
    for (const [what, handler, call, expected] of cases) {
      answer = handler
      const error = await within(
        call().then(
          () => new Error(`${what}: no error`),
          (caught: unknown) => caught,
        ),
        5000,
        what,
      )
      expect(error, what).toBeInstanceOf(KmeError)
      expect(error, what).toMatchObject(expected)
    }
    // The extensions of a well-formed container are passed through.
    answer = (_q, r) => json(r, 200, { keys: [{ key_ID: id, key: key32(), key_ID_extension: { a: 1 }, key_extension: { b: 2 } }], key_container_extension: { c: 3 } })
    const container = await sae.getKeys('sae2')
    expect(container).toEqual({ keys: [{ keyId: id, key: new Uint8Array(32).fill(7), keyIdExtension: { a: 1 }, keyExtension: { b: 2 } }], extension: { c: 3 } })
    // Each key in a buffer of its own (not a view of node's shared pool), which its holder may wipe.
    expect(container.keys[0]!.key.buffer.byteLength).toBe(32)
    expect(container.keys[0]!.key.byteOffset).toBe(0)
    answer = (_q, r) => json(r, 200, { ...statusBody, status_extension: { x: 1 }, vendor_field: 2 }, 'application/json; charset=UTF-8')
    expect(await sae.status('sae2')).toEqual({ ...statusBody, status_extension: { x: 1 } })
  })

  it('a KME that never answers: ERR_KME_TIMEOUT after timeoutMs, not retried', async () => {
    let stall: Handler = () => {}
    const { url, seen } = await rawKme((request, response, body) => stall(request, response, body))
    const sae = client({ url, timeoutMs: 150, retryDelayMs: 1 })
    const started = performance.now()
    await expect(within(sae.status('sae2'), 5000, 'the timeout')).rejects.toMatchObject({ code: 'ERR_KME_TIMEOUT', message: expect.stringContaining('150 ms') })
    expect(performance.now() - started).toBeLessThan(2000)
    expect(seen).toHaveLength(1)
    // Nor one that sends its headers and then stalls in the body.
    stall = (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json', 'content-length': 100 })
      r.write('{')
    }
    await expect(within(sae.status('sae2'), 5000, 'the timeout')).rejects.toMatchObject({ code: 'ERR_KME_TIMEOUT' })
  })

  it('a refused connection is retried (the KME starting), and is ERR_KME_UNAVAILABLE when it lasts', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as AddressInfo
        probe.close(() => resolve(free))
      })
    })
    const url = `https://127.0.0.1:${port}`
    const giveUp = client({ url, retries: 2, retryDelayMs: 10 })
    const error = await giveUp.status('sae2').catch((caught: unknown) => caught)
    expect(error).toMatchObject({ code: 'ERR_KME_UNAVAILABLE', status: undefined, message: expect.stringContaining('after 3 attempts'), cause: expect.objectContaining({ code: 'ECONNREFUSED' }) })
    const patient = client({ url, retries: 8, retryDelayMs: 50 })
    const answer = patient.status('sae2')
    // Get key too: a refused connection cannot have carried its request.
    const keys = patient.getKeys('sae2')
    await new Promise((resolve) => setTimeout(resolve, 120))
    const id = randomUUID()
    await rawKme((q, r) => (q.url!.includes('enc_keys') ? json(r, 200, { keys: [{ key_ID: id, key: key32() }] }) : json(r, 200, statusBody)), { port })
    expect(await within(answer, 10_000, 'the retried status')).toEqual(statusBody)
    expect((await within(keys, 10_000, 'the retried Get key')).keys[0]!.keyId).toBe(id)
  })

  it('a connection that fails once Get key or Get key with key IDs was sent: not tried again, ERR_KME_UNAVAILABLE; Get status is', async () => {
    // The KME takes each request, works on it a moment (its session tickets go out meanwhile: node's TLS
    // server sends them on a later turn), and drops its connection without an answer.
    let statusDrops = 2
    const { url, seen } = await rawKme((request, response) => {
      if (request.url!.includes('/status') && statusDrops-- <= 0) return json(response, 200, statusBody)
      setTimeout(() => request.socket.destroy(), 10)
    })
    const sae = client({ url, retries: 3, retryDelayMs: 1 })
    // On a new connection: no TLS refusal (the KME's session ticket came), and no retry.
    const taken = await within(sae.getKeys('sae2', { number: 2 }), 5000, 'Get key').catch((caught: unknown) => caught)
    expect(taken).toBeInstanceOf(KmeError)
    expect(taken).toMatchObject({ code: 'ERR_KME_UNAVAILABLE', status: undefined, message: expect.stringContaining('may have carried it out; keys may have been taken'), cause: expect.objectContaining({ code: 'ECONNRESET' }) })
    expect((taken as Error).message).not.toContain('certificate')
    // Get status takes nothing: it is tried again (twice dropped, then answered), and keeps its connection.
    expect(await within(sae.status('sae2'), 5000, 'Get status')).toEqual(statusBody)
    // On that kept-alive connection, Get key with key IDs: not tried again either.
    const handedOut = await within(sae.getKeysWithIds('sae1', [randomUUID()]), 5000, 'Get key with key IDs').catch((caught: unknown) => caught)
    expect(handedOut).toMatchObject({ code: 'ERR_KME_UNAVAILABLE', message: expect.stringContaining('the keys may have been handed out') })
    expect(seen.map((request) => request.url.split('/').pop())).toEqual(['enc_keys', 'status', 'status', 'status', 'dec_keys'])
    // And when Get status's retries run out, the same failure is ERR_KME_UNAVAILABLE, not a TLS refusal.
    statusDrops = Infinity
    await expect(within(client({ url, retries: 1, retryDelayMs: 1 }).status('sae2'), 5000, 'Get status')).rejects.toMatchObject({
      code: 'ERR_KME_UNAVAILABLE',
      message: expect.stringContaining('failed before any answer after 2 attempts'),
    })
  })

  it("a KME that ends a new connection at the handshake refused this SAE's certificate: ERR_KME_TLS, not tried again", async () => {
    // A client certificate of another CA: node's TLS server ends the connection without an alert, during the
    // handshake in TLS 1.2, right after the client's side of it in TLS 1.3 (the request then sent already).
    for (const maxVersion of [undefined, 'TLSv1.2'] as const) {
      const { url, server } = await rawKme((_q, r) => json(r, 200, statusBody), maxVersion === undefined ? {} : { maxVersion })
      let refused = 0
      server.on('tlsClientError', () => refused++)
      const stranger = new KmeClient({ url, cert: foreign.clients.sae1!.cert, key: foreign.clients.sae1!.key, ca: certificates.caCert, retryDelayMs: 1 })
      clients.push(stranger)
      const calls: (() => Promise<unknown>)[] = [() => stranger.status('sae2'), () => stranger.getKeys('sae2')]
      for (const call of calls) {
        await expect(within(call(), 5000, `a refusal (${maxVersion ?? 'TLSv1.3'})`)).rejects.toMatchObject({ code: 'ERR_KME_TLS', message: expect.stringContaining("refused this SAE's certificate") })
      }
      expect(refused).toBe(2)
    }
  })

  it('the KME must have a certificate of the CA given, for the name in the URL', async () => {
    const { url } = await rawKme((_q, r) => json(r, 200, statusBody), { certificates: foreign })
    await expect(client({ url }).status('sae2')).rejects.toMatchObject({ code: 'ERR_KME_TLS', cause: expect.objectContaining({ code: 'SELF_SIGNED_CERT_IN_CHAIN' }) })
    const { url: own } = await rawKme((_q, r) => json(r, 200, statusBody))
    const elsewhere = own.replace('127.0.0.1', 'localhost') // its certificate names 127.0.0.1 only
    await expect(client({ url: elsewhere }).status('sae2')).rejects.toMatchObject({ code: 'ERR_KME_TLS', cause: expect.objectContaining({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' }) })
  })

  it('abort: before the request, while it waits for an answer, and between retries', async () => {
    const { url, seen } = await rawKme((request, response) => {
      if (request.url!.includes('enc_keys')) return json(response, 503, { message: 'no keys' })
      // status: never answered
    })
    const sae = client({ url, retryDelayMs: 10_000 })
    const reason = new Error('stop')
    await expect(sae.status('sae2', { signal: AbortSignal.abort(reason) })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: reason })
    expect(seen).toHaveLength(0)
    const waiting = new AbortController()
    const pending = sae.status('sae2', { signal: waiting.signal })
    setTimeout(() => waiting.abort(), 50)
    const started = performance.now()
    await expect(within(pending, 5000, 'the abort')).rejects.toMatchObject({ code: 'ABORT_ERR' })
    expect(performance.now() - started).toBeLessThan(2000)
    const retrying = new AbortController()
    const again = sae.getKeys('sae2', { signal: retrying.signal })
    setTimeout(() => retrying.abort(), 100) // during the 10 s wait after the first 503
    await expect(within(again, 5000, 'the abort between retries')).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it('close(): requests in flight and later ones fail with ERR_KME_CLOSED', async () => {
    const { url } = await rawKme(() => {})
    const sae = client({ url })
    const pending = sae.status('sae2')
    await new Promise((resolve) => setTimeout(resolve, 50))
    sae.close()
    await expect(within(pending, 5000, 'the close')).rejects.toMatchObject({ code: 'ERR_KME_CLOSED' })
    await expect(sae.getKeys('sae2')).rejects.toMatchObject({ code: 'ERR_KME_CLOSED' })
    sae.close() // twice is harmless
  })

  it('many requests at once: no MaxListenersExceededWarning', async () => {
    const warnings: Error[] = []
    const onWarning = (warning: Error): void => void warnings.push(warning)
    process.on('warning', onWarning)
    try {
      const { url } = await rawKme((_q, r) => setTimeout(() => json(r, 200, statusBody), 20))
      const sae = client({ url })
      const answers = await within(Promise.all(Array.from({ length: 20 }, () => sae.status('sae2'))), 5000, '20 statuses')
      expect(answers).toHaveLength(20)
      await new Promise((resolve) => setImmediate(resolve)) // warnings are emitted on a later tick
      expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([])
    } finally {
      process.off('warning', onWarning)
    }
  })

  it('keeps its connection alive between requests', async () => {
    const { url, server } = await rawKme((_q, r) => json(r, 200, statusBody))
    let connections = 0
    server.on('secureConnection', () => connections++)
    const sae = client({ url })
    for (let i = 0; i < 5; i++) await sae.status('sae2')
    expect(connections).toBe(1)
  })
})
