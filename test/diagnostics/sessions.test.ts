// The session protocols' diagnostics channels, on the protocols' own test benches (fake clocks, in-memory
// transports): resumable sessions created, continued and gone; key rotations and failures; agent syncs ended
// and the manager's sessions completed; MASH device sessions opened and closed.
import { describe, expect, it } from 'vitest'
import type { ResumableSessionContinuedMessage, ResumableSessionCreatedMessage, ResumableSessionGoneMessage } from '../../src/sessions/resumable/index.ts'
import type { KeySyncFailedMessage, KeySyncRotatedMessage } from '../../src/sessions/keysync/index.ts'
import type { SyncAgentSyncEndedMessage, SyncSessionCompletedMessage } from '../../src/sessions/sync/index.ts'
import { MashDevice, type MashDeviceSession, type MashSessionCloseMessage, type MashSessionOpenMessage } from '../../src/sessions/mash/index.ts'
import { FakeClock, MemoryTransport } from '../../src/sessions/index.ts'
import { Bench, settle as settleResumable } from '../sessions/resumable-harness.ts'
import { KeySyncBench, drive } from '../sessions/keysync-harness.ts'
import { INDEX, SyncBench, metadata } from '../sessions/sync-harness.ts'
import { whileSubscribed } from './loopback.ts'

describe('volley:resumable:*', () => {
  it('publishes a session created, continued on a new connection, and gone when its client closes it', async () => {
    await whileSubscribed<ResumableSessionCreatedMessage>('volley:resumable:session-created', async (created) => {
      await whileSubscribed<ResumableSessionContinuedMessage>('volley:resumable:session-continued', async (continued) => {
        await whileSubscribed<ResumableSessionGoneMessage>('volley:resumable:session-gone', async (gone) => {
          const bench = new Bench()
          const server = bench.gateway()
          const client = bench.client()
          const link = bench.connect(client, server)
          await settleResumable()
          const session = server.session(client.sessionId!)!
          expect(created).toEqual([{ server, session }])
          expect(created[0]!.session).toMatchObject({ id: client.sessionId, clientId: 7n })
          // The connection drops; the client continues on a new one.
          link.clientSide.close()
          await settleResumable()
          bench.connect(client, server)
          await settleResumable()
          expect(continued).toEqual([{ server, session, previousGateway: undefined }])
          expect(gone).toEqual([])
          // The client ends it.
          client.close()
          await settleResumable()
          expect(gone).toEqual([{ server, session, reason: 'closed' }])
          await server.close()
        })
      })
    })
  })

  it("publishes 'expired' for a session whose heartbeats stopped", async () => {
    await whileSubscribed<ResumableSessionGoneMessage>('volley:resumable:session-gone', async (gone) => {
      const bench = new Bench()
      const server = bench.gateway()
      const client = bench.client({ keepAliveTimeoutMs: 1_000_000 })
      let silent = false
      bench.connect(client, server, 7n, (_data, from) => !(silent && from === 'a'))
      await settleResumable()
      const session = server.session(client.sessionId!)!
      silent = true
      bench.clock.advance(server.sessionTimeoutMs + 2_000)
      await settleResumable()
      expect(gone).toEqual([{ server, session, reason: 'expired' }])
      await server.close()
    })
  })
})

describe('volley:keysync:*', () => {
  it('publishes each side\'s rotation, without the key, and a failed session with its error', async () => {
    await whileSubscribed<KeySyncRotatedMessage>('volley:keysync:rotated', async (rotated) => {
      await whileSubscribed<KeySyncFailedMessage>('volley:keysync:failed', async (failed) => {
        const bench = new KeySyncBench()
        const result = await drive(bench.clock, bench.master.rotate())
        expect(rotated.map(({ role }) => role)).toEqual([bench.slave, bench.master]) // the slave switches first, on its timer
        for (const message of rotated) {
          expect(message).toEqual({ role: message.role, sessionId: result.sessionId, keyId: result.keyId, rotationAt: result.rotationAt, rolledKeyIds: [] })
          expect(Object.values(message).some((value) => value instanceof Uint8Array)).toBe(false)
        }
        expect(failed).toEqual([])
        bench.kme.failNext = new Error('connect ECONNREFUSED')
        const error = await drive(bench.clock, bench.master.rotate()).catch((thrown: unknown) => thrown)
        expect(error).toMatchObject({ code: 'ERR_KEYSYNC_KME' })
        expect(failed).toEqual([{ role: bench.master, sessionId: expect.any(String), error }])
        bench.master.close()
        bench.slave.close()
      })
    })
  })
})

describe('volley:sync:*', () => {
  it("publishes the agent's sync ended with its result, and the manager's session completed with its status", async () => {
    await whileSubscribed<SyncAgentSyncEndedMessage>('volley:sync:agent-sync-ended', async (ended) => {
      await whileSubscribed<SyncSessionCompletedMessage>('volley:sync:session-completed', async (completed) => {
        const bench = new SyncBench()
        bench.agent.persistDifference('a', 'create', INDEX, '{"a":1}')
        bench.agent.persistDifference('b', 'create', INDEX, '{"b":2}')
        const result = await bench.run(bench.agent.synchronizeModule('delta'))
        expect(result.success).toBe(true)
        expect(ended).toEqual([{ agent: bench.agent, mode: 'delta', result }])
        expect(completed).toHaveLength(1)
        expect(completed[0]).toEqual({ manager: bench.manager, session: completed[0]!.session, status: 'ok', error: undefined })
        expect(completed[0]!.session).toMatchObject({ agentId: metadata.agentid, module: 'syscollector', mode: 'module-delta', size: 2, indices: [INDEX] })
        // Nothing to send: ended all the same, and no session at the manager.
        const empty = await bench.run(bench.agent.synchronizeModule('delta'))
        expect(ended[1]).toEqual({ agent: bench.agent, mode: 'delta', result: empty })
        expect(completed).toHaveLength(1)
        await bench.agent.close()
        await bench.manager.close()
      })
    })
  })
})

describe('volley:mash:*', () => {
  it('publishes a device session as it opens and as it closes, with why', async () => {
    await whileSubscribed<MashSessionOpenMessage>('volley:mash:session-open', async (opened) => {
      await whileSubscribed<MashSessionCloseMessage>('volley:mash:session-close', async (closed) => {
        const device = new MashDevice({ endpoints: [{ id: 0, features: [{ id: 1, attributes: [{ id: 1, type: 'string', value: 'x' }] }] }], scheduler: new FakeClock(0), keepAlive: false })
        const [controllerSide, deviceSide] = MemoryTransport.pair()
        const session: MashDeviceSession = device.serve(deviceSide)
        expect(opened).toEqual([{ device, session }])
        expect(closed).toEqual([])
        const closedEvents: (Error | undefined)[] = []
        session.on('close', (error) => closedEvents.push(error))
        controllerSide.close()
        await new Promise((resolve) => setImmediate(resolve))
        expect(closed).toEqual([{ device, session, error: closedEvents[0] }])
        expect(closedEvents).toHaveLength(1)
        expect(closed[0]!.error).toMatchObject({ code: 'ERR_CONNECTION_CLOSED', message: 'The connection ended without a MASH close' })
        // Closed by the device, with a MASH close: no error.
        const [, second] = MemoryTransport.pair()
        const other = device.serve(second)
        other.close()
        await new Promise((resolve) => setImmediate(resolve))
        expect(opened).toHaveLength(2)
        expect(closed[1]).toEqual({ device, session: other, error: undefined })
      })
    })
  })
})
