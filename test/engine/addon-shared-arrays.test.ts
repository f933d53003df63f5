// Statistics read into a Float64Array over a SharedArrayBuffer (the addon called directly): the addon
// found the array's memory through its buffer, which N-API gives no pointer to when it is shared, and
// wrote the counters near address 0 (SIGSEGV). They go through the array's own data pointer now.
import { describe, expect, it } from 'vitest'
import { runAddonScript } from './harness/addon-script.ts'

const script = `
const engine = new addon.Engine(() => {})
engine.setRef(false)
const options = { ipv6: false, ipv6Only: false, reuseAddress: false, reusePort: false, receiveBufferSize: 0, sendBufferSize: 0, address: '127.0.0.1', port: 0, batchSize: 8, coalesceUs: 0 }
const raw = engine.openSocket(options)
const client = engine.openSocket({ ...options, protocol: { kind: 'client' } })
const shared = (length: number) => new Float64Array(new SharedArrayBuffer(8 * (length + 1)), 8, length).fill(-1)
attempt('socketStats', () => { const out = shared(16); return [engine.socketStats(raw.id, out), out[0]] })
attempt('protocolStats', () => { const out = shared(30); return [engine.protocolStats(client.id, out), out[0]] })
engine.shutdown()
`

describe('the addon, reading statistics into shared memory', () => {
  it('writes them into the array, at its offset', () => {
    const outcomes = runAddonScript(script, "value") as Record<string, unknown>
    // Nothing was received or sent: every counter read is 0 (the arrays were filled with -1).
    expect(outcomes).toEqual({ socketStats: [true, 0], protocolStats: [true, 0] })
  }, 40_000)
})
