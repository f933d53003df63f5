// Statistics read into a Float64Array over a SharedArrayBuffer (the addon called directly): the addon
// found the array's memory through its buffer, which N-API gives no pointer to when it is shared, and
// wrote the counters near address 0 (SIGSEGV). They go through the array's own data pointer now.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const script = `
import { loadAddon } from ${JSON.stringify(join(import.meta.dirname, '../../src/engine/addon.ts'))}
const addon = loadAddon() as any
const outcomes: Record<string, unknown> = {}
function attempt(name: string, call: () => unknown): void {
  try {
    outcomes[name] = call()
  } catch (error) {
    outcomes[name] = 'threw ' + (error as Error).name + ': ' + (error as Error).message
  }
}
const engine = new addon.Engine(new Int32Array(1 << 16), () => {})
engine.setRef(false)
const options = { ipv6: false, ipv6Only: false, reuseAddress: false, reusePort: false, receiveBufferSize: 0, sendBufferSize: 0, address: '127.0.0.1', port: 0, batchSize: 8, coalesceUs: 0 }
const raw = engine.openSocket(options)
const client = engine.openSocket({ ...options, protocol: { kind: 'client' } })
const shared = (length: number) => new Float64Array(new SharedArrayBuffer(8 * (length + 1)), 8, length).fill(-1)
attempt('socketStats', () => { const out = shared(16); return [engine.socketStats(raw.id, out), out[0]] })
attempt('protocolStats', () => { const out = shared(16); return [engine.protocolStats(client.id, out), out[0]] })
attempt('peerStats', () => { const out = shared(4); return [engine.peerStats(client.id, 0, out), out[0]] })
engine.shutdown()
console.log(JSON.stringify(outcomes))
`

describe('the addon, reading statistics into shared memory', () => {
  it('writes them into the array, at its offset', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'volley-shared-')), 'shared.mts')
    writeFileSync(file, script)
    const run = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: join(import.meta.dirname, '../..'), timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8' })
    expect({ status: run.status, signal: run.signal, stderr: run.stderr.slice(0, 2000) }).toMatchObject({ status: 0, signal: null })
    const outcomes = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
    // Nothing was received or sent: every counter read is 0 (the arrays were filled with -1).
    expect(outcomes).toEqual({ socketStats: [true, 0], protocolStats: [true, 0], peerStats: [true, 0] })
  }, 40_000)
})
