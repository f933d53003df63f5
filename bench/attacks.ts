// The attack report: a volley server (a process of its own, bench/attacks/server.ts) beside honest clients (a
// process of their own, bench/attacks/honest.ts), attacked from this process by peers with valid connect
// tokens, one attack after the other. For each: what was sent, the server's CPU per attack packet (net of
// what it spends idle with the honest clients), its RSS growth, the bytes it sent back per byte it was sent,
// and whether fresh honest clients still connected, how fast, and whether any timed out.
//   npm run bench:attacks [-- --quick] [--only reassembly,challenges,...] [--render]
// Results: bench/results/latest-attacks.json (the full result of the latest run) and a line per run in
// bench/results/attacks-history.jsonl; a full run of every attack writes its table into docs/security.md
// (--render writes the latest result's again, running nothing).
import { randomBytes } from 'node:crypto'
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { PacketType } from '../src/protocol/netcode/constants.ts'
import { type Sodium, loadSodium } from '../src/protocol/netcode/sodium.ts'
import { DeliveryPackets, RawPeer, type Target, frames, loopbackSocket, tokenFor } from './lib/adversary.ts'
import { sleep } from './lib/connections-marks.ts'
import { BenchChild } from './lib/processes.ts'
import type { ResultMessage } from './lib/protocol.ts'
import { benchDir } from './lib/runner.ts'
import { systemInfo } from './lib/system.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, render: { type: 'boolean', default: false } }, strict: true })
const quick = values.quick
const root = join(benchDir, '..')
const key = randomBytes(32)
const protocolId = 0x5ecan
const maxMessageBytes = 16 << 20

interface Sent {
  packets: number
  bytes: number
  /** Bytes the server sent the attackers. */
  replyBytes: number
}
interface Attack {
  name: string
  /** What was sent, in words. */
  what: string
  /** Runs the attack; `during` is called once it is under way (the honest probe runs then). */
  run(target: Target, during: () => Promise<void>): Promise<Sent & { outcome: Record<string, number | string> }>
}

const totals = (peers: readonly RawPeer[]): Sent => ({
  packets: peers.reduce((sum, peer) => sum + peer.packetsOut, 0),
  bytes: peers.reduce((sum, peer) => sum + peer.bytesOut, 0),
  replyBytes: peers.reduce((sum, peer) => sum + peer.bytesIn, 0),
})

async function peers(sodium: Sodium, target: Target, count: number, clientId: (i: number) => bigint): Promise<RawPeer[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => RawPeer.open(sodium, target, tokenFor(sodium, target, clientId(i)))))
}

/** `count` peers with client ids from `firstId` on, connected. */
async function connected(sodium: Sodium, target: Target, count: number, firstId: number): Promise<RawPeer[]> {
  const made = await peers(sodium, target, count, (i) => BigInt(firstId + i))
  await Promise.all(made.map((peer) => peer.connect()))
  return made
}

/** What `attackers` sent, and were sent, while `attack` ran; they are closed after. */
async function sentWhile(attackers: readonly RawPeer[], attack: () => Promise<void>): Promise<Sent> {
  const before = totals(attackers)
  await attack()
  const after = totals(attackers)
  attackers.forEach((peer) => peer.close())
  return { packets: after.packets - before.packets, bytes: after.bytes - before.bytes, replyBytes: after.replyBytes - before.replyBytes }
}

/** Waits for an attack `running` to be under way, runs `during` (the honest probe), and waits for the attack to end. */
async function underWay(running: Promise<unknown>, during: () => Promise<void>): Promise<void> {
  await sleep(500)
  await during()
  await running
}

/** Runs `step` every `everyMs` until `untilMs` has passed or `done()` holds. */
async function repeat(step: () => void, everyMs: number, untilMs: number, done: () => boolean = () => false): Promise<number> {
  const started = performance.now()
  while (performance.now() - started < untilMs && !done()) {
    step()
    await sleep(everyMs)
  }
  return performance.now() - started
}

/** Runs `step` as often as this thread can (yielding to I/O between rounds) for `ms`. */
async function flood(step: () => void, ms: number): Promise<number> {
  const started = performance.now()
  let rounds = 0
  while (performance.now() - started < ms) {
    step()
    rounds++
    await new Promise((resolve) => setImmediate(resolve))
  }
  return rounds
}

/**
 * Sends from 10 sockets of their own (other addresses than any peer's), as fast as this thread can for `ms`:
 * each round, every datagram `round()` gives from each socket.
 */
