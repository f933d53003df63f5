// A raw socket whose datagrams the kernel refuses for want of buffer space (EAGAIN) holds them, in order,
// and a close waits for them; the other sockets of the same engine go on meanwhile. EAGAIN cannot be
// provoked on loopback, so the fixtures run with a sendmmsg that refuses on demand (harness/sendmmsg_eagain.c). The
// setting is in the environment from the start, and the fixture only ever replaces its value: the shim
// reads it on the I/O thread, and getenv races with a setenv that adds or removes a variable, not with one
// that replaces a value (glibc keeps the old string).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '../..')

/**
 * Runs a fixture (test/fixtures) with the shim loaded, and returns the JSON it prints, with refusedCalls:
 * the sendmmsg calls the shim refused (none would make a test of held sends pass without holding any).
 */
function runWithShim<Result>(fixture: string, env: Record<string, string> = {}): Result & { refusedCalls: number } {
  const directory = mkdtempSync(join(tmpdir(), 'volley-eagain-'))
  const shim = join(directory, 'sendmmsg_eagain.so')
  const refused = join(directory, 'refused')
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-Wall', '-Wextra', '-o', shim, 'test/engine/harness/sendmmsg_eagain.c', '-ldl'], { cwd: root })
  const output = execFileSync(process.execPath, ['--import', 'tsx', join('test/fixtures', fixture)], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, ...env, LD_PRELOAD: shim, VOLLEY_EAGAIN: '0:0:start', VOLLEY_EAGAIN_REFUSED: refused },
  })
  return { ...(JSON.parse(output) as Result), refusedCalls: Number(readFileSync(refused, 'utf8')) }
}

describe('sends the kernel refuses (EAGAIN)', () => {
  it('are waited for by what was queued after them (a large message, a close, a stop), and a close ends even so', () => {
    const result = runWithShim<{
      largeOrder: string[]
      rawSentBeforeClose: boolean
      rawDropped: number
      stopOrder: string[]
      stuckCloseMs: number
      stuckDropped: number
    }>('send-held-controls.ts')
    expect(result.refusedCalls).toBeGreaterThan(0)
    // A message over 32 KiB travels as a control; on a reliable channel it keeps its place.
    expect(result.largeOrder).toEqual(['before', 'large 40000', 'after'])
    // close() sends what was queued before it instead of dropping it.
    expect(result.rawSentBeforeClose).toBe(true)
    expect(result.rawDropped).toBe(0)
    // close() of a client stops its protocol after the message sent before it.
    expect(result.stopOrder).toEqual(['last words', 'disconnect'])
    // A close behind a send the kernel never takes ends after a second, and counts the datagram it dropped.
    expect(result.stuckCloseMs).toBeGreaterThanOrEqual(900)
    expect(result.stuckCloseMs).toBeLessThan(10_000)
    expect(result.stuckDropped).toBe(1)
  }, 40_000)

  it("hold up no other socket of the engine: another raw socket's datagrams, a client's message and a close go meanwhile", () => {
    const result = runWithShim<{
      othersSent: boolean
      otherOrder: string[]
      heldBeforeRelease: string[]
      otherClosed: boolean
      heldSent: boolean
      heldOrder: string[]
      heldPacketsOut: number
      heldDropped: number
    }>('send-held-apart.ts')
    expect(result.refusedCalls).toBeGreaterThan(0)
    // While the refused socket held its three datagrams (refused until released), the others went, in order.
    // When one refused send held the whole engine, none of them went before the release.
    expect(result.othersSent).toBe(true)
    expect(result.otherOrder).toEqual(Array.from({ length: 50 }, (_, i) => `other ${i}`))
    expect(result.otherClosed).toBe(true)
    // The held socket's later datagrams, to a port the kernel would take, waited behind its first.
    expect(result.heldBeforeRelease).toEqual([])
    expect(result.heldSent).toBe(true)
    expect(result.heldOrder).toEqual(['held 2', 'held 3'])
    expect(result.heldPacketsOut).toBe(3)
    expect(result.heldDropped).toBe(0)
  }, 40_000)

  it('refused now and then over many slabs: every datagram of three sockets arrives once, each socket in its order', () => {
    const result = runWithShim<{ total: number; arrived: number; inOrder: boolean; unique: number; packetsOut: number; dropped: number }>('send-held-order.ts')
    expect(result.refusedCalls).toBeGreaterThan(20) // 1 to 4 a round, 40 rounds
    expect(result.arrived).toBe(result.total)
    expect(result.unique).toBe(result.total)
    expect(result.inOrder).toBe(true)
    expect(result.packetsOut).toBe(result.total)
    expect(result.dropped).toBe(0)
  }, 40_000)

  it("wake every socket waiting for a send slab, each with its 'drain', whatever another's listener throws", () => {
    const drains = (throwing: boolean) => runWithShim('drain-handler-throws.ts', { THROW: throwing ? '1' : '0' })
    for (const throwing of [false, true]) {
      // Without the throw, the control; with it, B drains though A threw.
      const result = drains(throwing)
      expect(result).toMatchObject({ bAccepted: false, aDrains: 1, bDrains: 1 })
      expect(result.refusedCalls).toBeGreaterThan(0)
    }
  }, 60_000)

  it('held while bind() resolved a host name, more than the send queue takes: every one goes once the kernel takes them, in order, before the close', () => {
    // They went to the engine's queue through send() once bound: past its 8 MiB the engine refused them and
    // they were lost, counted as refused sends, though each send() had returned true.
    const result = runWithShim<{
      accepted: number
      sentWhileRefused: number
      packetsOut: number
      dropped: number
      arrived: number
      inOrder: boolean
      drains: number
      closeMs: number
      stuckCloseMs: number
      stuck: { packetsOut: number; closed: number; depth: number }
    }>('send-held-while-binding.ts')
    expect(result.refusedCalls).toBeGreaterThan(0)
    expect(result).toMatchObject({ accepted: 1001, sentWhileRefused: 0, packetsOut: 1001, dropped: 0, arrived: 1001, inOrder: true, drains: 0 })
    expect(result.closeMs).toBeLessThan(10_000)
    // A close() behind held datagrams the kernel never takes ends (it waited for a drain that never came),
    // after a second for those still held and one for the engine's own, and counts every one dropped.
    expect(result.stuck).toEqual({ packetsOut: 0, closed: 1000, depth: 0 })
    expect(result.stuckCloseMs).toBeGreaterThanOrEqual(900)
    expect(result.stuckCloseMs).toBeLessThan(10_000)
  }, 40_000)

  it('an aborted connect on the same engine neither waits for them nor connects behind the abort', () => {
    const result = runWithShim<{
      outcome: string
      endedWhileHeld: boolean
      heldSent: boolean
      connects: number
      disconnects: number
      connectedClients: number
      state: string
    }>('send-held-abort.ts')
    expect(result.refusedCalls).toBeGreaterThan(0)
    expect(result.outcome).toBe('ABORT_ERR')
    // The abort's disconnect did not wait for the held datagram: whatever the server saw of the attempt
    // ended while the raw socket still held it.
    expect(result.endedWhileHeld).toBe(true)
    expect(result.heldSent).toBe(true)
    // Nothing connected once the held datagram went: when both waited behind it, the connect was applied
    // after the disconnect and the server kept a peer the Client said was not there.
    expect(result.connects).toBe(result.disconnects)
    expect(result.connectedClients).toBe(0)
    expect(result.state).toBe('disconnected')
  }, 40_000)
})
