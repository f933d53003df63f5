// One side of bench/sync.ts, in a process of its own (so that each side's peak RSS is its own):
//   --role manager: a Volley Server and a SyncManager on loopback; prints {"port"} once listening, then for
//     "report" on stdin the manager's figures, and exits at the end of stdin.
//   --role fill: writes a queue file of --items items (the agents' template), prints how long it took.
//   --role agent: takes a copy of the template, connects, runs one DELTA sync of everything in it, prints its
//     figures and exits.
// The digest of a copy is the count of its documents and two sums of a CRC-32 of each one's id, index and
// data (from two starting values), mod 2^32: the same for the same set whatever the order, so the two sides
// compare their copies without either holding one, and cheaply (a SHA-1 per item took a third of the
// manager's time, which the agent, on the same two cores, then lacked).
import { crc32 } from 'node:zlib'
import { copyFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Client, Server, generateConnectToken } from '../../src/index.ts'
import { SyncAgent } from '../../src/sessions/sync/agent.ts'
import { SyncManager } from '../../src/sessions/sync/manager.ts'
import type { SyncItem, SyncSessionInfo, SyncSink } from '../../src/sessions/sync/sink.ts'
import { SqliteSyncSink } from '../../src/sessions/sync/sqlite-sink.ts'
import { ClientTransport } from '../../src/sessions/volley-transport.ts'

const syncBenchIndex = 'wazuh-states-inventory-packages'
const protocolId = 0x5e0002n
const channels = [{ mode: 'reliable' as const }, { mode: 'unreliable' as const }]
/** Count, and the two sums. */
const DIGEST_WORDS = 3
const SECOND_START = 0x9e3779b9

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    channel: { type: 'string', default: 'reliable' },
    loss: { type: 'string', default: '0' },
    key: { type: 'string' },
    port: { type: 'string' },
    items: { type: 'string', default: '0' },
    'item-bytes': { type: 'string', default: '200' },
    queue: { type: 'string' },
    template: { type: 'string' },
    sink: { type: 'string', default: 'digest' },
  },
})
const channelMode = values.channel === 'unreliable' ? 'unreliable' : 'reliable'
const channel = channelMode === 'reliable' ? 0 : 1
const loss = Number(values.loss)
const privateKey = Buffer.from(values.key ?? '', 'hex')
const simulator = (seed: number) => (loss > 0 ? { networkSimulator: { loss, seed } } : {})
const peakRssMb = (): number => process.resourceUsage().maxRSS / 1024

function itemDigest(digest: Uint32Array, id: string, index: string, data: Uint8Array): void {
  const key = `${id}\0${index}\0`
  digest[0] = (digest[0]! + 1) >>> 0
  digest[1] = (digest[1]! + crc32(data, crc32(key))) >>> 0
  digest[2] = (digest[2]! + crc32(data, crc32(key, SECOND_START))) >>> 0
}

const digestHex = (digest: Uint32Array): string => Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex')

/** A sink that keeps no documents: the digest of each session's items, folded into its agent's on commit. */
class DigestSink implements SyncSink {
  readonly #sessions = new Map<bigint, Uint32Array>()
  readonly agents = new Map<string, Uint32Array>()
  documents = 0
  stage(session: SyncSessionInfo, item: SyncItem): void {
    if (item.kind !== 'value') return
    let digest = this.#sessions.get(session.id)
    if (digest === undefined) this.#sessions.set(session.id, (digest = new Uint32Array(DIGEST_WORDS)))
    itemDigest(digest, item.id, item.index, item.data)
  }
  commit(session: SyncSessionInfo): void {
    const digest = this.#sessions.get(session.id) ?? new Uint32Array(DIGEST_WORDS)
    this.#sessions.delete(session.id)
    const agent = this.agents.get(session.agentId) ?? new Uint32Array(DIGEST_WORDS)
    for (let i = 0; i < DIGEST_WORDS; i++) agent[i] = (agent[i]! + digest[i]!) >>> 0
    this.agents.set(session.agentId, agent)
    this.documents += session.size
  }
  discard(session: SyncSessionInfo): void {
    this.#sessions.delete(session.id)
  }
  checksum(): string {
    return ''
  }
}

