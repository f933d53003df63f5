// close() called from inside an event handler: the events that close makes (a peer's 'disconnect', the
// client's 'disconnected' state) still come, on both engines. The fallback engine closed the socket at the
// end of the turn whose handler called close(), and what that close had just written was never delivered.
import { describe, expect, it } from 'vitest'
import { Client, Server, generateConnectToken } from '../src/index.ts'
import { type EngineKind, freeUdpPort, onEngine, waitFor } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(41)
const protocolId = 0x41n
const token = (port: number, timeoutSeconds = 5) =>
  generateConnectToken({ protocolId, privateKey, clientId: 1n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds })

describe.each(['native', 'fallback'] as EngineKind[])('close() inside a handler (%s engine)', (engine) => {
  it("server.close() in 'connect' with no disconnect packets owed: the peer's 'disconnect' still comes", async () => {
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', disconnectPackets: 0 })
    const events: string[] = []
    let closed: Promise<void> | undefined
    server.on('connect', () => {
      events.push('connect')
      closed = server.close()
    })
    server.on('disconnect', (_peer, reason) => events.push(`disconnect:${reason}`))
    server.on('state', (state) => events.push(`state:${state}`))
    const { port } = await onEngine(engine, () => server.listen())
    const client = new Client({ disconnectPackets: 0 })
    const connectToken = await token(port)
    await onEngine(engine, () => client.connect(connectToken)).catch(() => {})
    await waitFor(() => closed !== undefined, 5000, 'the connect event')
    await closed
    expect(events).toEqual(['state:running', 'connect', 'state:stopping', 'disconnect:server-closed', 'state:stopped'])
    expect(server.peers.size).toBe(0)
    await client.close()
  })

  it("client.close() in the 'state' handler of a failed attempt: the client still reaches 'disconnected'", async () => {
    const port = await freeUdpPort() // nobody answers: the request times out after the token's 1 s
    const client = new Client()
    const states: string[] = []
    let closed: Promise<void> | undefined
    client.on('state', (state) => {
      states.push(state)
      if (state === 'connection-request-timed-out') closed = client.close()
    })
    const connectToken = await token(port, 1)
    const error = await onEngine(engine, () => client.connect(connectToken)).catch((failure: unknown) => failure)
    expect(error).toMatchObject({ code: 'ERR_CONNECTION_REQUEST_TIMED_OUT' })
    await closed
    expect(states.slice(-2)).toEqual(['connection-request-timed-out', 'disconnected'])
    expect(client.state).toBe('disconnected')
  })
})
