// The test bindings' addon called directly with option objects whose getters run JavaScript after a key was
// read: a getter that shrinks the resizable buffer under an earlier key must not leave the addon reading where
// that key was (decommitted memory: the process died of SIGSEGV). Each option's bytes are read after the
// getters, or copied before them. In a child process, so that a crash fails this test instead of the worker.
import { describe, expect, it } from 'vitest'
import { runAddonScript } from './harness/addon-script.ts'

const script = `
// A key 512 KiB into a 1 MiB resizable buffer: a resize to 0 takes its pages away.
function shrinkableKey(): { key: Uint8Array; shrink: () => void } {
  const buffer = new (ArrayBuffer as any)(1 << 20, { maxByteLength: 1 << 20 })
  return { key: new Uint8Array(buffer, 512 << 10, 32).fill(7), shrink: () => buffer.resize(0) }
}
const tokenOptions = {
  protocolId: 1n, clientId: 1n, createTimestamp: 1n, expireTimestamp: 2n, timeoutSeconds: 5,
  userData: new Uint8Array(256), clientToServerKey: new Uint8Array(32), serverToClientKey: new Uint8Array(32),
  nonce: new Uint8Array(24), serverAddresses: ['127.0.0.1:1'],
}
{
  const { key, shrink } = shrinkableKey()
  attempt('generateConnectToken, a later option shrinks privateKey', () =>
    testing.netcode.generateConnectToken({ ...tokenOptions, privateKey: key, get nonce() { shrink(); return new Uint8Array(24) } }))
}
{
  const { key, shrink } = shrinkableKey()
  const serverAddresses: string[] = []
  Object.defineProperty(serverAddresses, 0, { get() { shrink(); return '127.0.0.1:1' }, enumerable: true })
  attempt('generateConnectToken, a server address shrinks privateKey', () =>
    testing.netcode.generateConnectToken({ ...tokenOptions, privateKey: key, serverAddresses }))
}
{
  const { key, shrink } = shrinkableKey()
  attempt('ServerCore, publicAddress shrinks challengeKey', () =>
    new testing.netcode.ServerCore({ protocolId: 1n, privateKey: new Uint8Array(32), challengeKey: key, maxClients: 4,
      get publicAddress() { shrink(); return '127.0.0.1:1' } }))
}
{
  const { key, shrink } = shrinkableKey()
  attempt('ServerCore, challengeKey shrinks privateKey', () =>
    new testing.netcode.ServerCore({ protocolId: 1n, privateKey: key, maxClients: 4, publicAddress: '127.0.0.1:1',
      get challengeKey() { shrink(); return new Uint8Array(32) } }))
}
`

describe("the test bindings' addon, with getters that shrink a key read before them", () => {
  it('copies or refuses the key, and never reads where it was', () => {
    const outcomes = runAddonScript(script) as Record<string, string>
    // The bytes are read once every getter has run: a key shrunk away by then is refused.
    expect(outcomes['generateConnectToken, a later option shrinks privateKey']).toMatch(/^threw TypeError: privateKey must be 32 bytes/)
    expect(outcomes['ServerCore, challengeKey shrinks privateKey']).toMatch(/^threw TypeError: privateKey must be 32 bytes/)
    // Keys copied before the getters that come after them.
    expect(outcomes['generateConnectToken, a server address shrinks privateKey']).toBe('returned object')
    expect(outcomes['ServerCore, publicAddress shrinks challengeKey']).toBe('returned object')
  }, 40_000)
})
