// The TypeScript netcode cores (the fallback engine's) behind the interface of the native test bindings
// (native/testing/netcode_binding.cc): each call returns what the core did as a list of events, and state() reads
// the same fields, so that one suite drives either implementation, or one against the other.
import { ClientCore, type ClientCoreSink } from '../../src/protocol/netcode/client-core.ts'
import { ServerCore, type ServerCoreSink } from '../../src/protocol/netcode/server-core.ts'
import { formatServerAddress, parseServerAddress } from '../../src/protocol/netcode/server-address.ts'
import type { Sodium } from '../../src/protocol/netcode/sodium.ts'

export type Sent = { kind: 'send'; to: string; data: Uint8Array }
export type ServerEvent =
  | Sent
  | { kind: 'connect'; index: number; clientId: bigint; address: string; userData: Uint8Array }
  | { kind: 'disconnect'; index: number; reason: string }
  | { kind: 'payload'; index: number; data: Uint8Array }
export type ClientEvent = Sent | { kind: 'state'; state: string; server?: string } | { kind: 'payload'; data: Uint8Array }

export interface ServerCoreBinding {
  receive(from: string, packet: Uint8Array, us: number, unix: bigint): ServerEvent[]
  /** Native only: the engine's batch entry, the same as receive() for each in order. */
  receiveBatch?(datagrams: readonly (readonly [string, Uint8Array])[], us: number, unix: bigint): ServerEvent[]
  update(us: number, unix: bigint): ServerEvent[]
  sendPayload(index: number, data: Uint8Array, us: number, unix: bigint): ServerEvent[] & { accepted: boolean }
  disconnect(index: number, us: number, unix: bigint): ServerEvent[]
  stop(us: number, unix: bigint): ServerEvent[]
  /** The key becomes current; the one it replaces is accepted graceUs more. */
  rotatePrivateKey(key: Uint8Array, graceUs: number, us: number, unix: bigint): ServerEvent[]
  state(): {
    connectedClients: number
    pendingHandshakes: number
    stopped: boolean
    nextGlobalSequence: bigint
    nextDeadlineUs: number | null
    privateKeyCount: number
    counters: Record<string, number>
  }
}

export interface ClientCoreBinding {
  connect(token: Uint8Array, us: number): ClientEvent[]
  receive(from: string, packet: Uint8Array, us: number): ClientEvent[]
  update(us: number): ClientEvent[]
  sendPayload(data: Uint8Array, us: number): ClientEvent[] & { accepted: boolean }
  disconnect(us: number): ClientEvent[]
  state(): { state: string; clientIndex: number; maxClients: number; pendingDisconnects: boolean; nextDeadlineUs: number | null; counters: Record<string, number> }
}

/** The native bindings' options for a server core. */
export interface ServerCoreOptions {
  protocolId: bigint
  privateKey: Uint8Array
  /** Keys replaced before the core started, newest first, each accepted until its untilUs (the fake clock's µs). */
  previousKeys?: { key: Uint8Array; untilUs: number }[]
  publicAddress: string
  maxClients: number
  challengeKey: Uint8Array
  /** Where the challenge sequence starts (the engine: the wall clock in µs at each start). */
  challengeSequenceStart?: bigint
  /**
   * A stand-in for the layer above (the delivery layer and its pings): a 1-byte payload to each connected
   * client every that many µs, from layerAboveStartUs on, each next one due an interval after the last went.
   */
  layerAboveEveryUs?: number
  layerAboveStartUs?: number
}

/** Runs calls on a core whose sink appends to a log, and returns each call's log. */
class EventLog<Event> {
  events: Event[] = []
  run(action: () => void): Event[] {
    this.events = []
    action()
    return this.events
  }
  withAccepted(action: () => boolean): Event[] & { accepted: boolean } {
    let accepted = false
    const events = this.run(() => {
      accepted = action()
    })
    return Object.assign(events, { accepted })
  }
}

