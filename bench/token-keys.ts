// What holding a previous private key (Server.rotatePrivateKey()) costs a server's token checks: connection
// requests read and their private connect token opened, per second, by a server core holding ONE key, TWO keys
// with every token under the current one, and TWO keys with every token under the previous one (each opened
// only after the current key failed on it). Tokens name no key, so the last case pays a failed decryption
// first. Measured at the core level, on the native core (a batch of requests per N-API call, in C++:
// receiveRequests in native/testing/netcode_binding.cc), the three cases interleaved round by round (this
// machine is noisy): the medians of the rounds, and the ratios.
// Each batch is one connect token sent from many addresses: after its first use, every request is read, its
// token opened, then refused (a token is used from one address only), so the core keeps and sends nothing.
//   npm run bench:token-keys [-- --quick]
// Results (not with --quick): bench/results/latest-token-keys.json, and a line in bench/results/token-keys-history.jsonl.
import { execFileSync } from 'node:child_process'
import { appendFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadTestingAddon } from '../test/testing-addon.ts'
import { encodeConnectToken, readConnectToken } from '../src/protocol/netcode/connect-token.ts'
import { writeConnectionRequest } from '../test/netcode/codecs/packets.ts'
import { loadSodium } from '../src/protocol/netcode/sodium.ts'
import { benchDir, root } from './lib/runner.ts'
import { median, ratio } from './lib/statistics.ts'
import { systemInfo } from './lib/system.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } }, strict: true })
const quick = values.quick
/** Rounds; in each, every case runs its batches once, in an order that turns round by round. */
const rounds = quick ? 5 : 41
const nativeBatch = quick ? 1000 : 4000
const nativeBatchesPerRound = quick ? 2 : 4
const target = 0.9

const protocolId = 0x70cen
const serverAddress = '127.0.0.1:40000'
const T0 = 1_800_000_000n
const current = new Uint8Array(32).fill(0xc1)
const previous = new Uint8Array(32).fill(0x9e)
const sodium = await loadSodium()

function request(key: Uint8Array, clientId: bigint): Uint8Array {
  const token = encodeConnectToken(sodium, { protocolId, privateKey: key, clientId, serverAddresses: [serverAddress], expireSeconds: 3600, timeoutSeconds: 5, nowSeconds: Number(T0) })
  return writeConnectionRequest(readConnectToken(token))
}
const requests = { current: request(current, 1n), previous: request(previous, 2n) }

type Case = 'oneKey' | 'twoKeysCurrent' | 'twoKeysPrevious'
const cases: Case[] = ['oneKey', 'twoKeysCurrent', 'twoKeysPrevious']
const setup: Record<Case, { keys: 1 | 2; packet: Uint8Array }> = {
  oneKey: { keys: 1, packet: requests.current },
  twoKeysCurrent: { keys: 2, packet: requests.current },
  twoKeysPrevious: { keys: 2, packet: requests.previous },
}
/** The counters a run must end with: every request opened and refused, those under the previous key counted so. */
interface Counters {
  tokenRefused: number
  previousKeyRequests: number
  decryptionFailed: number
}

/** A core, behind what this benchmark asks of it. */
interface Bench {
  /** Runs `count` requests; returns the nanoseconds taken. */
  run(count: number): number
  counters(): Counters
}

// The native core (netcode_binding.cc's ServerCore), a batch per call.
interface NativeCore {
  receive(from: string, packet: Uint8Array, us: number, unix: bigint): unknown[]
  receiveRequests(packet: Uint8Array, count: number, us: number, unix: bigint): unknown[]
  rotatePrivateKey(key: Uint8Array, graceUs: number, us: number, unix: bigint): unknown[]
  state(): { privateKeyCount: number; counters: Counters }
}
function nativeBench(which: Case): Bench {
  const { ServerCore: Native } = loadTestingAddon().netcode as unknown as { ServerCore: new (options: object) => NativeCore }
  const { keys, packet } = setup[which]
  const core = new Native({ protocolId, privateKey: keys === 1 ? current : previous, publicAddress: serverAddress, maxClients: 256, challengeKey: new Uint8Array(32).fill(7) })
  if (keys === 2) core.rotatePrivateKey(current, 2 ** 50, 0, T0) // the previous key's grace outlasts the run
  if (core.state().privateKeyCount !== keys) throw new Error(`the native core holds ${core.state().privateKeyCount} keys, not ${keys}`)
  if (core.receive('192.168.1.1:9', packet, 0, T0).length !== 1) throw new Error("the token's first use was not challenged") // its one use
  return {
    run(count) {
      const started = process.hrtime.bigint()
      core.receiveRequests(packet, count, 0, T0)
      return Number(process.hrtime.bigint() - started)
    },
    counters: () => core.state().counters,
  }
}

interface Measured {
  /** Token checks a second, each round. */
  rounds: Record<Case, number[]>
  medians: Record<Case, number>
  /** Per round, each two-key case ÷ the one-key case of the same round; and their medians. */
  ratios: { twoKeysCurrent: number; twoKeysPrevious: number }
  /** The same from the medians of the rates. */
  ratiosOfMedians: { twoKeysCurrent: number; twoKeysPrevious: number }
  /** Microseconds a token check, from the medians. */
  usPerCheck: Record<Case, number>
  counters: Record<Case, Counters>
}

