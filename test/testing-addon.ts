// The test bindings' addon (native/testing/, binding.gyp's volley_testing target): the protocol cores, the
// timer wheel and the network simulator, driven call by call by the core-level suites. It never ships; `npm run
// build:native` builds it beside the addon (g++ and libsodium-dev), so the suites that load it are toolchain
// suites (npm run test:toolchain).
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

export const testingAddonPath = join(import.meta.dirname, '..', 'build', 'Release', 'volley_testing.node')

/** The native netcode codec (native/testing/netcode_binding.cc): the same bytes as test/netcode/codecs/. */
export interface NativeNetcode {
  generateConnectToken(options: {
    protocolId: bigint
    privateKey: Uint8Array
    clientId: bigint
    serverAddresses: readonly string[]
    createTimestamp: bigint
    expireTimestamp: bigint
    timeoutSeconds: number
    userData: Uint8Array
    clientToServerKey: Uint8Array
    serverToClientKey: Uint8Array
    nonce: Uint8Array
  }): Uint8Array
  readConnectToken(token: Uint8Array): NativePublicToken | null
  openPrivateConnectToken(sealed: Uint8Array, protocolId: bigint, expireTimestamp: bigint, nonce: Uint8Array, key: Uint8Array): NativePrivateToken | null
  writeConnectionRequest(token: Uint8Array): Uint8Array | null
  readConnectionRequest(
    packet: Uint8Array,
    protocolId: bigint,
    privateKey: Uint8Array,
    nowSeconds: bigint,
  ): { reason: string } & Partial<NativePrivateToken & { expireTimestamp: bigint }>
  encryptPacket(type: number, sequence: bigint, body: Uint8Array, protocolId: bigint, key: Uint8Array): Uint8Array
  readEncryptedPacket(
    packet: Uint8Array,
    protocolId: bigint,
    key: Uint8Array,
    acceptMask: number,
    replay?: NativeReplayWindow,
  ): { reason: string; type?: number; sequence?: bigint; body?: Uint8Array }
  sealChallengeToken(clientId: bigint, userData: Uint8Array, sequence: bigint, key: Uint8Array): Uint8Array
  openChallengeToken(sealed: Uint8Array, sequence: bigint, key: Uint8Array): { clientId: bigint; userData: Uint8Array } | null
  ReplayWindow: new () => NativeReplayWindow
  /** A default ServerConfig's and ClientConfig's settings (native/protocol/netcode/constants.h). */
  defaults: {
    requestIntervalUs: number
    keepAliveIntervalUs: number
    clientKeepAliveIntervalUs: number
    disconnectIntervalUs: number
    clientDisconnectIntervalUs: number
    disconnectPackets: number
    clientDisconnectPackets: number
    maxClients: number
  }
}

export interface NativeReplayWindow {
  alreadyReceived(sequence: bigint): boolean
  advance(sequence: bigint): void
  resetBelow(end: bigint): void
  receivedEnd(): bigint
}

export interface NativePrivateToken {
  clientId: bigint
  timeoutSeconds: number
  serverAddresses: string[]
  clientToServerKey: Uint8Array
  serverToClientKey: Uint8Array
  userData: Uint8Array
}

export interface NativePublicToken {
  protocolId: bigint
  createTimestamp: bigint
  expireTimestamp: bigint
  nonce: Uint8Array
  privateData: Uint8Array
  timeoutSeconds: number
  serverAddresses: string[]
  clientToServerKey: Uint8Array
  serverToClientKey: Uint8Array
}

/** The engine's timer wheel (native/util/timer_wheel.h), exposed for tests against a model. Times in µs. */
export interface NativeTimerWheel {
  schedule(id: number, dueUs: number): void
  cancel(id: number): void
  dueUs(id: number): number | null
  /** The ids fired, in order. */
  advance(nowUs: number): number[]
  nextDueUs(): number | null
  readonly size: number
}

/** The test bindings' exports. The cores' own classes are typed where their suites use them. */
export interface TestingAddon {
  netcode: NativeNetcode
  TimerWheel: new (tickUs?: number, bucketBits?: number) => NativeTimerWheel
  DeliveryCore: unknown
  ReassemblyBudget: unknown
  NetworkSimulator: unknown
}

let loaded: TestingAddon | undefined

export function loadTestingAddon(): TestingAddon {
  if (loaded !== undefined) return loaded
  if (!existsSync(testingAddonPath)) {
    throw new Error(`The test bindings' addon is not built (${testingAddonPath}): run npm run build:native (it needs g++ and libsodium-dev)`)
  }
  loaded = createRequire(import.meta.url)(testingAddonPath) as TestingAddon
  return loaded
}
