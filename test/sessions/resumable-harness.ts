// A test bench for resumable sessions: gateways (SessionServers) and clients on in-memory connections,
// all on one FakeClock whose wall clock starts at the fixtures' epoch.
import { FakeClock } from '../../src/sessions/timers.ts'
import { MemoryTransport } from '../../src/sessions/transport.ts'
import { SessionClient, type SessionClientOptions } from '../../src/sessions/resumable/client.ts'
import { SessionServer, type SessionServerOptions } from '../../src/sessions/resumable/server.ts'
import { MemorySessionStore, type SessionStore } from '../../src/sessions/resumable/store.ts'
import { decodeClientMessage, decodeServerMessage } from '../../src/sessions/resumable/wire.ts'

export const EPOCH = 1705680000000

/** Lets the store's promises (a microtask each) and what follows them settle. */
export async function settle(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve))
}

export const text = (value: string): Uint8Array => new TextEncoder().encode(value)
export const read = (data: Uint8Array): string => new TextDecoder().decode(data)

export type Filter = (data: Uint8Array, from: 'a' | 'b') => boolean

/** One clock, one store, gateways and clients. Requests are counted per session and id, to prove exactly-once. */
export class Bench {
  readonly clock = new FakeClock()
  readonly wallClock = (): number => EPOCH + this.clock.now()
  readonly applied = new Map<string, number>()
  readonly ended: Array<[sessionId: string, reason: string, gateway: string]> = []
  constructor(readonly store: SessionStore = new MemorySessionStore()) {}

  gateway(options: Partial<SessionServerOptions> = {}): SessionServer {
    const server: SessionServer = new SessionServer({
      scheduler: this.clock,
      wallClock: this.wallClock,
      store: this.store,
      onRequest: (payload, { session, requestId }) => {
        const key = `${session.id}#${requestId}`
        this.applied.set(key, (this.applied.get(key) ?? 0) + 1)
        return text(`${read(payload)}:done`)
      },
      onSessionEnd: (session, reason) => this.ended.push([session.id, reason, server.gatewayId]),
      ...options,
    })
    return server
  }

  client(options: Partial<SessionClientOptions> = {}): SessionClient {
    return new SessionClient({ capabilities: { app: 'test' }, scheduler: this.clock, wallClock: this.wallClock, ...options })
  }

  /** A new connection between a client and a gateway; clientId is the netcode identity the gateway sees. */
  connect(client: SessionClient, server: SessionServer, clientId: bigint | undefined = 7n, filter?: Filter) {
    const [clientSide, serverSide] = MemoryTransport.pair(filter === undefined ? {} : { filter })
    server.accept(serverSide, { clientId })
    client.attach(clientSide)
    return { clientSide, serverSide }
  }
}

/** A filter that drops what `drop` says, and logs every message's type each way. */
export function loggingFilter(drop: (type: string, from: 'client' | 'server') => boolean = () => false) {
  const log: string[] = []
  const filter: Filter = (data, from) => {
    const side = from === 'a' ? 'client' : 'server'
    const type = side === 'client' ? decodeClientMessage(data).type : decodeServerMessage(data).type
    log.push(`${side}:${type}`)
    return !drop(type, side)
  }
  return { log, filter }
}
