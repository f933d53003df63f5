// The agent sync demo (npm run demo:sync): agents keep a manager's copy of their package inventories
// current through one Volley gateway on loopback, over a link that loses 5 % of the datagrams each way
// (the network simulator). A first sync sends each agent's whole inventory, a second the changes (some
// packages upgraded, removed, installed); the protocol resends what is lost (ReqRet ranges). Then each agent
// asks for an integrity check (its checksum against the manager's), and the summary compares every copy
// with its agent's documents. The manager's copy is a SQLite file (SqliteSyncSink).
//   npm run demo:sync -- --agents 20 --items 5000 --loss 5 --channel unreliable
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setMaxListeners } from 'node:events'
import { Client, Server, generateConnectToken, generateKey } from '../index.ts'
import { fallbackReason } from '../engine/choose.ts'
import { SyncAgent, type SyncResult } from '../sessions/sync/agent.ts'
import { SyncManager } from '../sessions/sync/manager.ts'
import { documentHash, inventoryChecksum } from '../sessions/sync/sink.ts'
import { SqliteSyncSink } from '../sessions/sync/sqlite-sink.ts'
import { ClientTransport } from '../sessions/volley-transport.ts'
import { UsageError, exitOnCommandError, exitWithHelp, interruptedStatus, interruption, numberArgument, parseCommandLine, pause, seeHelp, tolerateClosedOutput } from './arguments.ts'

const usage = 'usage: npm run demo:sync -- [--agents 20] [--items 5000] [--loss 5] [--channel unreliable|reliable] [--db FILE]'
const seeUsage = seeHelp('npm run demo:sync -- --help')
const help = `${usage}

Agents sync their package inventories to a manager through one Volley gateway on loopback, over a link that
loses datagrams at random each way. A full inventory first, then a round of changes; the protocol asks again
for exactly what was lost. Then an integrity check (checksums), and a summary that compares each agent's
documents with the manager's copy.
  --agents    how many agents, a connection each (1 to 1,000; default 20)
  --items     packages per agent (1 to 1,000,000; default 5,000)
  --loss      datagrams lost each way, % (0 to 50; default 5)
  --channel   unreliable (the default: the protocol resends what is lost) or reliable (Volley does)
  --db        the manager's SQLite file (default: a temporary one, removed at the end)
Ctrl-C ends it early, with the summary so far; a second Ctrl-C ends it at once.`

function settings() {
  const { values } = parseCommandLine({
    options: {
      agents: { type: 'string' },
      items: { type: 'string' },
      loss: { type: 'string' },
      channel: { type: 'string' },
      db: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) exitWithHelp(help)
  const channel = values.channel ?? 'unreliable'
  if (channel !== 'unreliable' && channel !== 'reliable') throw new UsageError(`--channel must be unreliable or reliable. Received '${channel}'`)
  return {
    agentCount: numberArgument('agents', values.agents, 20, { integer: true, min: 1, max: 1_000 }),
    items: numberArgument('items', values.items, 5_000, { integer: true, min: 1, max: 1_000_000 }),
    lossPercent: numberArgument('loss', values.loss, 5, { min: 0, max: 50 }),
    channelMode: channel as 'unreliable' | 'reliable',
    db: values.db,
  }
}

let demo: ReturnType<typeof settings>
try {
  demo = settings()
} catch (error) {
  exitOnCommandError('volley demo:sync', seeUsage, error)
}
const { agentCount, items, lossPercent, channelMode } = demo
const INDEX = 'wazuh-states-inventory-packages'
const protocolId = 0x5e0002n
const channels = [{ mode: 'reliable' as const }, { mode: 'unreliable' as const }]
const channel = channelMode === 'reliable' ? 0 : 1
const simulator = (seed: number) => (lossPercent > 0 ? { networkSimulator: { loss: lossPercent / 100, seed } } : {})
const thousands = (n: number): string => Math.round(n).toLocaleString('en-US')

tolerateClosedOutput()
const interrupted = interruption()
setMaxListeners(agentCount + 10, interrupted)
const work = mkdtempSync(join(tmpdir(), 'volley-demo-sync-'))
const dbPath = demo.db ?? join(work, 'manager.db')
const privateKey = await generateKey()
const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: agentCount, channels, ...simulator(1) })
const { port } = await server.listen()
const sink = new SqliteSyncSink(dbPath)
const manager = new SyncManager({ sink })
manager.listen(server, { channel, channelMode })
const fallback = fallbackReason()
console.log(
  `volley demo:sync: a manager behind a Volley gateway on 127.0.0.1:${port} (its copy in ${demo.db ?? 'a temporary SQLite file'}); ` +
    `${thousands(agentCount)} agents × ${thousands(items)} packages over the ${channelMode} channel, ${lossPercent} % of the datagrams lost each way; ` +
    `${fallback === undefined ? 'native engine' : `fallback engine (${fallback})`}`,
)

