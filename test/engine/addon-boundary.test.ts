// The addon called directly with arguments the TypeScript layer never passes: values whose conversion
// throws, getters that throw, objects of the wrong class, sizes out of reach, buffers that could move.
// Each call must throw a JavaScript error or return; before the fixes several aborted the process
// (an addon built without C++ exceptions dies when a conversion throws) or read foreign memory. They run
// in a child process so that a crash fails this test instead of taking the test worker with it.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runAddonScript, runPlainNode } from './harness/addon-script.ts'

const root = join(import.meta.dirname, '../..')

const script = `
const throwing = { valueOf() { throw new Error('valueOf') }, toString() { throw new Error('toString') } }
const engine = new addon.Engine(() => {})
engine.setRef(false)
for (const [name, value] of [['bigint', 1n], ['symbol', Symbol('id')], ['throwing', throwing]] as const) {
  attempt('closeSocket ' + name, () => engine.closeSocket(value))
  attempt('control ' + name, () => engine.control(value, value, value))
  attempt('takeLarge ' + name, () => engine.takeLarge(value))
  attempt('socketStats ' + name, () => engine.socketStats(value, new Float64Array(16)))
  attempt('peerCounters ' + name, () => engine.peerCounters(value))
  attempt('submit ' + name, () => engine.submit(value, value))
  attempt('setRef ' + name, () => engine.setRef(value))
  attempt('formatIp ' + name, () => addon.formatIp(new Uint8Array(16), value))
}
const socket = { ipv6: false, ipv6Only: false, reuseAddress: false, reusePort: false, receiveBufferSize: 0, sendBufferSize: 0, address: '127.0.0.1', port: 0, batchSize: 8, coalesceUs: 0 }
attempt('openSocket getter', () => engine.openSocket({ ...socket, get ipv6() { throw new Error('getter ipv6') } }))
attempt('openSocket port symbol', () => engine.openSocket({ ...socket, port: Symbol('port') }))
attempt('openSocket address throwing', () => engine.openSocket({ ...socket, address: throwing }))
attempt('openSocket protocol getter', () => engine.openSocket({ ...socket, protocol: { get kind() { throw new Error('getter kind') } } }))
// The slabs and the event list are the addon's memory: JavaScript passes no buffer the I/O thread could
// be left writing into. An id from nowhere gives null; the constructor of before (a control array first)
// is refused.
attempt('Engine with a control array', () => new addon.Engine(new Int32Array(1 << 16), () => {}))
for (const [name, value] of [['symbol', Symbol('id')], ['throwing', throwing], ['-1', -1], ['2^32', 2 ** 32]] as const) {
  attempt('receiveSlab ' + name, () => engine.receiveSlab(value))
  attempt('sendSlab ' + name, () => engine.sendSlab(value))
}
const slabs: number[] = []
attempt('addReceiveSlab up to the maximum', () => {
  for (;;) slabs.push(engine.addReceiveSlab())
})
// Each refusal carries Node's code for its kind (the TypeScript layer's checks come first, but a direct caller is told too).
const codeOf = (call: () => unknown) => () => {
  try {
    call()
  } catch (error) {
    throw new Error('code ' + (error as { code?: string }).code)
  }
}
attempt('submit out of range, its code', codeOf(() => engine.submit(99, 0)))
attempt('Engine without a function, its code', codeOf(() => new addon.Engine(1)))
// A getter that shuts the engine down: the socket it was opening is refused (and closed), not left open
// on an engine that would never run it.
const doomed = new addon.Engine(() => {})
doomed.setRef(false)
attempt('openSocket shut down by a getter', () => doomed.openSocket({ ...socket, get reusePort() { doomed.shutdown(); return false } }))
engine.shutdown()
attempt('closeSocket after shutdown', () => engine.closeSocket(Symbol('late')))
`

