// The protocols compiled twice, fed the same streams: the native build (the test bindings' SocketProtocol, the
// engine's socket protocols as openSocket() makes them) against the WebAssembly build the fallback engine runs
// (through its own shell, src/engine/fallback/protocols.ts). A server and three clients per build, joined by
// a seeded lossy network on a fake clock: handshakes, messages on every kind of channel (fragmented ones
// too), raw payloads, corrupted and stray datagrams, skewed and drifting client clocks, a disconnect and a
// stop. Every datagram sent, every record for JavaScript, every deadline, the counters and the link
// statistics must be the same bytes on both: what differs between the builds is the platform (32-bit size_t,
// no fused multiply-add, emscripten's libc). Both draw their keys and sequence starts from one deterministic
// source (native/testing/deterministic_random.cc), the module in a testing build of it (scripts/build-wasm.sh
// --testing), built here when its sources changed.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import type { NativeClientProtocol, NativeServerProtocol } from '../../src/engine/native/addon.ts'
import { FallbackProtocol } from '../../src/engine/fallback/protocols.ts'
import { type Cores, instantiateCores } from '../../src/engine/fallback/wasm-cores.ts'
import { align8, layout, PeerRecordKind, ProtocolControl } from '../../src/engine/layout.ts'
import { RecordBatch } from '../../src/engine/record-batch.ts'
import { encodeConnectToken, readConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { clientStateCodes } from '../../src/protocol/netcode/constants.ts'
import { loadSodium } from '../../src/protocol/netcode/sodium.ts'
import { seededRandom } from '../helpers.ts'
import { writeConnectionRequest } from '../netcode/codecs/packets.ts'
import { loadTestingAddon } from '../testing-addon.ts'

const root = join(import.meta.dirname, '..', '..')
const testingModule = join(root, 'build', 'wasm', 'volley-protocols-testing.cjs')

/** The testing module, built from native/ and the build script as they are now (a stamp of both beside it). */
function buildTestingModule(): void {
  const hash = createHash('sha256')
  const files = readdirSync(join(root, 'native'), { recursive: true }).map(String).filter((name) => /\.(h|cc)$/.test(name)).sort()
  for (const name of files) hash.update(name).update(readFileSync(join(root, 'native', name)))
  hash.update(readFileSync(join(root, 'scripts', 'build-wasm.sh')))
  const stamp = hash.digest('hex')
  const stampFile = `${testingModule}.stamp`
  if (existsSync(testingModule) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return
  execFileSync('bash', [join(root, 'scripts', 'build-wasm.sh'), '--testing'], { cwd: root, stdio: 'pipe', timeout: 600_000 })
  writeFileSync(stampFile, stamp)
}

interface Datagram {
  host: string
  port: number
  data: Uint8Array
}

/** What a call made: the datagrams to send and the records for JavaScript (native/sockets/socket_protocol.h's layout). */
interface Output {
  datagrams: Datagram[]
  records: Uint8Array
  recordCount: number
}

/** One protocol of either build, driven alike. */
interface Endpoint {
  receive(batch: readonly Datagram[], nowUs: number): void
  update(nowUs: number): void
  send(peer: number, channel: number, data: Uint8Array, nowUs: number): void
  control(op: number, arg: number, data: Uint8Array, nowUs: number): void
  endBatch(nowUs: number): void
  nextDeadlineUs(): number
  take(): Output
  finished(): boolean
  counters(): number[]
  peerCounters(): number[]
  links(): number[]
}

class Collected extends RecordBatch {
  chunks: Uint8Array[] = []
  collected = 0
  override append(records: Uint8Array, count: number): void {
    this.chunks.push(records.slice())
    this.collected += count
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0))
  let at = 0
  for (const chunk of chunks) {
    out.set(chunk, at)
    at += chunk.byteLength
  }
  return out
}

/** The WebAssembly build, through the fallback engine's shell. */
function wasmEndpoint(cores: Cores, options: NativeServerProtocol | NativeClientProtocol, port: number): Endpoint {
  const records = new Collected()
  let datagrams: Datagram[] = []
  const output = { records, send: (host: string, to: number, data: Uint8Array) => datagrams.push({ host, port: to, data }) }
  const protocol = new FallbackProtocol(options, port, false, output, startUs, cores)
  const counters = new Float64Array(64)
  return {
    receive(batch, nowUs) {
      for (const { host, port: from, data } of batch) protocol.receive(host, from, data, data.byteLength)
      protocol.receiveEnd(nowUs)
    },
    update: (nowUs) => protocol.update(nowUs),
    send: (peer, channel, data, nowUs) => protocol.send(peer, channel, data, nowUs),
    control: (op, arg, data, nowUs) => protocol.control(op, arg, data.slice(), nowUs),
    endBatch: (nowUs) => protocol.endBatch(nowUs),
    nextDeadlineUs: () => protocol.nextDeadlineUs(),
    take() {
      const taken = { datagrams, records: concat(records.chunks), recordCount: records.collected }
      datagrams = []
      records.chunks = []
      records.collected = 0
      return taken
    },
    finished: () => protocol.finished,
    counters() {
      counters.fill(Number.NaN)
      protocol.copyCounters(counters)
      return Array.from(counters).filter((value) => !Number.isNaN(value))
    },
    peerCounters: () => Array.from(protocol.peerCounters ?? []),
    links: () => Array.from(protocol.links ?? []),
  }
}

interface NativeSocketProtocol {
  receive(batch: [number, Uint8Array, number, Uint8Array][], nowUs: number): void
  update(nowUs: number): void
  nextDeadlineUs(): number
  send(peer: number, channel: number, data: Uint8Array, nowUs: number): void
  endBatch(nowUs: number): void
  control(op: number, arg: number, data: Uint8Array, nowUs: number): void
  finished(): boolean
  counters(): Float64Array
  peerCounters(): Float64Array
  links(): Float64Array
  takeOutbox(): [number, Uint8Array, number, Uint8Array][]
  takeRecords(): { bytes: Uint8Array; count: number }
}

function ipv4(text: string): Uint8Array {
  const bytes = new Uint8Array(16)
  bytes.set(text.split('.').map(Number))
  return bytes
}

/** The native build: the test bindings' SocketProtocol, called as the engine calls its protocols. */
function nativeEndpoint(options: NativeServerProtocol | NativeClientProtocol, port: number): Endpoint {
  const { SocketProtocol } = loadTestingAddon() as unknown as { SocketProtocol: new (options: object, port: number, v6: boolean, nowUs: number) => NativeSocketProtocol }
  const protocol = new SocketProtocol(options, port, false, startUs)
  // As the fallback shell does: a flush only after receives or sends.
  let pending = false
  const records: Uint8Array[] = []
  let recordCount = 0
  let datagrams: Datagram[] = []
  const collect = () => {
    for (const [family, ip, to, data] of protocol.takeOutbox()) {
      expect(family).toBe(4)
      datagrams.push({ host: Array.from(ip.subarray(0, 4)).join('.'), port: to, data })
    }
    const taken = protocol.takeRecords()
    if (taken.count > 0) {
      records.push(taken.bytes)
      recordCount += taken.count
    }
  }
  return {
    receive(batch, nowUs) {
      protocol.receive(
        batch.map(({ host, port: from, data }) => [4, ipv4(host), from, data]),
        nowUs,
      )
      pending = true
      collect()
    },
    update(nowUs) {
      protocol.update(nowUs)
      collect()
    },
    send(peer, channel, data, nowUs) {
      protocol.send(peer, channel, data, nowUs)
      pending = true
      collect()
    },
    control(op, arg, data, nowUs) {
      protocol.control(op, arg, data, nowUs)
      collect()
    },
    endBatch(nowUs) {
      if (!pending) return
      pending = false
      protocol.endBatch(nowUs)
      collect()
    },
    nextDeadlineUs: () => protocol.nextDeadlineUs(),
    take() {
      const taken = { datagrams, records: concat(records), recordCount }
      datagrams = []
      records.length = 0
      recordCount = 0
      return taken
    },
    finished: () => protocol.finished(),
    counters: () => Array.from(protocol.counters()),
    peerCounters: () => Array.from(protocol.peerCounters()),
    links: () => Array.from(protocol.links()),
  }
}

/** The records of an output: kind, code (signed) and peer of each. */
function recordsOf(output: Output): { kind: number; code: number; peer: number; length: number }[] {
  const view = new DataView(output.records.buffer, output.records.byteOffset, output.records.byteLength)
  const found = []
  let at = 0
  for (let i = 0; i < output.recordCount; i++) {
    const length = view.getUint32(at, true)
    found.push({ kind: view.getUint8(at + 4), code: view.getInt8(at + 5), peer: view.getUint32(at + 8, true), length })
    at += align8(layout.peerRecordHeaderSize + length)
  }
  return found
}

const startUs = 1_000_000
const protocolId = 0x7e57n
const privateKey = new Uint8Array(32).fill(0x42)
const serverAddress = { host: '127.0.0.1', port: 40000 }
const clientAddresses = [0, 1, 2].map((i) => ({ host: `127.0.0.${10 + i}`, port: 50000 + i }))

interface Scenario {
  seed: number
  channels?: ('reliable' | 'unreliable' | 'sequenced')[]
  loss: number
  /** The clients' clocks, as the network simulator skews them: the delivery layer's clock sync in doubles. */
  skew?: { clockOffsetUs: number; clockDriftPpm: number }
}

/** What a run did, to show it was no empty one. */
interface RunSummary {
  connects: number
  payloads: number
  disconnects: number
  datagrams: number
  steps: number
}

async function runTwins(scenario: Scenario, cores: Cores, useDeterministicRandom: (seed: number) => void, wasmSeed: (seed: number) => void): Promise<RunSummary> {
  const sodium = await loadSodium()
  const random = seededRandom(scenario.seed)
  const delivery = scenario.channels === undefined ? {} : { channels: scenario.channels, maxMessageBytes: 64 * 1024 }
  const server: NativeServerProtocol & { challengeSequenceStart: number } = {
    kind: 'server',
    protocolId,
    privateKey,
    publicAddress: `${serverAddress.host}:${serverAddress.port}`,
    maxClients: 8,
    challengeSequenceStart: 5_000,
    ...delivery,
  }
  const skew = scenario.skew === undefined ? {} : { networkSimulator: { loss: 0, duplicate: 0, reorder: 0, latencyUs: 0, jitterUs: 0, bandwidthBytesPerSec: 0, queueBytes: 0, seed: 0, ...scenario.skew } }
  const client: NativeClientProtocol = { kind: 'client', ...delivery, ...skew }
  // The same draws on both: each build's source from the same seed, the protocols made in the same order.
  useDeterministicRandom(scenario.seed)
  wasmSeed(scenario.seed)
  const builds = [
    { name: 'native', server: nativeEndpoint(server, serverAddress.port), clients: clientAddresses.map((a) => nativeEndpoint(client, a.port)) },
    { name: 'wasm', server: wasmEndpoint(cores, server, serverAddress.port), clients: clientAddresses.map((a) => wasmEndpoint(cores, client, a.port)) },
  ]
  const tokens = clientAddresses.map((_, i) =>
    encodeConnectToken(sodium, { protocolId, privateKey, clientId: BigInt(i + 1), serverAddresses: [`${serverAddress.host}:${serverAddress.port}`], expireSeconds: 600, timeoutSeconds: 5 }),
  )
  const requests = tokens.map((token) => writeConnectionRequest(readConnectToken(token)))
  const endpointsOf = (build: (typeof builds)[number]) => [build.server, ...build.clients]
  const addressOf = (index: number) => (index === 0 ? serverAddress : clientAddresses[index - 1]!)
  const summary: RunSummary = { connects: 0, payloads: 0, disconnects: 0, datagrams: 0, steps: 0 }
  /** Datagrams on their way: to an endpoint's index, at a time; in order of sending at equal times. */
  const inFlight: { at: number; order: number; to: number; datagram: Datagram }[] = []
  let order = 0
  const serverPeers = new Set<number>()
  const clientConnected = clientAddresses.map(() => false)

  /** Runs `step` on both builds' endpoint `index` and checks that they made the same output; routes it (once). */
  function both(index: number, nowUs: number, step: (endpoint: Endpoint) => void): void {
    const outputs = builds.map((build) => {
      const endpoint = endpointsOf(build)[index]!
      step(endpoint)
      endpoint.endBatch(nowUs)
      return endpoint.take()
    })
    const [native, wasm] = outputs as [Output, Output]
    expect(wasm.datagrams, `datagrams of endpoint ${index} at ${nowUs} µs`).toEqual(native.datagrams)
    expect(wasm.recordCount, `records of endpoint ${index} at ${nowUs} µs`).toBe(native.recordCount)
    expect(wasm.records, `record bytes of endpoint ${index} at ${nowUs} µs`).toEqual(native.records)
    summary.steps++
    for (const record of recordsOf(native)) {
      if (record.kind === PeerRecordKind.connect) {
        summary.connects++
        serverPeers.add(record.peer)
      }
      if (record.kind === PeerRecordKind.clientState) {
        clientConnected[index - 1] = record.code === clientStateCodes.connected
        if (record.code === clientStateCodes.connected) summary.connects++
        if (record.code <= clientStateCodes.disconnected) summary.disconnects++
      }
      if (record.kind === PeerRecordKind.payload || record.kind === PeerRecordKind.largePayload) summary.payloads++
      if (record.kind === PeerRecordKind.disconnect) {
        summary.disconnects++
        if (index === 0) serverPeers.delete(record.peer)
      }
    }
    // The network: loss, a latency of 1 to 30 ms each (reordering), now and then a copy or a corrupted one.
    for (const datagram of native.datagrams) {
      summary.datagrams++
      const to = [serverAddress, ...clientAddresses].findIndex((a) => a.host === datagram.host && a.port === datagram.port)
      if (to < 0) continue // an answer to a stray sender: nobody there
      const from = addressOf(index)
      const sent = { host: from.host, port: from.port, data: datagram.data }
      if (random() < scenario.loss) continue
      inFlight.push({ at: nowUs + 1000 + Math.floor(random() * 29_000), order: order++, to, datagram: sent })
      if (random() < 0.02) inFlight.push({ at: nowUs + Math.floor(random() * 40_000), order: order++, to, datagram: sent })
      if (random() < 0.02) {
        const corrupted = sent.data.slice()
        corrupted[Math.floor(random() * corrupted.byteLength)]! ^= 1 << Math.floor(random() * 8)
        inFlight.push({ at: nowUs + 2000, order: order++, to, datagram: { ...sent, data: corrupted } })
      }
    }
  }

  const endUs = startUs + 6_000_000
  let nowUs = startUs
  let nextScriptUs = startUs
  let script = 0
  let stopped = false
  while (nowUs < endUs + 3_000_000) {
    // Due now: datagrams in flight, at most four to a batch; the protocols whose deadline came; the script.
    inFlight.sort((a, b) => a.at - b.at || a.order - b.order)
    const due = inFlight.filter((entry) => entry.at <= nowUs)
    inFlight.splice(0, due.length)
    for (let to = 0; to <= clientAddresses.length; to++) {
      const mine = due.filter((entry) => entry.to === to).map((entry) => entry.datagram)
      for (let i = 0; i < mine.length; i += 4) both(to, nowUs, (endpoint) => endpoint.receive(mine.slice(i, i + 4), nowUs))
    }
    for (let index = 0; index <= clientAddresses.length; index++) {
      if (endpointsOf(builds[0]!)[index]!.nextDeadlineUs() <= nowUs) both(index, nowUs, (endpoint) => endpoint.update(nowUs))
    }
    if (nowUs >= nextScriptUs && nowUs < endUs) {
      script++
      if (script <= clientAddresses.length) {
        const index = script - 1
        both(index + 1, nowUs, (endpoint) => endpoint.control(ProtocolControl.connect, 1, tokens[index]!, nowUs))
      } else if (random() < 0.1) {
        // A stray datagram from an address no client has: garbage, or a copy of a client's connection request.
        const junk = random() < 0.5 ? Uint8Array.from({ length: 1 + Math.floor(random() * 200) }, () => Math.floor(random() * 256)) : requests[0]!
        both(0, nowUs, (endpoint) => endpoint.receive([{ host: '127.0.0.99', port: 9, data: junk }], nowUs))
      } else {
        // A message: from a connected client to the server, or from the server to a connected peer.
        const channel = scenario.channels === undefined ? 0 : Math.floor(random() * scenario.channels.length)
        const large = scenario.channels?.[channel] === 'reliable' && random() < 0.2
        const data = Uint8Array.from({ length: large ? 2000 + Math.floor(random() * 6000) : 1 + Math.floor(random() * 900) }, (_, i) => (i * 7 + script) & 0xff)
        const peers = [...serverPeers]
        if (random() < 0.5 && peers.length > 0) {
          const peer = peers[Math.floor(random() * peers.length)]!
          both(0, nowUs, (endpoint) => endpoint.send(peer, channel, data, nowUs))
        } else {
          const index = Math.floor(random() * clientAddresses.length)
          if (clientConnected[index]) both(index + 1, nowUs, (endpoint) => endpoint.send(0, channel, data, nowUs))
        }
      }
      nextScriptUs = nowUs + 5_000 + Math.floor(random() * 20_000)
    }
    // Near the end: the last client says goodbye, then the server stops (redundant disconnects to the rest).
    if (nowUs >= endUs - 1_000_000 && clientConnected[2]) {
      clientConnected[2] = false
      both(3, nowUs, (endpoint) => endpoint.control(ProtocolControl.disconnect, 0, new Uint8Array(0), nowUs))
    }
    if (nowUs >= endUs && !stopped) {
      stopped = true
      both(0, nowUs, (endpoint) => endpoint.control(ProtocolControl.stop, 0, new Uint8Array(0), nowUs))
    }
    // On to the next thing due.
    const deadlines = endpointsOf(builds[0]!).map((endpoint) => endpoint.nextDeadlineUs())
    for (const [i, endpoint] of endpointsOf(builds[1]!).entries()) expect(endpoint.nextDeadlineUs(), `deadline of endpoint ${i}`).toBe(deadlines[i])
    const next = Math.min(...deadlines, ...inFlight.map((entry) => entry.at), nowUs < endUs ? nextScriptUs : Number.POSITIVE_INFINITY, endUs + 3_000_000)
    nowUs = Math.max(nowUs + 1, next)
  }
  expect(builds[1]!.server.finished()).toBe(builds[0]!.server.finished())
  for (const [i, native] of endpointsOf(builds[0]!).entries()) {
    const wasm = endpointsOf(builds[1]!)[i]!
    expect(wasm.counters(), `counters of endpoint ${i}`).toEqual(native.counters())
    if (i === 0) expect(wasm.peerCounters(), 'the peer counters of the server').toEqual(native.peerCounters())
    expect(wasm.links(), `link statistics of endpoint ${i}`).toEqual(native.links())
  }
  return summary
}

describe('the native and WebAssembly builds of the protocols, fed the same streams', () => {
  let cores: Cores
  let wasmSeed: (seed: number) => void
  let useDeterministicRandom: (seed: number) => void
  beforeAll(() => {
    buildTestingModule()
    cores = instantiateCores(testingModule)
    const exports = cores.exports as unknown as {
      _vp_test_use_deterministic_random(low: number, high: number): void
      _vp_test_next_random(): number
      getRandomValue: () => number
    }
    // libsodium's WebAssembly build draws through Module.getRandomValue: from the module's own stream here.
    exports.getRandomValue = () => exports._vp_test_next_random() >>> 0
    wasmSeed = (seed) => exports._vp_test_use_deterministic_random(seed >>> 0, Math.floor(seed / 2 ** 32))
    useDeterministicRandom = (loadTestingAddon() as unknown as { useDeterministicRandom(seed: number): void }).useDeterministicRandom
  }, 600_000)

  const scenarios: Scenario[] = [
    { seed: 1, loss: 0 },
    { seed: 2, loss: 0.05 },
    { seed: 3, loss: 0, channels: ['reliable', 'unreliable', 'sequenced'] },
    { seed: 4, loss: 0.05, channels: ['reliable', 'unreliable', 'sequenced'] },
    { seed: 5, loss: 0.15, channels: ['reliable', 'reliable', 'unreliable'] },
    { seed: 6, loss: 0.02, channels: ['sequenced', 'reliable'] },
    { seed: 8, loss: 0.05, channels: ['reliable', 'unreliable'], skew: { clockOffsetUs: -2_500_000, clockDriftPpm: 150 } },
  ]
  it.each(scenarios)('send and record the same bytes at the same times: seed $seed, loss $loss, channels $channels, skew $skew', async (scenario) => {
    const summary = await runTwins(scenario, cores, useDeterministicRandom, wasmSeed)
    // Every client connected (each side's record), messages arrived, and the run ended in goodbyes.
    expect(summary.connects).toBeGreaterThanOrEqual(2 * clientAddresses.length)
    expect(summary.payloads).toBeGreaterThan(50)
    expect(summary.disconnects).toBeGreaterThanOrEqual(2 * clientAddresses.length)
    expect(summary.datagrams).toBeGreaterThan(200)
  }, 120_000)

  it('tells the builds apart when they differ: another seed on one side changes the bytes', async () => {
    await expect(runTwins({ seed: 7, loss: 0 }, cores, useDeterministicRandom, (seed) => wasmSeed(seed + 1))).rejects.toThrow(/datagrams of endpoint|record bytes/)
  }, 120_000)
})
