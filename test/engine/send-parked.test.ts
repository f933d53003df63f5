// A raw socket's send slab parked by a full kernel send buffer (EAGAIN) must not let a later control for
// another socket on the same engine overtake the sends queued behind it. EAGAIN cannot be provoked on
// loopback, so the fixture runs with a sendmmsg that refuses on demand (harness/sendmmsg_eagain.c). The
// setting is in the environment from the start, and the fixture only ever replaces its value: the shim
// reads it on the I/O thread, and getenv races with a setenv that adds or removes a variable, not with one
// that replaces a value (glibc keeps the old string).
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '../..')

/** Runs a fixture (test/fixtures) with the shim loaded, and returns the JSON it prints. */
function runWithShim(fixture: string): unknown {
  const shim = join(mkdtempSync(join(tmpdir(), 'volley-eagain-')), 'sendmmsg_eagain.so')
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-Wall', '-Wextra', '-o', shim, 'test/engine/harness/sendmmsg_eagain.c', '-ldl'], { cwd: root })
  const output = execFileSync(process.execPath, ['--import', 'tsx', join('test/fixtures', fixture)], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, LD_PRELOAD: shim, VOLLEY_EAGAIN: '0:0:start' },
  })
  return JSON.parse(output)
}

describe('controls behind a parked send slab', () => {
  it('wait for the sends queued before them (a large message, a close, a stop), and a close ends even so', () => {
    const result = runWithShim('send-parked.ts') as {
      largeOrder: string[]
      rawSentBeforeClose: boolean
      rawDropped: number
      stopOrder: string[]
      stuckCloseMs: number
      stuckDropped: number
    }
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

  it('an aborted connect does not connect once the slab goes, after its disconnect went on its own', () => {
    const result = runWithShim('send-parked-abort.ts') as { outcome: string; parkEnded: boolean; connects: number; state: string }
    expect(result.outcome).toBe('ERR_ABORTED')
    expect(result.parkEnded).toBe(true)
    // The connect queued before the disconnect went with the slab's datagrams: applied after it, the
    // client connected behind JavaScript's back (the server had a peer the Client said was not there).
    expect(result.connects).toBe(0)
    expect(result.state).toBe('disconnected')
  }, 40_000)
})