async function manager(): Promise<void> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 8, channels, ...simulator(11) })
  const { port } = await server.listen()
  const sink = values.sink === 'sqlite' ? new SqliteSyncSink(values.queue ?? ':memory:') : new DigestSink()
  const syncManager = new SyncManager({ sink })
  syncManager.listen(server, { channel, channelMode })
  process.stdout.write(`${JSON.stringify({ port })}\n`)
  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (line !== 'report') continue
    const stats = syncManager.stats()
    const digest = sink instanceof DigestSink ? digestHex(sink.agents.get('bench') ?? new Uint32Array(DIGEST_WORDS)) : null
    process.stdout.write(`${JSON.stringify({ digest, peakRssMb: peakRssMb(), retransmitRequests: stats.retransmitRequests, retransmitRequestedItems: stats.retransmitRequestedItems, items: stats.items, dropped: stats.dropped })}\n`)
  }
  syncManager.close()
  if (sink instanceof SqliteSyncSink) sink.close()
  await server.close()
}

/** The queue's items: ids pkg-0000000 on, each with `itemBytes` of JSON-ish data. */
function itemOf(i: number, itemBytes: number): [string, Uint8Array] {
  const id = `pkg-${String(i).padStart(7, '0')}`
  const data = Buffer.alloc(itemBytes, 0x61)
  data.write(`{"name":"${id}","version":"${i % 1000}","pad":"`)
  data.write('"}', itemBytes - 2)
  return [id, data]
}

async function fill(): Promise<void> {
  const items = Number(values.items)
  const itemBytes = Number(values['item-bytes'])
  const started = performance.now()
  const filler = new SyncAgent({ module: 'bench', metadata: { agentid: 'bench', groups: ['bench'] }, queuePath: values.queue! })
  const digest = new Uint32Array(DIGEST_WORDS)
  for (let from = 0; from < items; from += 10_000) {
    const changes = Array.from({ length: Math.min(10_000, items - from) }, (_, k) => {
      const [id, data] = itemOf(from + k, itemBytes)
      itemDigest(digest, id, syncBenchIndex, data)
      return [id, 'create', syncBenchIndex, data] as const
    })
    filler.persistDifferences(changes)
  }
  await filler.close()
  process.stdout.write(`${JSON.stringify({ fillMs: performance.now() - started, digest: digestHex(digest) })}\n`)
}

async function agent(): Promise<void> {
  const queue = values.queue!
  copyFileSync(values.template!, queue)
  const client = new Client({ channels, ...simulator(12) })
  const token = await generateConnectToken({ protocolId, privateKey, clientId: 1n, serverAddresses: [`127.0.0.1:${values.port}`], expireSeconds: 600, timeoutSeconds: 30 })
  await client.connect(token)
  const syncAgent = new SyncAgent({ module: 'bench', metadata: { agentid: 'bench', groups: ['bench'] }, queuePath: queue, syncEndDelayMs: 0 })
  syncAgent.attach(new ClientTransport(client, { channel, channelMode }))
  const before = client.stats()
  const started = performance.now()
  const result = await syncAgent.synchronizeModule('delta')
  const ms = performance.now() - started
  const after = client.stats()
  const stats = syncAgent.stats()
  await syncAgent.close()
  await client.close()
  process.stdout.write(`${JSON.stringify({
    success: result.success,
    message: result.message,
    ms,
    peakRssMb: peakRssMb(),
    packetsOut: after.packets.out - before.packets.out,
    packetsIn: after.packets.in - before.packets.in,
    bytesOut: after.bytes.out - before.bytes.out,
    bytesIn: after.bytes.in - before.bytes.in,
    itemsResent: stats.itemsResent,
    messagesSent: stats.messagesSent,
    retries: stats.retries,
    endRepeats: stats.endRepeats,
    lost: after.networkSimulator?.lost ?? 0,
  })}\n`)
}

if (values.role === 'manager') await manager()
else if (values.role === 'fill') await fill()
else if (values.role === 'agent') await agent()
else throw new Error('--role manager|fill|agent')