function measure(make: (which: Case) => Bench, batch: number, batchesPerRound: number): Measured {
  const benches = Object.fromEntries(cases.map((which) => [which, make(which)])) as Record<Case, Bench>
  for (const which of cases) benches[which].run(batch) // warm up
  const perRound: Record<Case, number[]> = { oneKey: [], twoKeysCurrent: [], twoKeysPrevious: [] }
  for (let round = 0; round < rounds; round++) {
    // Each case first, second and third in turn: none always runs right after another.
    for (let k = 0; k < cases.length; k++) {
      const which = cases[(round + k) % cases.length]!
      let ns = 0
      for (let b = 0; b < batchesPerRound; b++) ns += benches[which].run(batch)
      perRound[which].push((batch * batchesPerRound * 1e9) / ns)
    }
  }
  const total = (batch * (batchesPerRound * rounds + 1))
  const counters = Object.fromEntries(cases.map((which) => [which, { ...benches[which].counters() }])) as Record<Case, Counters>
  for (const which of cases) {
    const c = counters[which]
    const underPrevious = which === 'twoKeysPrevious' ? total + 1 : 0 // (with the token's first, challenged use)
    if (c.tokenRefused !== total || c.previousKeyRequests !== underPrevious || c.decryptionFailed !== 0) {
      throw new Error(`${which}: the core did not open and refuse every request: ${JSON.stringify(c)} (expected ${total} refused, ${underPrevious} under the previous key)`)
    }
  }
  const medians = Object.fromEntries(cases.map((which) => [which, median(perRound[which])])) as Record<Case, number>
  const roundRatio = (which: Case) => median(perRound[which].map((rate, i) => ratio(rate, perRound.oneKey[i])))
  return {
    rounds: perRound,
    medians,
    ratios: { twoKeysCurrent: roundRatio('twoKeysCurrent'), twoKeysPrevious: roundRatio('twoKeysPrevious') },
    ratiosOfMedians: { twoKeysCurrent: ratio(medians.twoKeysCurrent, medians.oneKey), twoKeysPrevious: ratio(medians.twoKeysPrevious, medians.oneKey) },
    usPerCheck: Object.fromEntries(cases.map((which) => [which, 1e6 / medians[which]])) as Record<Case, number>,
    counters,
  }
}

const r3 = (value: number): number => Math.round(value * 1000) / 1000
const started = performance.now()
const native = measure(nativeBench, nativeBatch, nativeBatchesPerRound)
const seconds = (performance.now() - started) / 1000

const rate = (which: Case) => `${Math.round(native.medians[which]).toLocaleString('en-US')}/s (${native.usPerCheck[which].toFixed(2)} µs)`
console.log(`native core, token checks (median of ${rounds} rounds):`)
console.log(`  one key                          ${rate('oneKey')}`)
console.log(`  two keys, tokens under current   ${rate('twoKeysCurrent')}   ÷ one key: ${r3(native.ratios.twoKeysCurrent)} (of medians ${r3(native.ratiosOfMedians.twoKeysCurrent)})`)
console.log(`  two keys, tokens under previous  ${rate('twoKeysPrevious')}   ÷ one key: ${r3(native.ratios.twoKeysPrevious)} (of medians ${r3(native.ratiosOfMedians.twoKeysPrevious)})`)
const met = native.ratios.twoKeysCurrent >= target
console.log(`target: two keys ÷ one key ≥ ${target} with tokens under the current key: ${met ? 'met' : 'NOT met'} (${r3(native.ratios.twoKeysCurrent)}); ${seconds.toFixed(1)} s`)

if (!quick) {
  const date = new Date().toISOString()
  let commit = 'unknown'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '') commit += '+changes'
  } catch {
    // not a checkout
  }
  const value = r3(native.ratios.twoKeysCurrent)
  const summary = {
    targets: [{ what: 'native core: token checks with two keys ÷ with one, tokens under the current key', value, unit: '×', target: `≥ ${target}`, met: value >= target }],
  }
  const record = {
    date,
    host: os.hostname(),
    commit,
    system: systemInfo(root),
    options: { rounds, nativeBatch, nativeBatchesPerRound },
    native,
    summary,
  }
  // Arrays of numbers (each round's rates) on one line each, as bench/lib/runner.ts writes them.
  const text = JSON.stringify(record, null, 2).replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g, (_, items: string) => `[${items.split(/,\s+/).join(', ')}]`)
  writeFileSync(join(benchDir, 'results', 'latest-token-keys.json'), `${text}\n`)
  const figures = (result: Measured) => ({
    oneKeyPerSec: Math.round(result.medians.oneKey),
    twoKeysCurrentPerSec: Math.round(result.medians.twoKeysCurrent),
    twoKeysPreviousPerSec: Math.round(result.medians.twoKeysPrevious),
    currentRatio: r3(result.ratios.twoKeysCurrent),
    previousRatio: r3(result.ratios.twoKeysPrevious),
  })
  const line = { date, host: os.hostname(), commit, native: figures(native) }
  appendFileSync(join(benchDir, 'results', 'token-keys-history.jsonl'), `${JSON.stringify(line)}\n`)
  console.log('written: bench/results/latest-token-keys.json, a line in bench/results/token-keys-history.jsonl')
}
