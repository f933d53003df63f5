// The test bindings' addon (native/testing/) called directly with arguments no suite means to pass: objects of
// the wrong class, sizes out of reach, arrays that grow while read. Each call must throw a JavaScript error or
// return. Then the delivery core under a memory limit. In child processes, so that a crash fails the test
// instead of taking the test worker with it. (The shipped addon's own: addon-boundary.test.ts.)
import { describe, expect, it } from 'vitest'
import { testingAddonPath } from '../testing-addon.ts'
import { runAddonScript, runPlainNode } from './harness/addon-script.ts'

const script = `
const throwing = { valueOf() { throw new Error('valueOf') }, toString() { throw new Error('toString') } }
const key = new Uint8Array(32).fill(7)
const packet = testing.netcode.encryptPacket(5, 5n, new Uint8Array(8), 1n, key)
attempt('readEncryptedPacket plain object', () => testing.netcode.readEncryptedPacket(packet, 1n, key, 0xff, {}))
attempt('readEncryptedPacket other class', () => testing.netcode.readEncryptedPacket(packet, 1n, key, 0xff, new testing.netcode.AddressTable(4)))
attempt('readEncryptedPacket ReplayWindow', () => testing.netcode.readEncryptedPacket(packet, 1n, key, 0xff, new testing.netcode.ReplayWindow()))
attempt('encryptPacket throwing type', () => testing.netcode.encryptPacket(throwing, 5n, new Uint8Array(8), 1n, key))
attempt('AddressTable -1', () => new testing.netcode.AddressTable(-1).size)
attempt('AddressTable 2^32 - 1', () => new testing.netcode.AddressTable(2 ** 32 - 1).size)
attempt('ServerCore maxClients -1', () => new testing.netcode.ServerCore({ protocolId: 1n, privateKey: key, publicAddress: '127.0.0.1:1', maxClients: -1, challengeKey: key }))
// Arrays whose first element's getter makes them longer, read while the addon walks them: 32 server
// addresses at most (past them it wrote beyond the token's stack arrays), 255 channels at most.
const growing = (item: string, extra: number): string[] => {
  const list = [item]
  let grown = false
  Object.defineProperty(list, 0, { get() { if (!grown) { grown = true; for (let k = 0; k < extra; k++) list.push(item) } return item } })
  return list
}
const tokenOptions = { protocolId: 1n, clientId: 1n, createTimestamp: 1n, expireTimestamp: 2n, privateKey: key, userData: new Uint8Array(256), clientToServerKey: key, serverToClientKey: key, nonce: new Uint8Array(24), timeoutSeconds: 5 }
attempt('generateConnectToken growing addresses', () => testing.netcode.generateConnectToken({ ...tokenOptions, serverAddresses: growing('1.2.3.4:5', 200) }).length)
attempt('generateConnectToken timeoutSeconds 2^32 - 1', () => testing.netcode.generateConnectToken({ ...tokenOptions, serverAddresses: ['1.2.3.4:5'], timeoutSeconds: 2 ** 32 - 1 }))
attempt('DeliveryCore growing channels', () => {
  if (new testing.DeliveryCore({ channels: growing('reliable', 300) }).send(1, new Uint8Array(1), 0) !== 'no-channel') throw new Error('channel 1 exists')
})
// Each refusal carries Node's code for its kind.
const codeOf = (call: () => unknown) => () => {
  try {
    call()
  } catch (error) {
    throw new Error('code ' + (error as { code?: string }).code)
  }
}
attempt('generateConnectToken without addresses, its code', codeOf(() => testing.netcode.generateConnectToken({ ...tokenOptions, serverAddresses: [] })))
`

describe("the test bindings' addon, called directly with hostile arguments", () => {
  it('throws or returns, and never takes the process down', () => {
    const outcomes = runAddonScript(script) as Record<string, string>
    expect(Object.keys(outcomes)).toHaveLength(7 + 3 + 1)
    expect(outcomes['readEncryptedPacket plain object']).toMatch(/^threw TypeError: readEncryptedPacket: replay must be a ReplayWindow/)
    expect(outcomes['readEncryptedPacket other class']).toMatch(/^threw TypeError: readEncryptedPacket: replay must be a ReplayWindow/)
    expect(outcomes['readEncryptedPacket ReplayWindow']).toBe('returned object')
    expect(outcomes['encryptPacket throwing type']).toMatch(/^threw /)
    expect(outcomes['AddressTable -1']).toBe('returned number')
    expect(outcomes['ServerCore maxClients -1']).toMatch(/^threw TypeError: maxClients must be 1..1048576/)
    // The token holds the one address the array had when read: the rest came from the getter.
    expect(outcomes['generateConnectToken growing addresses']).toBe('returned number')
    expect(outcomes['generateConnectToken timeoutSeconds 2^32 - 1']).toBe('threw TypeError: timeoutSeconds must fit in 32 bits signed')
    expect(outcomes['generateConnectToken without addresses, its code']).toBe('threw Error: code ERR_INVALID_ARG_VALUE')
    // One channel, as the array was when read: channel 1 does not exist (with 301 it did).
    expect(outcomes['DeliveryCore growing channels']).toBe('returned undefined')
  }, 40_000)

  it("takes a peer's first fragment of a 1 GiB message under a memory limit without making its length: no abort on the I/O thread", () => {
    // A peer's first fragment of a 1 GiB message (within the bound of a server whose maxMessageBytes is
    // 1 GiB) made its buffer at once; under a memory limit std::bad_alloc went up through the engine's
    // thread and ended the process, and later it was refused. Now only the block the fragment falls in is
    // made (and the message's table of blocks, 16 bytes a block): the message is taken, its length counted
    // against the bound. The delivery core (the test bindings') runs the same code as the engine's.
    const script = `
const testing = require(${JSON.stringify(testingAddonPath)})
const varint = (value) => { const out = []; for (; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) | 128); out.push(value); return out }
const length = 2 ** 30
const core = new testing.DeliveryCore({ channels: ['reliable'], maxMessageBytes: length })
const settings = [0x05, 1, ...varint(length), 1, 1]
const fragment = [0x11, 0, 0, ...varint(length), 0, ...new Array(1100).fill(7)]
core.receive(Uint8Array.from([0xd1, 0, ...settings, ...fragment]), 1000000)
const { overBudget, reassemblyUsed, reassemblyHeld } = core.stats(1000000)
console.log(JSON.stringify({ overBudget, reassemblyUsed, heldUnder2MB: reassemblyHeld < 2e6 }))
`
    expect(runPlainNode(script, 'ulimit -v 1200000')).toEqual({ overBudget: 0, reassemblyUsed: 2 ** 30, heldUnder2MB: true })
  }, 40_000)
})
