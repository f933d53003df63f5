// The slabs and the event list are the addon's memory, shared with JavaScript through ArrayBuffers that
// each hold a share of it (native/engine/shared_memory.h). A caller of the addon that detaches those buffers and
// lets the detached memory be collected must leave the I/O thread writing into live memory: datagrams
// still arrive, events are still written, and a new buffer over a slab sees what the old one held.
import { describe, expect, it } from 'vitest'
import { runAddonScript } from './harness/addon-script.ts'

const script = `
const { setFlagsFromString } = await import('node:v8')
const { runInNewContext } = await import('node:vm')
const { createSocket } = await import('node:dgram')
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
/** Detaches the buffer under view now, as a BYOB read does in every Node version. */
const detach = (view: Uint8Array | Int32Array) => void new ReadableStream({ type: 'bytes' }).getReader({ mode: 'byob' }).read(view as Uint8Array)

let events = 0
const engine = new addon.Engine((count: number) => { events += count })
const list = engine.events()
const slabs = [engine.addReceiveSlab(), engine.addReceiveSlab()]
for (const id of slabs) {
  const bytes = new Uint8Array(engine.receiveSlab(id))
  bytes[8] = 42 + id
  detach(bytes)
  attempt('detached slab ' + id, () => bytes.buffer.byteLength)
}
detach(list)
attempt('detached event list', () => list.buffer.byteLength)
gc()
gc()
attempt('same memory', () => slabs.map((id) => new Uint8Array(engine.receiveSlab(id))[8]))

const socket = engine.openSocket({ ipv6: false, ipv6Only: false, reuseAddress: false, reusePort: false, receiveBufferSize: 0, sendBufferSize: 0, address: '127.0.0.1', port: 0, batchSize: 8, coalesceUs: 0 })
const sender = createSocket('udp4')
for (let i = 0; i < 200; i++) sender.send(new Uint8Array(100).fill(i), socket.port, '127.0.0.1')
const deadline = Date.now() + 5_000
const stats = new Float64Array(16)
while (Date.now() < deadline && (!engine.socketStats(socket.id, stats) || stats[0]! < 200)) await new Promise((resolve) => setTimeout(resolve, 10))
await new Promise((resolve) => setTimeout(resolve, 50))
attempt('datagrams read', () => stats[0])
attempt('events written', () => events > 0)
sender.close()
engine.shutdown()
// Buffers give their share back when V8 frees them, which may come a little after the collection.
const freed = Date.now() + 5_000
while (Date.now() < freed && addon.sharedMemoryBytes() >= 256 * 1024) {
  gc()
  await new Promise((resolve) => setTimeout(resolve, 10))
}
attempt('memory given back', () => addon.sharedMemoryBytes())
`

describe('the addon, when a caller detaches the buffers over its memory', () => {
  it('goes on writing into live memory, and a new buffer sees the same bytes', () => {
    const outcomes = runAddonScript(script, 'value') as Record<string, unknown>
    expect(outcomes).toMatchObject({
      'detached slab 0': 0,
      'detached slab 1': 0,
      'detached event list': 0,
      'same memory': [42, 43],
      'datagrams read': 200,
      'events written': true,
    })
    // The engine has stopped and every buffer over a slab was collected: what is left is the event list
    // (24 KiB), which the engine's wrapper, still referenced by the script, holds.
    expect(outcomes['memory given back']).toBeLessThan(64 * 1024)
  }, 40_000)
})
