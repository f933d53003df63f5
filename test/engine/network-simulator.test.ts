// The network simulator (native/network_simulator.cc) held to a bandwidth, driven directly by a small C++
// program (test/engine/harness/network_simulator_check.cc) built here with ASan and UBSan.
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { networkSimulatorFields } from '../../src/network-simulator.ts'

const root = join(import.meta.dirname, '../..')

function runHarness(): { overflowed: number; afterOverflowUs: number; fastLinkLastUs: number; seedZeroRepeats: boolean; seedZeroLost: number } {
  const binary = join(mkdtempSync(join(tmpdir(), 'volley-simulator-')), 'check')
  const sources = ['test/engine/harness/network_simulator_check.cc', 'native/network_simulator.cc', 'native/socket_protocol.cc', 'native/address.cc']
  execFileSync('g++', ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-Inative', ...sources, '-l:libsodium.a', '-o', binary], { cwd: root })
  return JSON.parse(execFileSync(binary, { encoding: 'utf8' })) as ReturnType<typeof runHarness>
}

describe('the network simulator under a bandwidth limit', () => {
  it('gives link time only to what it holds, to the microsecond', () => {
    const result = runHarness()
    expect(result.overflowed).toBe(1000)
    // A datagram a full queue dropped never took the link: the next one leaves 1 ms after the link went
    // idle, not after 1,000 ms of datagrams that were never sent.
    expect(result.afterOverflowUs).toBe(6_000)
    // 1,000 × 1,228 bytes at 2e9 B/s: the last leaves at 614 µs (integer µs per datagram made it 0).
    expect(result.fastLinkLastUs).toBeGreaterThanOrEqual(613)
    expect(result.fastLinkLastUs).toBeLessThanOrEqual(615)
    // Seed 0 repeats its run, as any seed does (it used to mean "random").
    expect(result.seedZeroRepeats).toBe(true)
    expect(result.seedZeroLost).toBeGreaterThan(400)
    expect(result.seedZeroLost).toBeLessThan(600)
  }, 60_000)
})

describe('the networkSimulator option', () => {
  it('passes every seed given on, 0 included, and draws one when none is', () => {
    expect(networkSimulatorFields({ seed: 0 }).networkSimulator?.seed).toBe(0)
    expect(networkSimulatorFields({ seed: 42 }).networkSimulator?.seed).toBe(42)
    const drawn = new Set(Array.from({ length: 8 }, () => networkSimulatorFields({ loss: 0.1 }).networkSimulator?.seed))
    expect(drawn.size).toBeGreaterThan(1)
  })
})