/** An agent, and its documents as it knows them (what the manager's copy must equal). */
interface DemoAgent {
  readonly id: string
  readonly client: Client
  readonly agent: SyncAgent
  readonly documents: Map<string, string>
  result?: SyncResult
}

function packageDocument(id: string, version: number): string {
  return JSON.stringify({ package: { name: id, version: `${version}.${id.length % 7}.0`, architecture: 'amd64', source: 'debian' } })
}

const agents: DemoAgent[] = []
try {
  for (let i = 0; i < agentCount && !interrupted.aborted; i++) {
    const id = String(i + 1).padStart(3, '0')
    const client = new Client({ channels, ...simulator(100 + i) })
    const token = await generateConnectToken({ protocolId, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 3600, timeoutSeconds: 15 })
    await client.connect(token, { signal: interrupted })
    const agent = new SyncAgent({
      module: 'syscollector',
      metadata: { agentid: id, agentname: `edge-${id}`, groups: ['default'], osname: 'Debian GNU/Linux', ostype: 'linux' },
      queuePath: join(work, `agent-${id}.db`),
      syncEndDelayMs: 100,
      responseTimeoutMs: 2_000,
    })
    agent.attach(new ClientTransport(client, { channel, channelMode }))
    agents.push({ id, client, agent, documents: new Map() })
  }
} catch (error) {
  await shutdown()
  exitOnCommandError('volley demo:sync', seeUsage, error)
}

/** One round: each agent records its changes, then all sync at once. */
async function round(name: string, change: (agent: DemoAgent) => [string, 'create' | 'modify' | 'delete'][]): Promise<{ items: number; ms: number }> {
  let changed = 0
  for (const each of agents) {
    const changes = change(each)
    each.agent.persistDifferences(changes.map(([id, operation]) => {
      if (operation === 'delete') each.documents.delete(id)
      else each.documents.set(id, packageDocument(id, name === 'full' ? 1 : 2))
      return [id, operation, INDEX, each.documents.get(id) ?? ''] as const
    }))
    changed += changes.length
  }
  const before = manager.stats()
  const started = performance.now()
  const ticker = setInterval(() => progress(name, before, started, changed), 1000)
  await Promise.all(agents.map(async (each) => (each.result = await each.agent.synchronizeModule('delta'))))
  clearInterval(ticker)
  progress(name, before, started, changed)
  return { items: changed, ms: performance.now() - started }
}

let lastStaged = 0
let lastAt = 0
function progress(name: string, before: ReturnType<SyncManager['stats']>, started: number, total: number): void {
  const stats = manager.stats()
  const now = performance.now()
  const staged = stats.items - before.items
  const rate = lastAt === 0 || now - lastAt < 1 ? staged / ((now - started) / 1000) : (staged - lastStaged) / ((now - lastAt) / 1000)
  lastStaged = staged
  lastAt = now
  const done = agents.filter((each) => each.result !== undefined).length
  console.log(
    `  ${((now - started) / 1000).toFixed(1).padStart(5)} s  ${name.padEnd(7)}  items ${thousands(staged).padStart(9)} of ${thousands(total)}   ` +
      `${thousands(rate).padStart(7)} items/s   resent ${thousands(stats.retransmitRequestedItems - before.retransmitRequestedItems)} items ` +
      `in ${thousands(stats.retransmitRequests - before.retransmitRequests)} ReqRets   agents done ${done}/${agents.length}`,
  )
}