async function fromSockets(target: Target, round: () => readonly Uint8Array[], ms: number, during: () => Promise<void>): Promise<Sent> {
  const sockets = await Promise.all(Array.from({ length: 10 }, () => loopbackSocket()))
  const sent: Sent = { packets: 0, bytes: 0, replyBytes: 0 }
  for (const socket of sockets) socket.on('message', (data) => (sent.replyBytes += data.byteLength))
  const running = flood(() => {
    const datagrams = round()
    for (const socket of sockets) {
      for (const data of datagrams) {
        socket.send(data, target.port, target.host)
        sent.packets++
        sent.bytes += data.byteLength
      }
    }
  }, ms)
  await underWay(running, during)
  sockets.forEach((socket) => socket.close())
  return sent
}

function attacks(sodium: Sodium): Attack[] {
  const seconds = quick ? 2 : 5
  return [
    {
      name: 'reassembly',
      what: `${quick ? 20 : 100} peers each announcing two 16 MiB messages (one per reliable channel) with a single 1,100-byte fragment each, sent again every 100 ms`,
      async run(target, during) {
        const attackers = await connected(sodium, target, quick ? 20 : 100, 1000)
        const numbers = attackers.map(() => new DeliveryPackets())
        const push = (): void =>
          attackers.forEach((peer, i) => {
            if (peer.state !== 'connected') return
            for (const channel of [0, 1]) {
              peer.send(PacketType.payload, numbers[i]!.packet(frames.settings(maxMessageBytes, [1, 1]), frames.fragment(channel, 0, maxMessageBytes, 1, 1100)))
            }
          })
        const gone = (): number => attackers.filter((peer) => peer.state === 'disconnected').length
        push()
        await during()
        const tookMs = await repeat(push, 100, quick ? 20_000 : 180_000, () => gone() === attackers.length)
        const sent = totals(attackers)
        attackers.forEach((peer) => peer.close())
        return { ...sent, outcome: { attackers: attackers.length, disconnected: gone(), allGoneAfterS: Math.round(tookMs / 100) / 10 } }
      },
    },
    {
      name: 'one-account',
      what: `1,100 tokens of one client id, their requests resent at 550 a second in all for ${seconds} s and never answered`,
      async run(target, during) {
        const flooders = await peers(sodium, target, 1100, () => 1n)
        let next = 0
        const step = (): void => {
          for (let i = 0; i < 11; i++) flooders[next++ % flooders.length]!.request()
        }
        const sent = await sentWhile(flooders, () => underWay(repeat(step, 20, seconds * 1000), during))
        return { ...sent, outcome: { tokens: flooders.length } }
      },
    },
    {
      name: 'challenges',
      what: `1,000 pending handshakes (a client id each) resending their requests as fast as this thread can for ${seconds} s`,
      async run(target, during) {
        const flooders = await peers(sodium, target, 1000, (i) => BigInt(20_000 + i))
        const started = performance.now()
        await underWay(flood(() => flooders.forEach((peer) => peer.request()), seconds * 1000), during)
        await sleep(200)
        const elapsed = (performance.now() - started) / 1000
        const most = Math.max(...flooders.map((peer) => peer.challenges))
        const mean = flooders.reduce((sum, peer) => sum + peer.challenges, 0) / flooders.length
        const sent = totals(flooders)
        flooders.forEach((peer) => peer.close())
        return { ...sent, outcome: { handshakes: flooders.length, challengesPerHandshakePerSecondMost: round(most / elapsed), challengesPerHandshakePerSecondMean: round(mean / elapsed), requestsPerHandshakePerSecond: round(sent.packets / flooders.length / elapsed) } }
      },
    },
    {
      name: 'garbage',
      what: `random datagrams of 1 to 1,200 bytes from 10 sockets as fast as this thread can for ${seconds} s`,
      async run(target, during) {
        const junk = Array.from({ length: 64 }, () => randomBytes(1 + Math.floor(Math.random() * 1200)))
        return { ...(await fromSockets(target, () => junk, seconds * 1000, during)), outcome: {} }
      },
    },
    {
      name: 'replay',
      what: `a connected peer's own 100 payload packets, each sent again 100 times`,
      async run(target, during) {
        const [peer] = await connected(sodium, target, 1, 30_000)
        const numbers = new DeliveryPackets()
        const captured = Array.from({ length: 100 }, (_, i) => peer!.packet(PacketType.payload, numbers.packet(frames.settings(maxMessageBytes, [1, 1]), frames.message(0, i, [1, 2, 3]))))
        for (const packet of captured) peer!.sendRaw(packet)
        await sleep(200)
        let round = 0
        const sent = await sentWhile([peer!], async () => {
          const running = repeat(() => captured.forEach((packet) => peer!.sendRaw(packet)), 10, 1000, () => ++round > 100)
          await during()
          await running
        })
        return { ...sent, outcome: {} }
      },
    },
    {
      name: 'spoofed',
      what: `a connected peer's packets (fresh ones, its own keys) sent from 10 other addresses for ${seconds} s`,
      async run(target, during) {
        const [peer] = await connected(sodium, target, 1, 31_000)
        const sent = await fromSockets(target, () => [peer!.packet(PacketType.keepAlive, new Uint8Array(8))], seconds * 1000, during)
        peer!.close()
        return { ...sent, outcome: {} }
      },
    },
    {
      name: 'ack-forgery',
      what: `10 connected peers acknowledging packets the server never sent (its next million), as fast as this thread can for ${seconds} s`,
      async run(target, during) {
        const forgers = await connected(sodium, target, 10, 32_000)
        const numbers = forgers.map(() => new DeliveryPackets())
        const forge = (): void =>
          forgers.forEach((peer, i) => peer.send(PacketType.payload, numbers[i]!.packet(frames.settings(maxMessageBytes, [1, 1]), frames.ack(1_000_000, 0), frames.message(0, 0, [1]))))
        const sent = await sentWhile(forgers, () => underWay(flood(forge, seconds * 1000), during))
        return { ...sent, outcome: {} }
      },
    },
    {
      name: 'never-acking',
      what: `20 connected peers sending 1,000-byte reliable messages (each echoed) every 10 ms and never acknowledging the echoes, for ${seconds} s`,
      async run(target, during) {
        const readers = await connected(sodium, target, 20, 33_000)
        const numbers = readers.map(() => new DeliveryPackets())
        const sequences = readers.map(() => 0)
        const payload = new Array<number>(1000).fill(9)
        const send = (): void =>
          readers.forEach((peer, i) => peer.send(PacketType.payload, numbers[i]!.packet(frames.settings(maxMessageBytes, [1, 1]), frames.message(0, sequences[i]!++, payload))))
        const sent = await sentWhile(readers, () => underWay(repeat(send, 10, seconds * 1000), during))
        return { ...sent, outcome: { messagesSent: sequences.reduce((a, b) => a + b, 0) } }
      },
    },
  ]
}

