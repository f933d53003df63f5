// The interfaces of the native netcode cores' test bindings (native/testing/netcode_binding.cc): each call
// returns what the core did as a list of events, and state() reads its fields.

export type Sent = { kind: 'send'; to: string; data: Uint8Array }
export type ServerEvent =
  | Sent
  | { kind: 'connect'; index: number; clientId: bigint; address: string; userData: Uint8Array }
  | { kind: 'disconnect'; index: number; reason: string }
  | { kind: 'payload'; index: number; data: Uint8Array }
export type ClientEvent = Sent | { kind: 'state'; state: string; server?: string } | { kind: 'payload'; data: Uint8Array }

export interface ServerCoreBinding {
  receive(from: string, packet: Uint8Array, us: number, unix: bigint): ServerEvent[]
  /** The engine's batch entry: the same as receive() for each in order. */
  receiveBatch(datagrams: readonly (readonly [string, Uint8Array])[], us: number, unix: bigint): ServerEvent[]
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
  /** µs between keep-alives to a client that hears nothing else (unset: the core's default). */
  keepAliveIntervalUs?: number
  /**
   * A stand-in for the layer above (the delivery layer and its pings): a 1-byte payload to each connected
   * client every that many µs, from layerAboveStartUs on, each next one due an interval after the last went.
   */
  layerAboveEveryUs?: number
  layerAboveStartUs?: number
}
