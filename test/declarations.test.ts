// The declarations a consumer gets, checked as a consumer checks them: emitted from src/ as the package's
// build does, installed as node_modules/volley, and compiled with skipLibCheck off, strict and
// exactOptionalPropertyTypes on, and the oldest lib the package supports (ES2020, Node 20's @types/node), so
// that a declaration needing a newer lib (ES2022's ErrorOptions did) fails here, not in a user's build.
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'

const repo = join(import.meta.dirname, '..')
// TypeScript 7's tsc (node_modules/typescript is TypeScript 6, for TypeDoc: package.json aliases both).
const tsc = join(repo, 'node_modules', '@typescript', 'native', 'bin', 'tsc')
const work = mkdtempSync(join(tmpdir(), 'volley-declarations-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

async function compile(args: string[]): Promise<{ status: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [tsc, ...args], { cwd: work })
    return { status: 0, output: stdout + stderr }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string }
    return { status: failed.code ?? 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` }
  }
}

/** The README's first example, as a user pastes it. */
function readmeExample(): string {
  const block = /```ts\n([\s\S]*?)```/.exec(readFileSync(join(repo, 'README.md'), 'utf8'))
  if (!block?.[1]) throw new Error('README.md has no ts block')
  return block[1]
}

const consumer = `
import { Client, ClientPool, Server, isVolleyError, type ConnectErrorCode, type LinkStats, type Peer } from 'volley'

const server = new Server({ protocolId: 1n, privateKey: new Uint8Array(32), address: '127.0.0.1:0',
  channels: [{ mode: 'reliable' }, { mode: 'unreliable' }] })
server.on('message', (peer, data, channel) => {
  const who: Peer = peer
  const size: number = data.byteLength + channel
  void who, size
})
server.on('disconnect', (peer, reason) => { const text: string = reason; void peer, text })
const client = new Client({ channels: [{ mode: 'reliable' }, { mode: 'unreliable' }] })
client.on('message', (data, channel) => { const n: number = data[0] ?? channel; void n })
const stats: LinkStats = client.stats()
const rttMs: number = stats.rtt.smoothedMs
client.connect(new Uint8Array(2048)).catch((error: unknown) => {
  if (isVolleyError(error)) { const code: string = error.code; void code }
})
const denied: ConnectErrorCode = 'ERR_CONNECTION_DENIED'
// @ts-expect-error a channel's mode is one of three words
new Client({ channels: [{ mode: 'reliabel' }] })
void rttMs, denied, ClientPool

// The session layer and MASH, from their subpaths.
import { ClientTransport, ConnectionManager, FakeClock, MemoryTransport, type SessionTransport } from 'volley/sessions'
import { MashController, MashDevice, MashStatus, MashStatusError, type MashValue } from 'volley/mash'
const [near, far] = MemoryTransport.pair()
const clock = new FakeClock()
const device = new MashDevice({ scheduler: clock, endpoints: [{ id: 1, features: [{ id: 2, attributes: [{ id: 1, type: 'float', value: 0 }] }] }] })
device.serve(far)
const controller = new MashController(near, { scheduler: clock, requestTimeoutMs: 10_000 })
controller.read(1, 2, [1]).then((values: Map<number, MashValue>) => values.get(1)).catch((error: unknown) => {
  if (error instanceof MashStatusError) { const status: number = error.status; void status }
})
controller.on('notification', (subscription, changes, priming) => { const id: number = subscription.id + changes.size; void id, priming })
const manager = new ConnectionManager<SessionTransport>({ connect: async () => new ClientTransport(client) })
void MashStatus.BUSY, manager

// Resumable sessions, from their subpath.
import { MemorySessionStore, RedisSessionStore, SessionClient, SessionServer, type RedisClientLike } from 'volley/resumable'
const gateway = new SessionServer({ store: new MemorySessionStore(), onRequest: (payload, context) => { const id: number = context.requestId; void id; return payload } })
gateway.accept(far, { clientId: 7n })
gateway.on('sessionWarning', (session) => { const id: string = session.id; void id })
const sessionClient = new SessionClient({ capabilities: { app: 'consumer' }, connection: manager })
sessionClient.request(new Uint8Array([1])).then((answer: Uint8Array) => answer.byteLength).catch(() => {})
const redisStore = (redis: RedisClientLike) => new RedisSessionStore(redis, { prefix: 'app:{rs}:' })
void redisStore

// Key sync, from its subpath.
import { IssuerKey, KeySyncMaster, KeySyncSlave, KmeClient, KmeError, TransportLink, type CleanupResult } from 'volley/keysync'
const [masterLink, slaveLink] = TransportLink.pair()
const kme = new KmeClient({ url: 'https://127.0.0.1:8443', cert: '', key: '', ca: '' })
const keyMaster = new KeySyncMaster({ saeId: 'a', peerSaeId: 'b', link: masterLink, kme, scheduler: clock })
new KeySyncSlave({ saeId: 'b', peerSaeId: 'a', link: slaveLink, kme })
keyMaster.on('cleanup', (result: CleanupResult) => { const failed: string[] = result.failedKeyIds; void failed })
keyMaster.rotate({ rotationDelayMs: 60_000 }).then((rotation) => rotation.cleanup?.deletedKeyIds).catch((error: unknown) => {
  if (error instanceof KmeError) { const code: string = error.code; void code }
})
const issuer = new IssuerKey(keyMaster)
const current: Uint8Array | undefined = issuer.current
void current

// Metrics, from their subpaths (prom-client and @opentelemetry/api are the user's own: optional peers).
import { ServerMetrics, mergeMetricSnapshots, type MetricSnapshot } from 'volley/metrics'
import { registerPrometheusMetrics } from 'volley/metrics/prometheus'
import { registerOpenTelemetryMetrics } from 'volley/metrics/opentelemetry'
import { Registry } from 'prom-client'
import { metrics } from '@opentelemetry/api'
const serverMetrics = new ServerMetrics(server)
const merged: MetricSnapshot = mergeMetricSnapshots(serverMetrics.snapshot(), serverMetrics.snapshot())
registerPrometheusMetrics(() => merged, { registry: new Registry(), prefix: 'app_', labels: { shard: '1' } }).close()
registerOpenTelemetryMetrics(serverMetrics, { meter: metrics.getMeter('app') }).close()

// Diagnostics: the channels' messages and the logger option.
import type { PeerDisconnectMessage, VolleyLogger } from 'volley'
const logger: VolleyLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
new Server({ protocolId: 1n, privateKey: new Uint8Array(32), address: '127.0.0.1:0', logger })
const onDisconnect = (message: PeerDisconnectMessage) => { const reason: string = message.reason; void reason }
void onDisconnect
`

describe('the published declarations', () => {
  it('compile in a consumer with skipLibCheck off, on lib ES2020', { timeout: 120_000 }, async () => {
    const pkg = join(work, 'node_modules', 'volley')
    mkdirSync(pkg, { recursive: true })
    cpSync(join(repo, 'package.json'), join(pkg, 'package.json'))
    const emitted = await compile(['-p', join(repo, 'tsconfig.build.json'), '--emitDeclarationOnly', '--sourceMap', 'false',
      '--outDir', join(pkg, 'dist')])
    expect(emitted.output).toBe('')
    expect(emitted.status).toBe(0)

    // The types a consumer's install has: the package's dependencies (and its peer @types/node), not
    // its devDependencies. Pointing typeRoots at this repository's @types found libsodium-wrappers' types,
    // which the declarations need and which a consumer's install did not bring (a devDependency then).
    const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; peerDependencies: Record<string, string> }
    for (const name of [...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies)].filter((name) => name.startsWith('@types/'))) {
      mkdirSync(join(work, 'node_modules', '@types'), { recursive: true })
      symlinkSync(join(repo, 'node_modules', name), join(work, 'node_modules', name))
    }
    // The optional peers a user of volley/metrics installs.
    for (const name of ['prom-client', '@opentelemetry/api']) {
      mkdirSync(join(work, 'node_modules', dirname(name)), { recursive: true })
      symlinkSync(join(repo, 'node_modules', name), join(work, 'node_modules', name))
    }
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
    writeFileSync(join(work, 'readme.ts'), readmeExample())
    writeFileSync(join(work, 'consumer.ts'), consumer)
    writeFileSync(join(work, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2020', lib: ['ES2020'], module: 'nodenext', moduleResolution: 'nodenext', noEmit: true,
        strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, skipLibCheck: false,
        types: ['node'],
      },
      files: ['readme.ts', 'consumer.ts'],
    }))
    const checked = await compile(['-p', join(work, 'tsconfig.json')])
    expect(checked.output).toBe('')
    expect(checked.status).toBe(0)
    // And as a bundler's project resolves them (the declarations' relative imports keep their .ts names).
    writeFileSync(join(work, 'tsconfig.bundler.json'), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { module: 'esnext', moduleResolution: 'bundler' } }))
    const bundled = await compile(['-p', join(work, 'tsconfig.bundler.json')])
    expect(bundled.output).toBe('')
    expect(bundled.status).toBe(0)
  })
})