describe('the addon, called directly with hostile arguments', () => {
  it('throws or returns, and never takes the process down', () => {
    const outcomes = runAddonScript(script) as Record<string, string>
    expect(Object.keys(outcomes)).toHaveLength(8 * 3 + 4 + 1 + 4 * 2 + 1 + 2 + 1 + 1)
    expect(outcomes['openSocket shut down by a getter']).toBe("threw TypeError: openSocket(options) on a running engine expected: an option's getter shut it down")
    expect(outcomes['submit out of range, its code']).toBe('threw Error: code ERR_OUT_OF_RANGE')
    expect(outcomes['Engine without a function, its code']).toBe('threw Error: code ERR_INVALID_ARG_TYPE')
    // A getter's own exception reaches JavaScript; nothing is opened behind it.
    expect(outcomes['openSocket getter']).toBe('threw Error: getter ipv6')
    expect(outcomes['openSocket protocol getter']).toBe('threw Error: getter kind')
    expect(outcomes['openSocket port symbol']).toMatch(/^threw RangeError: port must be/)
    expect(outcomes['Engine with a control array']).toBe('threw TypeError: Engine(onEvents: Function) expected')
    for (const name of ['symbol', 'throwing', '-1', '2^32']) {
      expect(outcomes['receiveSlab ' + name]).toBe('returned null')
      expect(outcomes['sendSlab ' + name]).toBe('returned null')
    }
    expect(outcomes['addReceiveSlab up to the maximum']).toBe('threw RangeError: the engine has its maximum of receive slabs')
    expect(outcomes['closeSocket symbol']).toBe('returned undefined')
  }, 40_000)

  it('turns an allocation that fails into a JavaScript error with a code, not an abort', () => {
    // A large message's copy (sendLarge) under a memory limit (ulimit -v; an overcommit policy of 2 does the
    // same) threw std::bad_alloc through N-API, which the addon, built without C++ exceptions, cannot catch:
    // the process aborted. 2.5 GB for JavaScript fit in 5 GB of address space; the addon's copy did not.
    // Plain node (tsx's WebAssembly needs more address space than that), the addon as the loader finds it.
    const script = `
const addon = require(require('node-gyp-build').resolve(${JSON.stringify(root)}))
const engine = new addon.Engine(() => {})
engine.setRef(false)
const message = new Uint8Array(2_500_000_000)
let outcome = 'no error'
try {
  engine.control(1, 6, 0, message, 1)
} catch (error) {
  outcome = error.code + ': ' + error.message
}
console.log(JSON.stringify({ outcome, goesOn: engine.largeBytes() }))
engine.shutdown()
`
    expect(runPlainNode(script, 'ulimit -v 5000000')).toEqual({ outcome: 'ERR_MEMORY_ALLOCATION_FAILED: Out of memory copying a message of 2500000000 bytes', goesOn: 0 })
  }, 40_000)

  it("turns a server's tables that a memory limit refuses into a JavaScript error with a code", () => {
    // A server for 2^20 clients holds about 400 MB; its std::bad_alloc went through N-API and aborted.
    const script = `
const addon = require(require('node-gyp-build').resolve(${JSON.stringify(root)}))
const engine = new addon.Engine(() => {})
engine.setRef(false)
// The address space filled with 16 MiB blocks, then four given back: 64 MiB free at most.
const held = []
try { for (;;) held.push(new Uint8Array(16 << 20)) } catch {}
held.length -= 4
globalThis.gc()
const key = new Uint8Array(32).fill(7)
const socket = { ipv6: false, ipv6Only: false, reuseAddress: false, reusePort: false, receiveBufferSize: 0, sendBufferSize: 0, address: '127.0.0.1', port: 0, batchSize: 8, coalesceUs: 0 }
let outcome = 'opened'
try {
  engine.openSocket({ ...socket, protocol: { kind: 'server', protocolId: 1n, privateKey: key, publicAddress: '127.0.0.1:0', maxClients: 1 << 20, keepAliveIntervalUs: 100000, disconnectIntervalUs: 100000, disconnectPackets: 10 } })
} catch (error) {
  outcome = error.code + ': ' + error.message
}
console.log(JSON.stringify({ outcome, filled: held.length > 10 }))
engine.shutdown()
`
    expect(runPlainNode(script, 'ulimit -v 2000000', ['--expose-gc'])).toEqual({ outcome: "ERR_MEMORY_ALLOCATION_FAILED: Out of memory for the socket's protocol", filled: true })
  }, 40_000)

  it('gives a socket whose batch a memory limit refuses a smaller batch and an ENOMEM error, on the I/O thread, and it receives', () => {
    // 1,024 datagrams a batch take 64 MiB of scratch, made on the I/O thread as the socket opens: its
    // std::bad_alloc there ended the process.
    const script = `
const dgram = require('node:dgram')
const addon = require(require('node-gyp-build').resolve(${JSON.stringify(root)}))
const errors = []
let batches = 0
let control
const engine = new addon.Engine((count) => {
  for (let i = 0; i < count; i++) {
    if (control[i * 6] === 4) errors.push(control[i * 6 + 2])
    if (control[i * 6] === 1) batches++
  }
})
control = engine.events()
for (let i = 0; i < 4; i++) engine.addReceiveSlab()
const sender = dgram.createSocket('udp4')
// The address space filled with 16 MiB blocks, then two given back: 32 MiB free at most, in two holes.
const held = []
try { for (;;) held.push(new Uint8Array(16 << 20)) } catch {}
held.length -= 2
globalThis.gc()
const opened = engine.openSocket({ ipv6: false, ipv6Only: false, reuseAddress: false, reusePort: false, receiveBufferSize: 0, sendBufferSize: 0, address: '127.0.0.1', port: 0, batchSize: 1024, coalesceUs: 0 })
setTimeout(() => sender.send('x', opened.port, '127.0.0.1'), 100)
// Once the datagram's batch is in (however late a loaded machine brings it), or after 10 s.
const started = Date.now()
const report = setInterval(() => {
  if (batches < 1 && Date.now() - started < 10000) return
  clearInterval(report)
  console.log(JSON.stringify({ errors, batches, filled: held.length > 10 }))
  sender.close()
  engine.shutdown()
}, 50)
`
    expect(runPlainNode(script, 'ulimit -v 2000000', ['--expose-gc'])).toEqual({ errors: [-12], batches: 1, filled: true })
  }, 40_000)

  it("reports why the engine's wake-up could not be made, whatever ran after the failure", () => {
    // eventfd()'s errno was read later, after the async context's init hooks had run: a hook whose call
    // failed (an agent's fs.statSync) turned "too many open files" into ENOENT, and the advice that follows
    // from EMFILE (raise ulimit -n) and the choice of a fallback that will not last went wrong.
    const script = `
const fs = require('node:fs')
const addon = require(require('node-gyp-build').resolve(${JSON.stringify(root)}))
let clobber = false
require('node:async_hooks').createHook({ init() { if (clobber) try { fs.statSync('/nonexistent') } catch {} } }).enable()
const held = []
try { for (;;) held.push(fs.openSync('/dev/null', 'r')) } catch {}
const outcomes = []
for (const hook of [false, true]) {
  clobber = hook
  try { new addon.Engine(() => {}).shutdown(); outcomes.push('made') } catch (error) { outcomes.push(error.syscall + ' ' + error.errno) }
}
console.log(JSON.stringify(outcomes))
`
    expect(runPlainNode(script, 'ulimit -n 256')).toEqual(['eventfd -24', 'eventfd -24'])
  }, 40_000)
})
