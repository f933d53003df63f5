// The network simulator (native/sockets/network_simulator.cc) held to a bandwidth, driven directly by a small C++
// program (test/engine/harness/network_simulator_check.cc) built here with ASan and UBSan.
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Client } from '../../src/index.ts'
import { networkSimulatorFields } from '../../src/api/network-simulator.ts'

const root = join(import.meta.dirname, '../..')

interface HarnessResult {
  firstPart: number
  secondPart: number
  leftAfter: number
  partsInOrder: boolean
  overflowed: number
  afterOverflowUs: number
  fastLinkLastUs: number
  seedZeroRepeats: boolean
  seedZeroLost: number
  queueHeld: number
  queueDropped: number
  defaultQueueDropped: number
  duplicatesLastUs: number
  overflowKeepsChoices: boolean
  overflowDropped: number
  keptAfterOverflow: number
}

function runHarness(): HarnessResult {
  const binary = join(mkdtempSync(join(tmpdir(), 'volley-simulator-')), 'check')
  const sources = ['test/engine/harness/network_simulator_check.cc', 'native/sockets/network_simulator.cc', 'native/sockets/socket_protocol.cc', 'native/util/address.cc']
  execFileSync('g++', ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-Inative', ...sources, '-l:libsodium.a', '-o', binary], { cwd: root })
  return JSON.parse(execFileSync(binary, { encoding: 'utf8' })) as HarnessResult
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
    // The link's queue holds queueBytes: 10 datagrams of 1,200 bytes in 12,000, the other 90 dropped; by
    // default one second of the bandwidth (it used to grow without bound: 22 hours of queue at 1,000 B/s).
    expect(result.queueHeld).toBe(10)
    expect(result.queueDropped).toBe(90)
    expect(result.defaultQueueDropped).toBe(9)
    // Both copies of a duplicated datagram take the link (they used to share one departure).
    expect(result.duplicatesLastUs).toBe(20_000)
    // Datagrams dropped by a full queue still draw their random choices: the others' do not shift.
    expect(result.overflowDropped).toBeGreaterThan(100)
    expect(result.keptAfterOverflow).toBeGreaterThan(50) // compared: copies let out between overflows
    expect(result.overflowKeepsChoices).toBe(true)
    // Released an outbox at a time, in due order, none lost between the parts: 600 due, 256 + 256 + 88.
    expect([result.firstPart, result.secondPart, result.leftAfter]).toEqual([256, 256, 88])
    expect(result.partsInOrder).toBe(true)
  }, 60_000)
})

describe('the networkSimulator option', () => {
  it('reports its seed in stats, the one drawn when none was given, so that a run can be repeated', () => {
    const drawn = new Client({ networkSimulator: { loss: 0.1 } }).stats().networkSimulator?.seed
    expect(Number.isSafeInteger(drawn)).toBe(true)
    expect(new Client({ networkSimulator: { loss: 0.1, seed: drawn } }).stats().networkSimulator?.seed).toBe(drawn)
    expect(new Client().stats().networkSimulator).toBeNull()
  })

  it('takes queueBytes with a bandwidth only, and passes 0 (one second of it) when absent', () => {
    expect(networkSimulatorFields({ bandwidthBytesPerSec: 1000, queueBytes: 5000 }).networkSimulator?.queueBytes).toBe(5000)
    expect(networkSimulatorFields({ bandwidthBytesPerSec: 1000 }).networkSimulator?.queueBytes).toBe(0)
    expect(() => networkSimulatorFields({ queueBytes: 5000 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/needs the "networkSimulator.bandwidthBytesPerSec" option/) }))
    expect(() => networkSimulatorFields({ bandwidthBytesPerSec: 1000, queueBytes: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => networkSimulatorFields({ bandwidthBytesPerSec: 1000, queueBytes: '1' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    // A full queue that held a datagram for more than a minute held close() as long (3 MB at 1 B/s: 35 days).
    expect(() => networkSimulatorFields({ bandwidthBytesPerSec: 1, queueBytes: 3e6 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/at most 60 s of the bandwidth \(60 bytes at 1 bytes a second\)/) }))
    expect(networkSimulatorFields({ bandwidthBytesPerSec: 1000, queueBytes: 60_000 }).networkSimulator).toMatchObject({ queueBytes: 60_000 })
  })

  it('passes every seed given on, 0 included, and draws one when none is', () => {
    expect(networkSimulatorFields({ seed: 0 }).networkSimulator?.seed).toBe(0)
    expect(networkSimulatorFields({ seed: 42 }).networkSimulator?.seed).toBe(42)
    const drawn = new Set(Array.from({ length: 8 }, () => networkSimulatorFields({ loss: 0.1 }).networkSimulator?.seed))
    expect(drawn.size).toBeGreaterThan(1)
  })
})