const rounds: { name: string; items: number; ms: number; failed: number }[] = []
async function runRound(name: string, change: (agent: DemoAgent) => [string, 'create' | 'modify' | 'delete'][]): Promise<void> {
  if (interrupted.aborted) return
  for (const each of agents) delete each.result
  lastAt = 0
  lastStaged = 0
  const { items: count, ms } = await round(name, change)
  const failed = agents.filter((each) => each.result?.success !== true)
  for (const each of failed.slice(0, 3)) console.log(`    agent ${each.id}: ${each.result?.message ?? 'no result'}`)
  rounds.push({ name, items: count, ms, failed: failed.length })
}

const stopOnInterrupt = (): void => void Promise.all(agents.map((each) => each.agent.stop()))
interrupted.addEventListener('abort', stopOnInterrupt, { once: true })

await runRound('full', () => Array.from({ length: items }, (_, i) => [`pkg-${String(i).padStart(6, '0')}`, 'create']))
// A tenth changes: upgrades, removals, new packages.
await runRound('changes', (each) => {
  const changes: [string, 'create' | 'modify' | 'delete'][] = []
  const seed = Number(each.id)
  for (let i = 0; i < items; i++) {
    const pick = (i * 7919 + seed * 104_729) % 100
    const id = `pkg-${String(i).padStart(6, '0')}`
    if (pick < 5) changes.push([id, 'modify'])
    else if (pick < 7) changes.push([id, 'delete'])
    else if (pick < 10) changes.push([`new-${id}`, 'create'])
  }
  return changes
})

// The integrity check: each agent's checksum against the manager's (ModuleCheck), and the copies compared here.
let checksFalse = 0
let copiesEqual = 0
let documentCount = 0
if (!interrupted.aborted) {
  const checks = await Promise.all(agents.map((each) => each.agent.requiresFullSync(INDEX, checksumOf(each.documents))))
  checksFalse = checks.filter((needed) => !needed).length
  for (const each of agents) {
    const copy = sink.documents(each.id).get(INDEX) ?? new Map()
    documentCount += copy.size
    const equal = copy.size === each.documents.size && [...each.documents].every(([id, data]) => {
      const held = copy.get(id)
      return held !== undefined && Buffer.from(held.data).toString() === data
    })
    if (equal) copiesEqual++
  }
}

const lost = agents.reduce((sum, each) => sum + (each.client.stats().networkSimulator?.lost ?? 0), server.stats().networkSimulator?.lost ?? 0)
const stats = manager.stats()
await shutdown()

console.log('\nsummary')
for (const each of rounds) {
  console.log(`  ${each.name.padEnd(8)} ${thousands(each.items)} items in ${(each.ms / 1000).toFixed(1)} s, ${thousands(each.items / (each.ms / 1000))} items/s${each.failed > 0 ? `; ${each.failed} agents failed` : ''}`)
}
console.log(`  resent   ${thousands(stats.retransmitRequestedItems)} items asked for again in ${thousands(stats.retransmitRequests)} ReqRets; ${thousands(lost)} datagrams lost by the simulator`)
console.log(`  check    ${checksFalse} of ${agents.length} agents' checksums match the manager's (no full sync needed)`)
console.log(`  copies   ${copiesEqual} of ${agents.length} agents' copies equal to their documents (${thousands(documentCount)} documents at the manager)`)
const failed = rounds.some((each) => each.failed > 0) || checksFalse !== agents.length || copiesEqual !== agents.length || rounds.length < 2
if (interrupted.aborted) process.exitCode = interruptedStatus(interrupted)
else if (failed) process.exitCode = 1
process.exit()

function checksumOf(documents: Map<string, string>): string {
  return inventoryChecksum([...documents.values()].map((data) => documentHash(Buffer.from(data))))
}

async function shutdown(): Promise<void> {
  for (const each of agents) {
    await each.agent.close()
    await each.client.close()
  }
  manager.close()
  await server.close()
  sink.close()
  rmSync(work, { recursive: true, force: true })
  await pause(0, new AbortController().signal)
}
