// Client.stats() across the socket a client reopens for an IPv6 server: the I/O thread's byte and packet
// counts start again on the new socket, while the bandwidth reading keeps the old socket's totals.
import { expect, it } from 'vitest'
import { Client, Server, generateConnectToken } from '../src/index.ts'
import { waitFor } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(7)
const protocolId = 0x4321n
const fast = { disconnectIntervalMs: 5 }

async function startServer(address: string): Promise<{ server: Server; address: string }> {
  const server = new Server({ protocolId, privateKey, maxClients: 4, ...fast, address })
  const { port } = await server.listen()
  return { server, address: address.startsWith('[') ? `[::1]:${port}` : `127.0.0.1:${port}` }
}
const token = (address: string, clientId: bigint) =>
  generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [address], expireSeconds: 30, timeoutSeconds: 5 })

it('never reports a negative bandwidth after the client reopens its socket for an IPv6 server', async () => {
  const v4 = await startServer('127.0.0.1:0')
  const v6 = await startServer('[::1]:0')
  const client = new Client(fast)
  try {
    await client.connect(await token(v4.address, 7n))
    for (let i = 0; i < 200; i++) client.send(new Uint8Array(1000))
    await waitFor(() => client.stats().bytes.out > 150_000, 5000, 'the payloads to leave')
    // Two readings over a second apart: the bandwidth is then measured from the old socket's high counts
    // (sooner, it is measured from 0 bytes, and no reading could come out negative).
    for (let reading = 0; reading < 2; reading++) {
      await new Promise((resolve) => setTimeout(resolve, 1100))
      expect(client.stats().bandwidth.outBps).toBeGreaterThanOrEqual(0)
    }
    ;[...v4.server.peers.values()][0]!.disconnect()
    await waitFor(() => client.state === 'disconnected', 5000, 'the server to end the connection')
    await client.connect(await token(v6.address, 8n))
    await waitFor(() => client.stats().bytes.out > 0, 5000, 'the new socket to send') // fewer bytes than the old had sent
    const after = client.stats()
    expect(after.bandwidth.inBps).toBeGreaterThanOrEqual(0)
    expect(after.bandwidth.outBps).toBeGreaterThanOrEqual(0)
  } finally {
    await client.close()
    await Promise.all([v4.server.close(), v6.server.close()])
  }
}, 15_000)