const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits

interface Mark {
  cpuUs: number
  rss: number
  seconds: number
  details: Record<string, unknown>
}
async function mark(child: BenchChild, label = 'mark'): Promise<Mark> {
  child.tell(`mark ${label}`)
  const message: ResultMessage = await child.expect('result', 30_000)
  const memory = message.details.memory as { rss: number }
  return { cpuUs: message.cpuUserUs + message.cpuSystemUs, rss: memory.rss, seconds: message.seconds, details: message.details }
}

/** A process's resident memory, read by this process (the server spends nothing on it). */
function rssOf(child: BenchChild): number {
  const pages = Number(readFileSync(`/proc/${child.pid}/statm`, 'utf8').split(' ')[1])
  return pages * 4096
}

/**
 * Samples the server while an attack runs: its RSS from /proc every 100 ms, and what its reassembly budget
 * holds from a mark once a second (a mark costs the server some CPU, so the idle baseline samples too).
 */
function sampleServer(server: BenchChild): { stop: () => Promise<{ peakRss: number; peakReassembly: number }> } {
  let running = true
  let peakRss = rssOf(server)
  let peakReassembly = 0
  const rss = setInterval(() => (peakRss = Math.max(peakRss, rssOf(server))), 100)
  const marks = (async () => {
    while (running) {
      const now = await mark(server)
      const reassembly = (now.details.stats as { reassembly: { usedBytes: number } | null }).reassembly
      peakReassembly = Math.max(peakReassembly, reassembly?.usedBytes ?? 0)
      await sleep(1000)
    }
  })()
  return {
    stop: async () => {
      running = false
      clearInterval(rss)
      await marks
      return { peakRss, peakReassembly }
    },
  }
}

function launch(name: string, script: string, args: string[]): BenchChild {
  return new BenchChild({ name, command: process.execPath, args: ['--import', 'tsx', script, ...args], cpu: undefined, cwd: root })
}

