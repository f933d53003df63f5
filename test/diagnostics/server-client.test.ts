// The Server's and Client's diagnostics channels: each subscribed by name, its payloads checked field by field.
import diagnosticsChannel from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import type { ClientConnectMessage, ClientDisconnectMessage, Peer, PeerConnectMessage, PeerDisconnectMessage, ServerCloseMessage, ServerListeningMessage } from '../../src/index.ts'
import { Server } from '../../src/index.ts'
import { waitFor } from '../helpers.ts'
import { connectClient, fast, privateKey, protocolId, startServer, whileSubscribed } from './loopback.ts'

describe('volley:server:listening and volley:server:close', () => {
  it('publish the server and its address once it listens, and the server once close() has completed', async () => {
    await whileSubscribed<ServerListeningMessage>('volley:server:listening', async (listening) => {
      await whileSubscribed<ServerCloseMessage>('volley:server:close', async (closed) => {
        const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', ...fast })
        const address = await server.listen()
        expect(listening).toHaveLength(1)
        expect(listening[0]!.server).toBe(server)
        expect(listening[0]!.address).toEqual(address)
        expect(listening[0]!.address).toMatchObject({ address: '127.0.0.1', family: 'IPv4' })
        expect(listening[0]!.address.port).toBeGreaterThan(0)
        expect(closed).toEqual([])
        // Published once close() has completed: the server is stopped by then.
        let stateWhenPublished: string | undefined
        const onClose = (message: unknown): void => {
          stateWhenPublished = (message as ServerCloseMessage).server.state
        }
        diagnosticsChannel.subscribe('volley:server:close', onClose)
        try {
          await server.close()
        } finally {
          diagnosticsChannel.unsubscribe('volley:server:close', onClose)
        }
        expect(closed).toEqual([{ server }])
        expect(stateWhenPublished).toBe('stopped')
        await server.close() // harmless twice, and published once
        expect(closed).toHaveLength(1)
        expect(listening).toHaveLength(1)
      })
    })
  })
})

describe('volley:server:peer-connect and volley:server:peer-disconnect', () => {
  it("publish each peer as 'connect' reports it, and its leaving with the reason, as 'disconnect' does", async () => {
    await whileSubscribed<PeerConnectMessage>('volley:server:peer-connect', async (connects) => {
      await whileSubscribed<PeerDisconnectMessage>('volley:server:peer-disconnect', async (disconnects) => {
        const { server, address } = await startServer()
        const peers: Peer[] = []
        const reasons: string[] = []
        server.on('connect', (peer) => peers.push(peer))
        server.on('disconnect', (_peer, reason) => reasons.push(reason))
        try {
          // A client that closes: 'disconnected'.
          const first = await connectClient(address, 41n)
          await waitFor(() => connects.length === 1, 3000, 'the first peer-connect')
          expect(connects[0]).toEqual({ server, peer: peers[0] })
          expect(connects[0]!.peer).toMatchObject({ clientId: 41n, address: '127.0.0.1' })
          await first.close()
          await waitFor(() => disconnects.length === 1, 3000, 'the first peer-disconnect')
          expect(disconnects[0]).toEqual({ server, peer: peers[0], reason: 'disconnected' })
          // A peer the server disconnects: 'server-disconnect'.
          const second = await connectClient(address, 42n)
          await waitFor(() => connects.length === 2, 3000, 'the second peer-connect')
          expect(connects[1]!.peer.clientId).toBe(42n)
          connects[1]!.peer.disconnect()
          await waitFor(() => disconnects.length === 2, 3000, 'the second peer-disconnect')
          expect(disconnects[1]).toEqual({ server, peer: peers[1], reason: 'server-disconnect' })
          await second.close()
          // A peer still connected as the server closes: 'server-closed'.
          const third = await connectClient(address, 43n)
          await waitFor(() => connects.length === 3, 3000, 'the third peer-connect')
          await server.close()
          expect(disconnects.map(({ peer, reason }) => [peer.clientId, reason])).toEqual([
            [41n, 'disconnected'],
            [42n, 'server-disconnect'],
            [43n, 'server-closed'],
          ])
          expect(reasons).toEqual(disconnects.map(({ reason }) => reason))
          await third.close()
        } finally {
          await server.close()
        }
      })
    })
  })
})

describe('volley:client:connect and volley:client:disconnect', () => {
  for (const channels of [undefined, [{ mode: 'reliable' as const }]]) {
    it(`publish the client and its server as it connects, and the reason its connection ended (${channels === undefined ? 'without channels' : 'with channels'})`, async () => {
      await whileSubscribed<ClientConnectMessage>('volley:client:connect', async (connects) => {
        await whileSubscribed<ClientDisconnectMessage>('volley:client:disconnect', async (disconnects) => {
          const { server, address } = await startServer(channels === undefined ? {} : { channels })
          const port = Number(address.split(':')[1])
          try {
            const clientOptions = channels === undefined ? {} : { channels }
            // Ended by the server: 'disconnected'.
            const first = await connectClient(address, 51n, clientOptions)
            expect(connects).toEqual([{ client: first, serverAddress: { address: '127.0.0.1', family: 'IPv4', port } }])
            await waitFor(() => server.peers.size === 1, 3000, 'the server to report the peer')
            const disconnected = new Promise<string>((resolve) => first.once('disconnect', resolve))
            ;[...server.peers.values()][0]!.disconnect()
            expect(await disconnected).toBe('disconnected')
            expect(disconnects).toEqual([{ client: first, reason: 'disconnected' }])
            await first.close()
            expect(disconnects).toHaveLength(1) // its connection had ended already
            // Ended by close(): 'disconnected' too, published once.
            const second = await connectClient(address, 52n, clientOptions)
            expect(connects).toHaveLength(2)
            expect(connects[1]!.client).toBe(second)
            await second.close()
            await waitFor(() => disconnects.length === 2, 3000, 'the second client-disconnect')
            expect(disconnects[1]).toEqual({ client: second, reason: 'disconnected' })
          } finally {
            await server.close()
          }
        })
      })
    })
  }

  it("publishes 'connection-timed-out' for a server that stops answering", async () => {
    await whileSubscribed<ClientDisconnectMessage>('volley:client:disconnect', async (disconnects) => {
      const { server, address } = await startServer({ disconnectPackets: 0 }) // it closes without a word
      const client = await connectClient(address, 61n, {}, 1) // the token's timeout: 1 s
      try {
        await server.close()
        await waitFor(() => disconnects.length === 1, 3000, 'the client to time out')
        expect(disconnects).toEqual([{ client, reason: 'connection-timed-out' }])
      } finally {
        await client.close()
      }
    })
  })
})