const deadline = (us: number): number | null => (Number.isFinite(us) ? us : null)

export function typescriptServerCore(sodium: Sodium, options: ServerCoreOptions): ServerCoreBinding {
  const log = new EventLog<ServerEvent>()
  const every = options.layerAboveEveryUs
  const aboveNext = new Array<number>(options.maxClients).fill(options.layerAboveStartUs ?? 0)
  const sink: ServerCoreSink = {
    sendPacket: (to, data) => log.events.push({ kind: 'send', to, data }),
    connected: (index, clientId, address, userData) => log.events.push({ kind: 'connect', index, clientId, address, userData }),
    disconnected: (index, reason) => log.events.push({ kind: 'disconnect', index, reason }),
    payload: (index, data) => log.events.push({ kind: 'payload', index, data }),
    ...(every !== undefined && {
      peerDeadlineUs: (index) => aboveNext[index]!,
      peerTimer: (index, now) => {
        if (now.monotonicUs < aboveNext[index]!) return
        aboveNext[index] = now.monotonicUs + every
        core.sendPayload(index, new Uint8Array(1), now)
      },
    }),
  }
  const config = {
    protocolId: options.protocolId,
    privateKey: options.privateKey,
    previousKeys: options.previousKeys,
    publicAddress: parseServerAddress(options.publicAddress),
    maxClients: options.maxClients,
    challengeSequenceStart: options.challengeSequenceStart,
  }
  const core = new ServerCore(sodium, config, options.challengeKey, sink)
  const clock = (us: number, unix: bigint) => ({ monotonicUs: us, unixSeconds: unix })
  return {
    receive: (from, packet, us, unix) => log.run(() => core.receive(from, packet, clock(us, unix))),
    update: (us, unix) => log.run(() => core.update(clock(us, unix))),
    sendPayload: (index, data, us, unix) => log.withAccepted(() => core.sendPayload(index, data, clock(us, unix))),
    disconnect: (index, us, unix) => log.run(() => core.disconnect(index, clock(us, unix))),
    stop: (us, unix) => log.run(() => core.stop(clock(us, unix))),
    rotatePrivateKey: (key, graceUs, us, unix) => log.run(() => core.rotatePrivateKey(key, graceUs, clock(us, unix))),
    state: () => ({
      connectedClients: core.connectedClients,
      pendingHandshakes: core.pendingHandshakes,
      stopped: core.stopped,
      nextGlobalSequence: core.nextGlobalSequence,
      nextDeadlineUs: deadline(core.nextDeadlineUs()),
      privateKeyCount: core.privateKeyCount,
      counters: { ...core.counters },
    }),
  }
}

export function typescriptClientCore(sodium: Sodium): ClientCoreBinding {
  const log = new EventLog<ClientEvent>()
  const sink: ClientCoreSink = {
    sendPacket: (to, data) => log.events.push({ kind: 'send', to, data }),
    stateChanged: (state, server) => log.events.push({ kind: 'state', state, ...(server !== undefined && { server: formatServerAddress(server) }) }),
    payload: (data) => log.events.push({ kind: 'payload', data }),
  }
  const core = new ClientCore(sodium, {}, sink)
  return {
    connect: (token, us) => log.run(() => core.connect(token, us)),
    receive: (from, packet, us) => log.run(() => core.receive(from, packet, us)),
    update: (us) => log.run(() => core.update(us)),
    sendPayload: (data, us) => log.withAccepted(() => core.sendPayload(data, us)),
    disconnect: (us) => log.run(() => core.disconnect(us)),
    state: () => ({
      state: core.state,
      clientIndex: core.clientIndex,
      maxClients: core.maxClients,
      pendingDisconnects: core.hasPendingDisconnects,
      nextDeadlineUs: deadline(core.nextDeadlineUs()),
      counters: { ...core.counters },
    }),
  }
}