interface Summary {
  date: string
  system: ReturnType<typeof systemInfo>
  honestClients: number
  results: {
    attack: string
    what: string
    packets: number
    bytes: number
    /** The server's CPU over the attack, % of a core, and its idle share's. */
    serverCpuPercent: number
    idleCpuPercent: number
    /** Net of the idle share, per attack packet; null when within the idle share's noise (a twentieth of it). */
    serverCpuUsPerPacket: number | null
    rssGrowthMB: number
    replyPerRequestByte: number
    honest: { probeConnected: number; probeTried: number; probeConnectMsMost: number; timeouts: number; echoedShare: number }
    outcome: Record<string, number | string>
  }[]
}

const latestFile = join(benchDir, 'results', 'latest-attacks.json')
const securityDoc = join(root, 'docs', 'security.md')

/** The latest result as the table docs/security.md shows, between its markers. */
function renderSecurityDoc(summary: Summary): void {
  const outcome = (result: Summary['results'][number]): string => {
    const o = result.outcome
    if (result.attack === 'reassembly') return `${o.disconnected} of ${o.attackers} disconnected (\`'reassembly-stalled'\`) within ${o.allGoneAfterS} s`
    if (result.attack === 'challenges') return `at most ${o.challengesPerHandshakePerSecondMost} challenges a second per handshake, for ${o.requestsPerHandshakePerSecond} requests`
    return ''
  }
  const rows = summary.results.map((r) => {
    const h = r.honest
    const honest = `${h.probeConnected} of ${h.probeTried} connected (≤ ${h.probeConnectMsMost} ms), ${h.timeouts} timed out, ${Math.round(h.echoedShare * 100)} % of messages echoed`
    const cpu = `${r.serverCpuPercent} % (idle ${r.idleCpuPercent} %)${r.serverCpuUsPerPacket === null ? '' : `, ${r.serverCpuUsPerPacket.toFixed(2)} µs a packet`}`
    return `| ${r.attack} | ${r.what}: ${r.packets.toLocaleString('en-US')} packets, ${(r.bytes / 1e6).toFixed(1)} MB | ${cpu} | ${r.rssGrowthMB} MB | ${r.replyPerRequestByte} | ${honest} | ${outcome(r)} |`
  })
  const text = [
    `Latest full run: ${summary.date} (${summary.system.cpuModel}, ${summary.system.cpus} cores, Linux ${summary.system.kernel}, Node ${summary.system.node}), ${summary.honestClients} honest clients. The server's CPU is a share of one core over the attack, beside its share with the honest clients alone; per packet, net of that idle share (left out where it is within its noise), it counts each attacking connection's upkeep (handshake, pings, keep-alives, disconnects) too.`,
    '',
    '| attack | sent | server CPU | RSS growth | reply ÷ request bytes | honest clients (5 fresh ones during the attack) | outcome |',
    '|---|---|--:|--:|--:|---|---|',
    ...rows,
  ].join('\n')
  const doc = readFileSync(securityDoc, 'utf8')
  const begin = '<!-- attacks:begin -->'
  const end = '<!-- attacks:end -->'
  writeFileSync(securityDoc, `${doc.slice(0, doc.indexOf(begin) + begin.length)}\n${text}\n${doc.slice(doc.indexOf(end))}`)
  console.log('written: the table of docs/security.md')
}

if (values.render) {
  renderSecurityDoc(JSON.parse(readFileSync(latestFile, 'utf8')) as Summary)
  process.exit(0)
}

const sodium = await loadSodium()
const keyHex = key.toString('hex')
const server = launch('attacked server', 'bench/attacks/server.ts', ['--key', keyHex, '--protocol-id', String(protocolId), '--max-clients', '4096', '--max-ms', '1800000'])
const { port } = await server.expect('ready', 30_000)
const target: Target = { host: '127.0.0.1', port, protocolId, privateKey: key }
const honestCount = quick ? 20 : 300
const honest = launch('honest clients', 'bench/attacks/honest.ts', ['--server', `127.0.0.1:${port}`, '--key', keyHex, '--protocol-id', String(protocolId), '--clients', String(honestCount), '--max-ms', '1800000'])
await honest.expect('ready', 60_000)

// The server's CPU with only the honest clients (and the sampling), per second: taken out of each attack's.
const idleFrom = await mark(server)
const idleSampling = sampleServer(server)
await sleep(quick ? 2000 : 5000)
await idleSampling.stop()
const idleTo = await mark(server)
const idleCpuPerSecond = (idleTo.cpuUs - idleFrom.cpuUs) / (idleTo.seconds - idleFrom.seconds)

const only = values.only?.split(',')
const results: (Summary['results'][number] & Record<string, unknown>)[] = []
for (const attack of attacks(sodium)) {
  if (only !== undefined && !only.includes(attack.name)) continue
  const before = await mark(server)
  const rssBefore = rssOf(server)
  const honestBefore = (await mark(honest)).details.seen as Record<string, number>
  const sampling = sampleServer(server)
  let probe: number[] = []
  const sent = await attack.run(target, async () => {
    honest.tell('probe 5')
    probe = ((await honest.expect('result', 60_000)).details.connectMs as number[]) ?? []
  })
  const { peakRss, peakReassembly } = await sampling.stop()
  const after = await mark(server)
  const honestAfter = (await mark(honest)).details.seen as Record<string, number>
  const windowSeconds = after.seconds - before.seconds
  const idleCpuUs = idleCpuPerSecond * windowSeconds
  const netCpuUs = after.cpuUs - before.cpuUs - idleCpuUs
  const stats = after.details.stats as Record<string, unknown>
  const result = {
    attack: attack.name,
    what: attack.what,
    packets: sent.packets,
    bytes: sent.bytes,
    seconds: round(windowSeconds),
    serverCpuPercent: round(((after.cpuUs - before.cpuUs) / (windowSeconds * 1e6)) * 100),
    idleCpuPercent: round((idleCpuPerSecond / 1e6) * 100),
    serverCpuUsPerPacket: netCpuUs > idleCpuUs / 20 ? round(netCpuUs / Math.max(1, sent.packets), 2) : null,
    rssGrowthMB: round((peakRss - rssBefore) / 1e6),
    reassemblyPeakMB: round(peakReassembly / 1e6),
    replyPerRequestByte: round(sent.replyBytes / Math.max(1, sent.bytes), 4),
    honest: {
      probeConnected: probe.filter((ms) => Number.isFinite(ms)).length,
      probeTried: probe.length,
      probeConnectMsMost: round(Math.max(0, ...probe.filter((ms) => Number.isFinite(ms)))),
      timeouts: (honestAfter.timeouts ?? 0) - (honestBefore.timeouts ?? 0),
      echoedShare: round(((honestAfter.echoed ?? 0) - (honestBefore.echoed ?? 0)) / Math.max(1, (honestAfter.sent ?? 0) - (honestBefore.sent ?? 0)), 3),
    },
    outcome: sent.outcome,
    server: { drops: stats.drops, handshakes: stats.handshakes, reassembly: stats.reassembly, disconnects: after.details.disconnects },
  }
  results.push(result)
  const h = result.honest
  console.log(
    `${attack.name.padEnd(12)} ${String(result.packets).padStart(9)} packets ${(result.bytes / 1e6).toFixed(1).padStart(7)} MB` +
      `  server ${result.serverCpuPercent} % CPU (idle ${result.idleCpuPercent} %), ${result.serverCpuUsPerPacket ?? '–'} µs/packet  RSS +${result.rssGrowthMB} MB  replies ${result.replyPerRequestByte}×` +
      `  honest: ${h.probeConnected}/${h.probeTried} connected (≤ ${h.probeConnectMsMost} ms), ${h.timeouts} timed out, ${Math.round(h.echoedShare * 100)} % echoed  ${JSON.stringify(result.outcome)}`,
  )
  await sleep(quick ? 500 : 2000) // the server settles (disconnects, handshakes expiring) before the next
}

honest.tell('stop')
server.tell('stop')
await Promise.all([honest.finish(10_000), server.finish(10_000)])

if (!quick) {
  const system = systemInfo(root)
  const stamp = new Date().toISOString().slice(0, 16).replace(':', '')
  const summary = { date: stamp, system, honestClients: honestCount, idleCpuPerSecondUs: round(idleCpuPerSecond), results }
  writeFileSync(latestFile, `${JSON.stringify(summary, null, 2)}\n`)
  const line = { date: stamp, cpu: system.cpuModel, kernel: system.kernel, ...Object.fromEntries(results.map((r) => [r.attack, { cpuPercent: r.serverCpuPercent, idlePercent: r.idleCpuPercent, cpuUs: r.serverCpuUsPerPacket, rssMB: r.rssGrowthMB, reply: r.replyPerRequestByte, honest: r.honest, outcome: r.outcome }])) }
  appendFileSync(join(benchDir, 'results', 'attacks-history.jsonl'), `${JSON.stringify(line)}\n`)
  console.log('written: bench/results/latest-attacks.json, a line in bench/results/attacks-history.jsonl')
  if (only === undefined) renderSecurityDoc(summary)
}
