// A netcode 1.02 server on the native engine: the connection protocol runs on the I/O thread; this class
// turns its records into typed events and its peers into Peer objects. Where the addon cannot load, the
// fallback engine (engine/fallback/engine.ts) writes the same records on the JavaScript thread.
import { EventEmitter } from 'node:events'
import type { NativeSocketInfo, NativeSocketOptions } from '../engine/native/addon.ts'
import { checkFallbackSupports, fallbackReason } from '../engine/choose.ts'
import { type EngineClient, EngineHold, type ProtocolEngine, type SlabView, engineFor, monotonicUs } from '../engine/engine.ts'
import { sharedFallbackEngine } from '../engine/fallback/engine.ts'
import { DeliveryClock } from '../protocol/delivery/delivery-clock.ts'
import {
  BandwidthWindow,
  type DeliveryOptions,
  type DeliverySettings,
  type RemoteChannels,
  SendQueue,
  deliveryOptionNames,
  type SendOptions,
  defaultReassemblyBudget,
  deliveryFields,
  deliverySettings,
  describeChannelsMismatch,
  reassemblyBudgetFloor,
  reliableStallMs,
  readLinkStats,
  readRemoteChannels,
} from './channels.ts'
import {
  DisconnectCode,
  LinkField,
  Operation,
  PeerRecordKind,
  ProtocolControl,
  ProtocolCounter,
  ServerCounter,
  commonProtocolDrops,
  layout,
  linkFields,
  maxClientsLimit,
  peerSlotScale,
  protocolStatsFields,
} from '../engine/layout.ts'
import { type NetworkSimulatorOption, type SimulatedNetworkStats, networkSimulatorFields, simulatedNetworkStats } from './network-simulator.ts'
import { type Settled, type SocketSettings, booleanOption, checkOptions, integerOption, numberOption, socketOptionNames, socketSettings, uint64Option } from '../util/options.ts'
import { VolleyError, VolleyTypeError, describe, fromNativeError, surfaceLater, systemError } from '../util/errors.ts'
import { LifetimeSignal } from '../util/lifetime-signal.ts'
import { type ServerAddress, formatServerAddress, parseServerAddressPortZero, unreachableServerAddress, zoneRefused } from '../protocol/netcode/server-address.ts'
import { PeerCounterField, netcodeDefaults, sizes } from '../protocol/netcode/constants.ts'
import { PrivateKeys } from '../protocol/netcode/private-keys.ts'
import { secretKeyOption } from '../protocol/netcode/connect-token.ts'
import { Peer, peerConstruction, type PeerHost, type PeerStats } from './peer.ts'
import { type PacketCounts, type PeerDrops, copyFinalReadings, decodeFinalReadings, forEachPeerRecord, readPeerDrops, recordAddress } from '../engine/peer-records.ts'
import { type AddressInfo, addressText } from '../util/ip.ts'
import { SlotTable } from '../util/slot-table.ts'
import { type GuardedLogger, type VolleyLogger, loggerOption } from '../util/logger.ts'
import {
  DropsSampler,
  type PeerConnectMessage,
  type PeerDisconnectMessage,
  type ServerCloseMessage,
  type ServerListeningMessage,
  peerConnectChannel,
  peerDisconnectChannel,
  serverCloseChannel,
  serverListeningChannel,
} from './diagnostics.ts'

/** A Server's options: protocolId, privateKey and address are required. */
export interface ServerOptions extends DeliveryOptions, NetworkSimulatorOption {
  /** Unique to your application: tokens of any other protocol id are refused. */
  protocolId: bigint | number
  /** The 32-byte key shared with the web backend that makes connect tokens. */
  privateKey: Uint8Array
  /** 'a.b.c.d:port' or '[v6]:port' to listen on; tokens must list it (or publicAddress). */
  address: string
  /** The address tokens list, when clients reach the server at another one than it binds (NAT, 0.0.0.0); port 0: the port bound. */
  publicAddress?: string | undefined
  /** Client slots, 1 to 1,048,576 (default 256). */
  maxClients?: number | undefined
  /**
   * Keep-alive period when nothing else was sent, ms (default 100: 10 Hz). Raise it (fewer keep-alives) for
   * huge peer counts. With channels, pings also keep the connection alive, and a keep-alive waits longer:
   * half the smaller of this and pingIntervalMs more.
   */
  // With channels the server's pings answer the client's, which come about one period apart: a keep-alive
  // sent on the period would race each of them.
  keepAliveIntervalMs?: number | undefined
  /**
   * With channels: the memory the peers' messages in reassembly may take between them, bytes (default 64 KiB
   * per client slot, from 64 MiB to 512 MiB, at least maxMessageBytes + 1 MiB, the least it takes). Each
   * message takes its length from its first fragment on (its memory is made only as its fragments come);
   * when a new one does not fit, the connection that has sent nothing new for the longest is evicted if that
   * was a second ago or more (its reliable messages lost, it ends with 'reassembly-stalled'), else the new
   * message waits (its sender sends it again). See docs/security.md.
   */
  reassemblyBudgetBytes?: number | undefined
  /** Redundant disconnect packets (default 10, sent at disconnectIntervalMs, default 100). */
  disconnectPackets?: number | undefined
  disconnectIntervalMs?: number | undefined
  /**
   * SO_REUSEPORT: servers in other worker threads or processes (of the same user) may listen on the same
   * address (a fixed port), and the kernel shares the clients out among them by address, each client's
   * datagrams always to the same server, so each is a shard with a core of its own (default false). What
   * stays per shard, and why their number must not change while clients are connected: docs/connections.md.
   */
  reusePort?: boolean | undefined
  /** Socket options, as for createDatagramSocket. */
  recvBufferSize?: number | undefined
  sendBufferSize?: number | undefined
  batchSize?: number | undefined
  coalesceUs?: number | undefined
  engine?: 'shared' | 'dedicated' | undefined
  /**
   * Closes the server when it aborts, as close() does (a signal aborted already: the server starts closed,
   * and listen() fails with ERR_SERVER_CLOSED, the signal's reason the cause).
   */
  signal?: AbortSignal | undefined
  /**
   * A pino-compatible logger (docs/diagnostics.md): info when the server listens and closes, debug when a peer
   * connects or disconnects, error for a socket error. Never payloads or keys.
   */
  logger?: VolleyLogger | undefined
}

const serverOptionNames: ReadonlySet<string> = new Set([
  'protocolId',
  'privateKey',
  'address',
  'publicAddress',
  'maxClients',
  'reassemblyBudgetBytes',
  'keepAliveIntervalMs',
  'disconnectPackets',
  'disconnectIntervalMs',
  'batchSize',
  'networkSimulator',
  'reusePort',
  'signal',
  'logger',
  ...socketOptionNames,
  ...deliveryOptionNames,
])

/** rotatePrivateKey()'s options. */
export interface RotatePrivateKeyOptions {
  /**
   * How long the key being replaced is still accepted, ms (default 60,000; 0: refused at once). See
   * rotatePrivateKey().
   */
  graceMs?: number | undefined
}

const rotateOptionNames: ReadonlySet<string> = new Set(['graceMs'])
/**
 * The default grace of a replaced private key: a connect token minted under it just before the rotation is used
 * for connection requests until it expires, expireSeconds after it was minted, and the tokens docs/connections.md
 * recommends live 30 to 60 s.
 */
const defaultKeyGraceMs = 60_000
/** The longest grace, about 24.8 days (as setTimeout's longest delay): a key kept for ever is no rotation. */
const maxKeyGraceMs = 2 ** 31 - 1

/** A server's state: 'stopped' (new, or closed), 'running' (from listen()), 'stopping' (in close()). */
export type ServerState = 'stopped' | 'running' | 'stopping'
/**
 * Why a peer left: it stopped answering; it disconnected; peer.disconnect(); server.close(); its channels do
 * not work with the server's (a channel both have in two modes, or a client without channels sending); it
 * started a reliable message and sent nothing new of it for 20 s, or for a second while other peers'
 * messages needed the room (reassemblyBudgetBytes).
 */
export type DisconnectReason = 'timeout' | 'disconnected' | 'server-disconnect' | 'server-closed' | 'channels-mismatch' | 'reassembly-stalled'

/** What server.stats() returns: counters since listen(), and the state of the connected peers. */
export interface ServerStats {
  connectedClients: number
  packets: { in: number; out: number }
  bytes: { in: number; out: number }
  /**
   * Datagrams dropped, by cause: received ones refused by a check (never answered); requestsThrottled,
   * connection requests ignored because their address was sent a challenge less than 100 ms before (a
   * client resends at 10 Hz); receiveBufferFull, the ones the kernel dropped because the socket's receive
   * buffer was full (the server read too slowly); sendBufferFull, the server's own that the kernel would not
   * take (its send buffer was full).
   */
  drops: {
    malformed: number
    /** Seen already, within the replay window: a duplicate (the network's, or a simulated one) or a replay. */
    replayed: number
    /**
     * Older than the replay window (256 packets behind the newest): delayed or reordered that far (a
     * simulator's jitter at bulk rates does it), or a replay. The delivery layer counts them as lost.
     */
    tooOld: number
    decryptionFailed: number
    unknownAddress: number
    /** Connection requests of another netcode version or protocol id. */
    wrongProtocol: number
    /** Connection requests whose token had expired by the server's clock (a token server whose clock runs behind this one's, or a token kept too long). */
    tokenExpired: number
    /**
     * Connection requests whose token failed a check of its own (not sealed with the private key, not listing this server, for a
     * client connected already, or used before from another address), and connection responses whose challenge token was not one their handshake was sent, or is for a client connected already.
     */
    tokenRefused: number
    requestsThrottled: number
    receiveBufferFull: number
    sendBufferFull: number
  }
  /** Datagrams the kernel refused to send with an error (an unreachable network, for one). */
  errors: { send: number }
  /** What the networkSimulator option did to this socket's datagrams; null without one. */
  networkSimulator: SimulatedNetworkStats | null
  /** Valid requests answered with "denied": the server was full. */
  denied: number
  /**
   * The private keys whose tokens are accepted now (privateKeyCount), and the connection requests whose token
   * opened under a key replaced by rotatePrivateKey() and still in its grace: each request counts (a client
   * resends its request until it is answered). Once this stops growing after a rotation, no client uses the old
   * key any more.
   */
  privateKeys: { accepted: number; previousKeyRequests: number }
  /**
   * Handshakes in progress (a request answered, its response not yet in), and those given up: replaced, for
   * a newer request of the same client id from another address (one pending handshake per client id, the
   * newest); evicted, the oldest, to make room for a new one when as many were pending as the server holds
   * (4 × maxClients, at least 1,024).
   */
  handshakes: { pending: number; replaced: number; evicted: number }
  /**
   * With channels: the reassembly budget (reassemblyBudgetBytes) and what the peers' messages in reassembly
   * take of it now; peers evicted to make room (those that had sent nothing new for a second); messages that
   * waited for want of room (their senders send them again); peers disconnected with 'reassembly-stalled'.
   */
  reassembly: { budgetBytes: number; usedBytes: number; evictions: number; refusals: number; stalled: number } | null
  /**
   * With channels: clients disconnected before 'connect' because their channels do not work with the
   * server's (a channel in two modes, no channels and a payload, an older delivery format). Never reported
   * as peers.
   */
  channelsMismatch: number
  /**
   * With channels: clients disconnected before 'connect' because they announced no channels within
   * max(2 s, 4 ping intervals) of their handshake: clients without channels that stay silent, or with
   * channels whose packets were all lost meanwhile. Never reported as peers.
   */
  channelsUnannounced: number
  /**
   * With channels: the delivery layer over every connected peer (RTT and jitter averaged over the peers
   * measured, the least minimum and the most maximum, the longest queue delay, the rest summed), and the
   * server socket's bandwidth (every datagram, handshakes included, as `bytes` counts them).
   */
  link: {
    rtt: { smoothedMs: number; minMs: number; maxMs: number }
    jitterMs: number
    lossPercent: number
    bandwidth: { inBps: number; outBps: number }
    resends: number
    queue: { depth: number; bytes: number; delayMs: number }
    dropped: number
  } | null
  /**
   * SO_RCVBUF and SO_SNDBUF as the kernel reads them back (twice what it granted, as node:dgram's
   * getRecvBufferSize()); 0 before listen(). Less than twice recvBufferSize: the kernel capped it.
   */
  recvBufferSize: number
  sendBufferSize: number
}

/** The events a Server emits, with their listeners' arguments. */
export interface ServerEvents {
  /**
   * A client completed its handshake. With channels, once its own channels have come too (a round trip
   * later) and agree with the server's: peer.remoteChannels is set, and send() checks against it.
   */
  connect: [peer: Peer]
  /** data is a view valid during the callback (copy it to keep it); channel: its index in the channels option. */
  message: [peer: Peer, data: Uint8Array, channel: number]
  /** A peer left, for `reason`; its send() throws ERR_PEER_DISCONNECTED. */
  disconnect: [peer: Peer, reason: DisconnectReason]
  /** The state changed. */
  state: [state: ServerState]
  /** With a peer: that peer's send queue has room again; without: the engine's send queue has. */
  drain: [peer?: Peer]
  /** A socket error (a failed send or receive). */
  error: [error: Error]
}

// A disconnect record's code as a reason; settingsLate ends only peers not yet announced.
const disconnectReasons: Record<number, DisconnectReason> = {
  [DisconnectCode.timeout]: 'timeout',
  [DisconnectCode.disconnected]: 'disconnected',
  [DisconnectCode.serverDisconnect]: 'server-disconnect',
  [DisconnectCode.serverClosed]: 'server-closed',
  [DisconnectCode.channelsMismatch]: 'channels-mismatch',
  [DisconnectCode.reassemblyStalled]: 'reassembly-stalled',
}

/**
 * The peers' copies of their user data, carved from buffers shared by 16 peers. A buffer of its own for
 * each copy (slice) cost an ArrayBuffer with its own backing store per handshake: 1.2–2.9 µs with the
 * garbage collection and page faults it brings (bench/micro/user-data-copies.ts), and about 850 B more RSS
 * per idle peer. A region is never handed out twice, so a Peer kept after it left still reads its own
 * bytes; a buffer goes when no peer made from it is referenced, and holds at most 4 KiB for one that is.
 * The pools stay inside Peer: what peer.userData hands out is a copy of its own, made when first read, so
 * that nothing an application does to it (a detach, by a BYOB read or transfer()) reaches another peer's
 * bytes. Exported for that benchmark, not by the package.
 */
export class UserDataCopies {
  static readonly perBuffer = 16
  #pool = new Uint8Array(0)
  #next = UserDataCopies.perBuffer

  /** The buffer the last copy went into (shared by perBuffer peers' copies; never handed to users). */
  get pool(): Uint8Array {
    return this.#pool
  }

  /**
   * Copies 256 bytes of user data into the pool and returns where they start: a peer keeps the pool and the
   * offset, two fields rather than a view of its own (96 bytes a peer that every young-generation
   * collection copies while a server fills).
   */
  copy(from: Uint8Array, at: number): number {
    if (this.#next === UserDataCopies.perBuffer) {
      this.#pool = new Uint8Array(sizes.userData * UserDataCopies.perBuffer)
      this.#next = 0
    }
    const offset = this.#next++ * sizes.userData
    this.#pool.set(from.subarray(at, at + sizes.userData), offset)
    return offset
  }
}

/**
 * The key of a server's method that reads each connected peer's RTT and loss, for volley/metrics: the package
 * does not export it (as Peer's peerConstruction), so the method is none a user of the server calls.
 */
export const peerLinkSamples: unique symbol = Symbol('volley.Server.peerLinkSamples')

/**
 * A server: accepts clients that hold a connect token made with its private key, and exchanges messages
 * with each as a {@link Peer}. listen() starts it, close() stops it for good. Events: {@link ServerEvents}.
 */
export class Server extends EventEmitter<ServerEvents> {
  readonly #options: Settled<Pick<ServerOptions, 'maxClients' | 'keepAliveIntervalMs' | 'disconnectPackets' | 'disconnectIntervalMs' | 'reassemblyBudgetBytes'>> &
    Omit<ServerOptions, 'privateKey'>
  /**
   * The private keys, current first, with the grace of those replaced (on CLOCK_MONOTONIC, the engines' clock):
   * copies the server owns, given to the engine at listen() (a rotation while it runs goes to the engine too, and
   * is kept here as well), wiped once the server is closed.
   */
  readonly #privateKeys: PrivateKeys
  /** When this side's copy of a replaced key is wiped (#scheduleKeyExpiry). */
  #keyExpiry: NodeJS.Timeout | undefined
  /** Rotations made while the fallback engine was opening the socket: given to it once it is open. */
  #rotationsWhileOpening: { key: Uint8Array; untilUs: number }[] = []
  readonly #socket: SocketSettings & { batchSize: number }
  readonly #protocolId: bigint
  readonly #bind: { host: string; port: number; family: 4 | 6; reusePort: boolean }
  // By slot index, for the lookup each received message makes: a Map's hashed lookup was 3 % of the
  // server's CPU per message (bench:connections' payload phase).
  readonly #peers = new SlotTable<Peer>()
  readonly #counters = new Float64Array(protocolStatsFields)
  /** Every slot's packet and byte counters, live (PeerCounterField), read with no native call; null until listen(). */
  #slotCounters: Float64Array | null = null
  readonly #delivery: DeliverySettings | null
  readonly #simulator: ReturnType<typeof networkSimulatorFields>
  #links: Float64Array | null = null
  // Per connected peer with channels; without, one stateless queue serves every peer.
  readonly #queues = new SlotTable<SendQueue>()
  /** Peers whose send the engine's full queue refused: their drained() waits for the engine's drain. */
  readonly #engineBlocked = new Set<Peer>()
  #rawQueue: SendQueue | null = null
  readonly #readings = new SlotTable<BandwidthWindow>()
  /** The server socket's bandwidth (stats().link), from listen() on. */
  #bandwidth = new BandwidthWindow()
  /**
   * What each peer's client announced of its channels (with channels only): beside the Peer rather than in
   * it, so that a server without channels keeps nothing more per peer; weak, kept as long as the Peer is.
   */
  readonly #remoteChannels = new WeakMap<Peer, RemoteChannels>()
  /**
   * With channels: peers whose client has not announced its channels yet (they come with its first packet,
   * a round trip after the handshake). 'connect' waits for them, so that every peer it reports has its
   * channels known and agreeing; a client whose channels disagree, or that announces none within the
   * engine's wait, is disconnected unannounced and counted (stats()), as a denied one is.
   */
  readonly #unannounced = new SlotTable<Peer>()
  #channelsMismatch = 0
  #channelsUnannounced = 0
  /** Peers disconnected with 'reassembly-stalled' (announced or not). */
  #reassemblyStalled = 0
  /** What a Peer asks of its server: private to the two, not methods anyone holding the server can call. */
  readonly #peerHost: PeerHost = {
    sendToPeer: (peer, data, options) => this.#sendToPeer(peer, data, options),
    disconnectPeer: (peer) => this.#disconnectPeer(peer),
    watchFlush: (peer) => {
      if (this.#state === 'running') (this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.watchFlush, peer.tag)
    },
    peerStats: (peer) => this.#peerStats(peer),
    timeMs: () => this.#clock.local(monotonicUs()) / 1000,
    bufferedAmount: (peer) => this.#bufferedAmount(peer),
    remoteChannels: (peer) => this.#remoteChannels.get(peer) ?? null,
  }
  readonly #userData = new UserDataCopies()
  /** By slot: the clients that left it (disconnect records), mod 4096; with the slot, a peer's tag. */
  readonly #slotEnds: Uint16Array
  #engine: ProtocolEngine | undefined
  /** The fallback engine is binding the socket (listen() awaits it). */
  #opening = false
  #id = 0
  #state: ServerState = 'stopped'
  /** Where listen() bound the socket. */
  #local: AddressInfo | undefined
  #bufferSizes = { recv: 0, send: 0 }
  /** Keeps the process alive while running or stopping, unless unref()ed. */
  readonly #hold = new EngineHold()
  /** What peer.time() reads: the clock of the delivery layer, skewed as the network simulator says. */
  #clock = new DeliveryClock()
  /** What tokens list, formatServerAddress's text (port 0: the port bound). */
  readonly #publicAddress: string
  #closed: Promise<void> | undefined
  #resolveClosed: (() => void) | undefined
  readonly #client: EngineClient
  readonly #lifetime: LifetimeSignal
  readonly #log: GuardedLogger | undefined
  /** Publishes the drops on volley:server:drops while the server listens. */
  readonly #dropsSampler = new DropsSampler(this, () => this.#readDrops())

  constructor(options: ServerOptions) {
    super()
    checkOptions('"options" argument', options, serverOptionNames)
    this.#lifetime = new LifetimeSignal(options.signal)
    this.#log = loggerOption(options.logger)
    this.#protocolId = uint64Option('protocolId', options.protocolId)
    const privateKey = secretKeyOption('privateKey', options.privateKey)
    this.#privateKeys = new PrivateKeys(privateKey)
    privateKey.fill(0) // the set holds its own copy
    const bound = serverAddressOption('address', options.address)
    // Port 0 binds any free port (and then stands for it in the public address too), however it is written ('00').
    const anyPort = bound.port === 0
    const published = options.publicAddress === undefined ? undefined : serverAddressOption('publicAddress', options.publicAddress)
    // The engines take it as text: the canonical form, whose port 0 they replace with the port bound.
    this.#publicAddress = formatServerAddress(published ?? bound)
    // Tokens list the public address (by default the bound one), and the server takes only requests whose token lists it.
    const unreachable = unreachableServerAddress(published ?? bound)
    if (unreachable !== undefined) {
      throw new VolleyTypeError(
        'ERR_INVALID_ARG_VALUE',
        published === undefined
          ? `The "address" option '${options.address as string}' is ${unreachable}, which clients cannot send to: give the "publicAddress" option too, the address that connect tokens list and clients reach the server at`
          : `The "publicAddress" option must be an address clients can send to; '${options.publicAddress as string}' is ${unreachable}`,
      )
    }
    const host = formatServerAddress(bound).replace(/:\d+$/, '').replace(/^\[|\]$/g, '')
    const reusePort = booleanOption('reusePort', options.reusePort)
    // For port 0 the kernel may pick a port that sockets of this user already share: the server would join
    // that group and take some of its clients.
    if (reusePort && anyPort) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'The "reusePort" option needs a fixed port in "address", not port 0')
    this.#bind = { host, port: anyPort ? 0 : bound.port, family: bound.family, reusePort }
    this.#socket = { ...socketSettings(options, 4 << 20), batchSize: integerOption('batchSize', options.batchSize, 64, 1, layout.maxBatchSize) }
    this.#delivery = deliverySettings(options)
    if (this.#delivery === null) this.#rawQueue = new SendQueue(null, () => null, 0)
    if (this.#delivery === null && options.reassemblyBudgetBytes !== undefined) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'The "reassemblyBudgetBytes" option needs the "channels" option')
    }
    this.#simulator = networkSimulatorFields(options.networkSimulator)
    const { privateKey: _callers, ...rest } = options // the caller's array: not kept (the set holds a copy)
    this.#options = {
      ...rest,
      maxClients: integerOption('maxClients', options.maxClients, netcodeDefaults.maxClients, 1, maxClientsLimit),
      reassemblyBudgetBytes: 0,
      keepAliveIntervalMs: numberOption('keepAliveIntervalMs', options.keepAliveIntervalMs, netcodeDefaults.keepAliveIntervalMs, 1, 60_000, ' ms'),
      disconnectPackets: integerOption('disconnectPackets', options.disconnectPackets, netcodeDefaults.disconnectPackets, 0, 100),
      disconnectIntervalMs: numberOption('disconnectIntervalMs', options.disconnectIntervalMs, netcodeDefaults.disconnectIntervalMs, 1, 60_000, ' ms'),
    }
    if (this.#delivery !== null) {
      const { maxMessageBytes } = this.#delivery
      const fallback = defaultReassemblyBudget(this.#options.maxClients, maxMessageBytes)
      this.#options.reassemblyBudgetBytes = integerOption('reassemblyBudgetBytes', options.reassemblyBudgetBytes, fallback, reassemblyBudgetFloor(maxMessageBytes), Number.MAX_SAFE_INTEGER)
    }
    this.#slotEnds = new Uint16Array(this.#options.maxClients)
    this.#client = {
      onBatch: (slab, start, count) => this.#onBatch(slab, start, count),
      onError: (errno, count, operation) => this.#onError(systemError(errno, operation === Operation.send ? 'sendmmsg' : 'recvmmsg', { count })),
      onClosed: () => this.#onClosed(),
      onDrain: () => {
        if (this.#state !== 'running') return // nothing more is sent: close() ends the waiters
        for (const peer of this.#engineBlocked) peer.notifyDrain()
        this.#engineBlocked.clear()
        this.emit('drain')
      },
    }
    this.#lifetime.watch(() => void this.close())
  }

  /** 'stopped', 'running' or 'stopping'; each change is a 'state' event. */
  get state(): ServerState {
    return this.#state
  }

  /** The connected peers, by client index, in index order (a live view, as a Map's iterators are). */
  get peers(): ReadonlyMap<number, Peer> {
    return this.#peers.view
  }

  /**
   * Binds the socket and starts serving ('stopped' to 'running'). Resolves with address(). Throws
   * ERR_SERVER_RUNNING unless the server is stopped, and ERR_SERVER_CLOSED once close() was called.
   */
  async listen(): Promise<AddressInfo> {
    if (this.#closed !== undefined) throw this.#lifetime.closedError('ERR_SERVER_CLOSED', 'The server was closed; make a new Server to listen again')
    if (this.#state !== 'stopped' || this.#opening) throw new VolleyError('ERR_SERVER_RUNNING', `listen() needs a stopped server; it is ${this.#opening ? 'starting' : this.#state}`)
    const options: NativeSocketOptions = {
      ipv6: this.#bind.family === 6,
      ipv6Only: false,
      reuseAddress: false,
      reusePort: this.#bind.reusePort,
      receiveBufferSize: this.#socket.recvBufferSize,
      sendBufferSize: this.#socket.sendBufferSize,
      address: this.#bind.host,
      port: this.#bind.port,
      batchSize: this.#socket.batchSize,
      coalesceUs: this.#socket.coalesceUs,
      protocol: {
        kind: 'server',
        protocolId: this.#protocolId,
        ...this.#keysForEngine(),
        publicAddress: this.#publicAddress, // port 0: the port the socket binds
        maxClients: this.#options.maxClients,
        keepAliveIntervalUs: Math.round(this.#options.keepAliveIntervalMs * 1000),
        disconnectIntervalUs: Math.round(this.#options.disconnectIntervalMs * 1000),
        disconnectPackets: this.#options.disconnectPackets,
        ...deliveryFields(this.#delivery),
        ...(this.#delivery === null ? {} : { reliableStallUs: reliableStallMs * 1000, reassemblyBudgetBytes: this.#options.reassemblyBudgetBytes }),
        ...this.#simulator,
      },
    }
    let engine: ProtocolEngine
    let info: NativeSocketInfo
    try {
      const fallback = fallbackReason()
      if (fallback === undefined) {
        const native = engineFor(this, this.#socket.engine)
        engine = native
        try {
          info = native.open(options, this.#client)
        } catch (error) {
          native.releaseIfIdle()
          throw fromNativeError(error, { address: this.#bind.host, port: this.#bind.port })
        }
      } else {
        checkFallbackSupports({ reusePort: this.#bind.reusePort }, fallback)
        const fallbackEngine = sharedFallbackEngine()
        engine = fallbackEngine
        // The fallback binds asynchronously: meanwhile a second listen() is refused, and a close() waits for
        // the socket to open, then stops the server (below; listen() still resolves: it did listen).
        this.#opening = true
        try {
          info = await fallbackEngine.open(options, this.#client)
        } catch (error) {
          fallbackEngine.releaseIfIdle()
          this.#forgetRotationsWhileOpening() // the keys hold them: the next listen() starts with them
          if (this.#closed !== undefined) {
            // A close() that came meanwhile: there is nothing to stop, and the server cannot listen again.
            this.#wipeKeys()
            this.#resolveClosed?.()
          }
          throw error
        } finally {
          this.#opening = false
        }
      }
    } finally {
      wipeEngineKeys(options) // the engine copied them (the fallback engine's core, before open() resolved), or never will
    }
    this.#engine = engine
    this.#id = info.id
    // Rotations made while the fallback engine opened the socket (the keys it was given predate them), each with
    // what is left of its grace.
    for (const rotation of this.#rotationsWhileOpening) {
      this.#sendRotation(rotation.key, rotation.untilUs)
    }
    this.#forgetRotationsWhileOpening()
    // The clock the delivery layer reads (the network simulator's clockOffsetMs and clockDriftPpm), which
    // the clients synchronise to: from the engine's start of it, within a few µs (a millisecond or so on
    // the fallback engine, which starts it once bound).
    const simulator = this.#simulator.networkSimulator
    if (simulator !== undefined) this.#clock = new DeliveryClock(simulator.clockOffsetUs, simulator.clockDriftPpm * 1e-6, monotonicUs())
    this.#links = engine.peerLinks(info.id)
    this.#slotCounters = engine.peerCounters(info.id)
    this.#hold.opened(engine)
    this.#hold.update(true)
    this.#local = { address: info.address, family: info.family === 4 ? 'IPv4' : 'IPv6', port: info.port }
    this.#bufferSizes = { recv: info.receiveBufferSize, send: info.sendBufferSize }
    this.#bandwidth = new BandwidthWindow()
    // Read before 'running' goes out: a close() from a handler of that event stops the server itself.
    const closedWhileOpening = this.#closed !== undefined
    this.#setState('running')
    // It listened, whatever a 'running' handler did since (a close() it called ends the server later).
    this.#dropsSampler.start()
    if (serverListeningChannel.hasSubscribers) serverListeningChannel.publish({ server: this, address: { ...this.#local } } satisfies ServerListeningMessage)
    this.#log?.info({ address: addressText(this.#local), publicAddress: this.publicAddress ?? this.#publicAddress }, 'volley server listening')
    // It listened, and stops now: as on the native engine, whose bind is done before a close() can come.
    if (closedWhileOpening) this.#stop()
    return { ...this.#local }
  }

  /**
   * Makes `privateKey` the key connect tokens are opened with, at once (the server's copy: the caller may wipe
   * its own). The key it replaces is still accepted for `options.graceMs`, so that no client is refused across
   * the rotation: a token minted under it just before the web backend switched keys is used for connection
   * requests until it expires, expireSeconds after it was minted (30 to 60 s as docs/connections.md
   * recommends), hence a default of 60,000 ms. Give the longest expireSeconds your backend uses, plus the skew
   * between its clock and this server's, if that is longer; 0 refuses the old key at once.
   *
   * Tokens name no key: a request's token is tried under the current key first, then under each key still in
   * its grace, newest first. A key replaced earlier and still in its grace keeps its own deadline. At most 4
   * keys are held, the current one included: a rotation past that drops the oldest at once. A key whose grace
   * ends is wiped.
   *
   * Works before listen() (listen() starts with the keys and what is left of their grace) and while the server
   * runs. Throws ERR_INVALID_ARG_TYPE (not a Uint8Array), ERR_OUT_OF_RANGE (not 32 bytes, or graceMs outside 0
   * to 2^31 - 1), ERR_INVALID_ARG_VALUE (a key of all zeros, an unknown option), ERR_SERVER_CLOSED (once
   * close() was called: its keys are wiped).
   */
  rotatePrivateKey(privateKey: Uint8Array, options?: RotatePrivateKeyOptions): void {
    const key = secretKeyOption('privateKey', privateKey, false, 'argument')
    try {
      if (options !== undefined) checkOptions('"options" argument', options, rotateOptionNames)
      const graceMs = numberOption('graceMs', options?.graceMs, defaultKeyGraceMs, 0, maxKeyGraceMs, ' ms')
      if (this.#closed !== undefined) {
        throw this.#lifetime.closedError('ERR_SERVER_CLOSED', 'The server was closed: its private keys are wiped, and it takes no new one; make a new Server')
      }
      const graceUs = Math.round(graceMs * 1000)
      const nowUs = monotonicUs()
      // The engine first: when it refuses (stopped meanwhile), this side's set is left as it was.
      if (this.#engine !== undefined && this.#state !== 'stopped') this.#sendRotation(key, nowUs + graceUs)
      else if (this.#opening) this.#rotationsWhileOpening.push({ key: key.slice(), untilUs: nowUs + graceUs })
      this.#privateKeys.rotate(key, nowUs + graceUs, nowUs)
      this.#scheduleKeyExpiry()
    } finally {
      key.fill(0)
    }
  }

  /**
   * The private keys whose tokens are accepted now: the current one and each replaced one still in its grace
   * (rotatePrivateKey()), 1 to 4; 0 once the server is closed. A key this count no longer includes is refused.
   */
  // As of now on the monotonic clock, whose deadlines the engine's core keeps too.
  get privateKeyCount(): number {
    this.#privateKeys.expire(monotonicUs())
    return this.#privateKeys.count
  }

  /**
   * Wipes this side's copy of a replaced key when its grace ends, as the engine's core does with its own,
   * whether or not anything reads privateKeyCount or stats() (an unreferenced timer).
   */
  #scheduleKeyExpiry(): void {
    clearTimeout(this.#keyExpiry)
    this.#keyExpiry = undefined
    const nextUs = this.#privateKeys.nextExpiryUs()
    if (!Number.isFinite(nextUs)) return
    const delayMs = Math.min(maxKeyGraceMs, Math.max(0, Math.ceil((nextUs - monotonicUs()) / 1000)))
    this.#keyExpiry = setTimeout(() => {
      this.#privateKeys.expire(monotonicUs())
      this.#scheduleKeyExpiry()
    }, delayMs).unref()
  }

  #wipeKeys(): void {
    clearTimeout(this.#keyExpiry)
    this.#keyExpiry = undefined
    this.#privateKeys.wipe()
  }

  /** The keys listen() gives the engine: copies, which wipeEngineKeys() wipes once the engine has its own. */
  #keysForEngine(): { privateKey: Uint8Array; previousKeys: { key: Uint8Array; untilUs: number }[] } {
    this.#privateKeys.expire(monotonicUs())
    return { privateKey: this.#privateKeys.key(0).slice(), previousKeys: this.#privateKeys.previous() }
  }

  /** A rotation to the running engine: the key, then the grace in µs (u64 LE), in bytes wiped once sent. */
  /**
   * untilUs: when the replaced key's grace ends on the monotonic clock the engines share with this side, so that
   * privateKeyCount and the engine agree however late the engine's thread applies the rotation.
   */
  #sendRotation(key: Uint8Array, untilUs: number): void {
    const payload = new Uint8Array(sizes.key + 8)
    payload.set(key)
    new DataView(payload.buffer).setBigUint64(sizes.key, BigInt(untilUs), true)
    try {
      ;(this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.rotatePrivateKey, 0, payload)
    } finally {
      payload.fill(0) // the native engine copied it; the fallback engine's protocol wiped it already
    }
  }

  #forgetRotationsWhileOpening(): void {
    for (const rotation of this.#rotationsWhileOpening) rotation.key.fill(0)
    this.#rotationsWhileOpening = []
  }

  /** The address the server is bound to (port 0 resolved), as net.Server's: null unless it is running. */
  address(): AddressInfo | null {
    return this.#state === 'running' && this.#local !== undefined ? { ...this.#local } : null
  }

  /**
   * Stops the server for good: every client is sent redundant disconnects ('stopping'), then the socket
   * closes ('stopped'), and the promise resolves. Harmless twice. A closed server cannot listen again.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#closed
    this.#lifetime.release()
    if (this.#state === 'stopped' && !this.#opening) {
      this.#wipeKeys() // its copies: a closed server cannot listen again
      this.#closed = Promise.resolve()
      return this.#closed
    }
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    if (!this.#opening) this.#stop() // else listen() stops the server once its socket is open
    return this.#closed
  }

  #stop(): void {
    this.#setState('stopping')
    this.#hold.closing() // the disconnects go out, unref() or not
    // Every client is being disconnected: peer.connected turns false and send() throws now, not when the
    // 'disconnect' events ('server-closed') arrive from the I/O thread.
    for (const peer of this.#peers.values()) peer.markDisconnected(closingPeer)
    ;(this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.stop)
  }

  /**
   * The address connect tokens must list to reach this server, as `serverAddresses` takes it
   * (`'203.0.113.7:40000'`, `'[2001:db8::7]:40000'`): publicAddress, or else address, with port 0 replaced
   * by the port bound. null unless it is running.
   */
  get publicAddress(): string | null {
    if (this.#state !== 'running' || this.#local === undefined) return null
    const text = this.#publicAddress
    return text.endsWith(':0') ? `${text.slice(0, -1)}${this.#local.port}` : text
  }

  /** Lets the process exit while the server runs (as net.Server's unref()). */
  unref(): this {
    this.#hold.setUnreferenced(true, this.#state !== 'stopped')
    return this
  }

  /** Undoes unref(). */
  ref(): this {
    this.#hold.setUnreferenced(false, this.#state !== 'stopped')
    return this
  }

  /**
   * @internal For volley/metrics: writes each connected peer's smoothed RTT (µs; 0: not measured yet) into
   * rttUs and its loss ratio (packets lost ÷ sent over its connection; NaN before any was sent) into loss,
   * from the links table as #linkTotals reads it, and returns how many it wrote (at most the arrays' length;
   * 0 without channels or while not listening). O(peers), nothing allocated per peer.
   */
  [peerLinkSamples](rttUs: Float64Array, loss: Float64Array): number {
    const links = this.#links
    if (links === null) return 0
    const room = Math.min(rttUs.length, loss.length)
    let count = 0
    for (const [index, peer] of this.#peers) {
      if (count === room) break
      if (!this.#holdsSlot(index, peer.tag)) continue // the row is a later client's (see #holdsSlot)
      const at = index * linkFields
      const sent = links[at + LinkField.packetsSent]!
      rttUs[count] = links[at + LinkField.rttSmoothedUs]!
      loss[count] = sent > 0 ? links[at + LinkField.packetsLost]! / sent : Number.NaN
      count++
    }
    return count
  }

  /** The server's counters, drops by cause and link statistics, as of now. */
  stats(): ServerStats {
    const c = this.#readCounters()
    const { drops, errors } = serverDrops(c)
    const bytesIn = c[ProtocolCounter.bytesIn]!
    const bytesOut = c[ProtocolCounter.bytesOut]!
    return {
      connectedClients: this.#peers.size,
      packets: { in: c[ProtocolCounter.packetsIn]!, out: c[ProtocolCounter.packetsOut]! },
      bytes: { in: bytesIn, out: bytesOut },
      drops,
      errors,
      denied: c[ServerCounter.denied]!,
      privateKeys: { accepted: this.privateKeyCount, previousKeyRequests: c[ServerCounter.previousKeyRequests]! },
      handshakes: { pending: c[ServerCounter.pendingHandshakes]!, replaced: c[ServerCounter.handshakesReplaced]!, evicted: c[ServerCounter.handshakesEvicted]! },
      reassembly:
        this.#delivery === null
          ? null
          : {
              budgetBytes: this.#options.reassemblyBudgetBytes,
              usedBytes: c[ServerCounter.reassemblyUsed]!,
              evictions: c[ServerCounter.reassemblyEvictions]!,
              refusals: c[ServerCounter.reassemblyRefusals]!,
              stalled: this.#reassemblyStalled,
            },
      channelsMismatch: this.#channelsMismatch,
      channelsUnannounced: this.#channelsUnannounced,
      link: this.#linkTotals(bytesIn, bytesOut),
      networkSimulator: simulatedNetworkStats(c, this.#simulator.networkSimulator?.seed),
      recvBufferSize: this.#bufferSizes.recv,
      sendBufferSize: this.#bufferSizes.send,
    }
  }

  #linkTotals(bytesIn: number, bytesOut: number): ServerStats['link'] {
    if (this.#delivery === null) return null
    const totals = {
      rtt: { smoothedMs: 0, minMs: 0, maxMs: 0 },
      jitterMs: 0,
      lossPercent: 0,
      bandwidth: this.#bandwidth.read(performance.now(), bytesIn, bytesOut),
      resends: 0,
      queue: { depth: 0, bytes: 0, delayMs: 0 },
      dropped: 0,
    }
    const links = this.#links
    if (links === null) return totals // not listening: no peer
    let sent = 0
    let lost = 0
    let measured = 0
    let oldestQueuedUs = Number.POSITIVE_INFINITY
    for (const [index, peer] of this.#peers) {
      if (!this.#holdsSlot(index, peer.tag)) continue // the row is a later client's (see #holdsSlot)
      const at = index * linkFields // no closure per peer: this loop is O(peers) per call
      const smoothedUs = links[at + LinkField.rttSmoothedUs]!
      if (smoothedUs > 0) {
        totals.rtt.smoothedMs += smoothedUs / 1000
        totals.rtt.maxMs = Math.max(totals.rtt.maxMs, links[at + LinkField.rttMaxUs]! / 1000)
        totals.jitterMs += links[at + LinkField.jitterUs]! / 1000
        measured++
      }
      const minMs = links[at + LinkField.rttMinUs]! / 1000 // 0: not measured yet
      if (minMs > 0 && (totals.rtt.minMs === 0 || minMs < totals.rtt.minMs)) totals.rtt.minMs = minMs
      sent += links[at + LinkField.packetsSent]!
      lost += links[at + LinkField.packetsLost]!
      totals.resends += links[at + LinkField.resends]!
      // As peer.stats() counts it: what the I/O thread has not taken yet included.
      const queue = this.#queues.get(index)?.outstanding()
      if (queue) {
        totals.queue.depth += queue.depth
        totals.queue.bytes += queue.bytes
      }
      // Its queue's delay as peer.stats() reads it: the engine's oldest message, while the queue has any.
      const oldest = links[at + LinkField.oldestQueuedUs]!
      if (oldest > 0 && (queue?.depth ?? links[at + LinkField.queuedMessages]!) > 0) oldestQueuedUs = Math.min(oldestQueuedUs, oldest)
      totals.dropped += links[at + LinkField.dropped]!
    }
    if (measured > 0) {
      totals.rtt.smoothedMs /= measured
      totals.jitterMs /= measured
    }
    totals.lossPercent = sent > 0 ? (lost / sent) * 100 : 0
    // As peer.stats() reads a queue's delay: the oldest message still queued, of any peer.
    if (Number.isFinite(oldestQueuedUs)) totals.queue.delayMs = Math.max(0, monotonicUs() - oldestQueuedUs) / 1000
    return totals
  }

  #sendToPeer(peer: Peer, data: Uint8Array, options: SendOptions | undefined): boolean {
    if (this.#state !== 'running') throw new VolleyError('ERR_SERVER_NOT_RUNNING', `The server is ${this.#state}`)
    const queue = this.#rawQueue ?? (this.#queues.get(peer.index) as SendQueue)
    const channel = queue.check(data, options)
    if (!queue.admit(data.byteLength)) {
      ;(this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.watchPeer, peer.tag, queue.refused(data.byteLength))
      return false
    }
    let enqueued: boolean
    try {
      enqueued = (this.#engine as ProtocolEngine).enqueueToPeer(this.#client, this.#id, data, peer.tag, channel)
    } catch (error) {
      queue.cancel(data.byteLength) // never the engine's (out of memory, a process exiting): else counted queued for good
      throw error
    }
    if (enqueued) return true
    queue.cancel(data.byteLength)
    this.#engineBlocked.add(peer)
    return false
  }

  /**
   * Whether a slot is still the connection's that `tag` names: the I/O thread gives it to a later client as
   * soon as this one leaves, and resets its rows (counters, link statistics), before JavaScript hears of it.
   * The slot's clients so far, against those before this one (mod 4096, as its tag counts them).
   */
  #holdsSlot(index: number, tag: number): boolean {
    const table = this.#slotCounters
    if (table === null) return false
    return ((table[index * layout.peerCounterFields + PeerCounterField.clients]! - 1) & 0xfff) === Math.floor(tag / peerSlotScale)
  }

  #peerStats(peer: Peer): PeerStats | null {
    const table = this.#slotCounters
    const at = peer.index * layout.peerCounterFields
    if (table === null) return null
    const ours = (): boolean => this.#holdsSlot(peer.index, peer.tag)
    if (!ours()) return null // the slot has a later client already (JavaScript has not heard that this one left)
    const counters = {
      packetsIn: table[at + PeerCounterField.packetsIn]!,
      bytesIn: table[at + PeerCounterField.bytesIn]!,
      packetsOut: table[at + PeerCounterField.packetsOut]!,
      bytesOut: table[at + PeerCounterField.bytesOut]!,
    }
    const stats = this.#linkStats(peer, counters, readPeerDrops(table, at + PeerCounterField.malformed), this.#links, peer.index, this.#queues.get(peer.index)?.outstanding() ?? null)
    // A later client took the slot while these were read (the I/O thread counts it, then resets the row):
    // they may be its own.
    return ours() ? stats : null
  }

  /**
   * A peer's stats from its counters, its drops and its row of link statistics (links null: without channels);
   * outstanding: what its send queue holds (null: the row's count).
   */
  #linkStats(peer: Peer, counters: PacketCounts, drops: PeerDrops, links: Float64Array | null, row: number, outstanding: { depth: number; bytes: number } | null): PeerStats {
    return Object.assign(readLinkStats(links, row, counters, this.#bandwidthWindow(peer), outstanding), { drops })
  }

  /** What a peer's bandwidth is measured from, made at its first reading; the slot's next client starts anew. */
  #bandwidthWindow(peer: Peer): BandwidthWindow {
    let reading = this.#readings.get(peer.index)
    if (reading === undefined) {
      reading = new BandwidthWindow(peer.connectedAtMs)
      this.#readings.set(peer.index, reading)
    }
    return reading
  }

  /**
   * A peer's statistics as its connection ended, made when they are first read: a gateway whose clients leave
   * by the thousand (a network's outage timing them all out) reads few of them. As of that moment, however
   * late: its bandwidth, and its clock's error bound. Its queue holds nothing: what it held will never be
   * released (as peer.bufferedAmount says).
   */
  #finalStats(peer: Peer, final: Float64Array): () => PeerStats {
    const window = this.#bandwidthWindow(peer)
    const endedAtMs = performance.now() // the two clocks are one (CLOCK_MONOTONIC): the µs follow when needed
    return () => {
      const { counters, drops, link } = decodeFinalReadings(final)
      const at = { ms: endedAtMs, us: monotonicUs() - (performance.now() - endedAtMs) * 1000 }
      return Object.assign(readLinkStats(link, 0, counters, window, { depth: 0, bytes: 0 }, at), { drops })
    }
  }

  #bufferedAmount(peer: Peer): number {
    return this.#queues.get(peer.index)?.queued ?? 0
  }

  #disconnectPeer(peer: Peer): void {
    if (this.#state === 'running') (this.#engine as ProtocolEngine).control(this.#id, ProtocolControl.disconnectPeer, peer.tag)
  }

  // A 'state' handler that throws must not stop the transition it reports (close() would never resolve):
  // its error surfaces as an uncaught exception once the caller is done.
  #setState(state: ServerState): void {
    this.#state = state
    try {
      this.emit('state', state)
    } catch (error) {
      surfaceLater(error)
    }
  }

  #onBatch(slab: SlabView, start: number, count: number): void {
    forEachPeerRecord(slab, start, count, this.#onRecord.bind(this, slab))
  }

  #onRecord(slab: SlabView, kind: number, code: number, index: number, at: number, length: number, record: number): void {
    switch (kind) {
      // Not for a peer close() has disconnected already: what arrives while the server stops is not news.
      case PeerRecordKind.payload: {
        const peer = this.#peers.get(index)
        if (peer?.connected === true) this.emit('message', peer, new Uint8Array(slab.buffer, at, length), code)
        return
      }
      case PeerRecordKind.largePayload: {
        const peer = this.#peers.get(index)
        const bytes = (this.#engine as ProtocolEngine).takeLarge(slab.u32[at >>> 2]!)
        if (peer?.connected === true && bytes !== null) this.emit('message', peer, new Uint8Array(bytes), code)
        return
      }
      case PeerRecordKind.flushed:
        this.#peers.get(index)?.notifyFlushed()
        return
      case PeerRecordKind.settings: {
        // Ahead of the client's first message (the engine sends it so).
        const pending = this.#unannounced.get(index)
        const peer = pending ?? this.#peers.get(index)
        const queue = this.#queues.get(index)
        if (peer === undefined || queue === undefined) return
        queue.remote = readRemoteChannels(slab.u8, at, length)
        this.#remoteChannels.set(peer, queue.remote)
        // Code 1: they do not work with the server's, and the engine is disconnecting the client (its record
        // follows); so it is while the server closes.
        if (pending !== undefined && code === 0 && this.#state === 'running') {
          this.#unannounced.delete(index)
          this.#announce(index, peer)
        }
        return
      }
      case PeerRecordKind.drain: {
        // Not for a peer close() or disconnect() has ended already: a handler that sends again would throw.
        const peer = this.#peers.get(index)
        if (peer?.connected === true) {
          peer.notifyDrain()
          this.emit('drain', peer)
        }
        return
      }
      case PeerRecordKind.connect: {
        this.#readings.delete(index)
        // Without channels, a handshake that completed after close() was called (before the stop reached the I/O
        // thread) is reported by neither 'connect' nor 'disconnect', as one whose channels arrive then: its
        // client is being disconnected, and a 'connect' handler's welcome would throw while the server stops.
        if (this.#delivery === null && this.#state !== 'running') return
        const { address, port } = recordAddress(slab, record)
        const clientId = slab.view.getBigUint64(at, true)
        const tag = index + this.#slotEnds[index]! * peerSlotScale
        const userDataAt = this.#userData.copy(slab.u8, at + 8)
        const peer = new Peer(peerConstruction, this.#peerHost, index, clientId, address, port, this.#userData.pool, userDataAt, tag)
        // Its row of link statistics while the slot is its own: once a later client has it (JavaScript not told
        // yet that this one left), the row is that client's, and its released bytes would make this queue
        // look like holding all that was ever sent (bufferedAmount, server.stats(), and a send() refused).
        if (this.#delivery !== null) this.#queues.set(index, new SendQueue(this.#delivery, () => (this.#holdsSlot(index, tag) ? this.#links : null), index, 'the client'))
        if (this.#delivery !== null) this.#unannounced.set(index, peer)
        else this.#announce(index, peer)
        return
      }
      case PeerRecordKind.disconnect: {
        this.#slotEnds[index] = (this.#slotEnds[index]! + 1) & 0xfff // as the engine counts them
        if (code === DisconnectCode.reassemblyStalled) this.#reassemblyStalled++ // announced or not
        const pending = this.#unannounced.get(index)
        if (pending !== undefined) {
          // Never reported by 'connect', so not by 'disconnect' either.
          this.#unannounced.delete(index)
          this.#queues.delete(index)
          pending.markDisconnected('its connection ended before its channels were known')
          if (code === DisconnectCode.channelsMismatch) this.#channelsMismatch++
          if (code === DisconnectCode.settingsLate) this.#channelsUnannounced++
          return
        }
        const peer = this.#peers.get(index)
        if (peer !== undefined) {
          const reason = disconnectReasons[code] ?? 'disconnected'
          const why = reason === 'channels-mismatch' ? `: ${describeChannelsMismatch(this.#delivery, peer.remoteChannels, 'the client')}` : ''
          // The last readings, from the record: the slot's own may be a next client's already.
          const final = copyFinalReadings(slab, at, length)
          peer.markDisconnected(`its connection ended ('${reason}'${why})`, final === null ? undefined : this.#finalStats(peer, final))
          this.#peers.delete(index)
          this.#queues.delete(index)
          this.#engineBlocked.delete(peer)
          if (peerDisconnectChannel.hasSubscribers) peerDisconnectChannel.publish({ server: this, peer, reason } satisfies PeerDisconnectMessage)
          this.#log?.debug({ clientId: peer.clientId.toString(), address: peerAddress(peer), reason }, 'volley peer disconnected')
          this.emit('disconnect', peer, reason)
        }
        return
      }
    }
  }

  /** Reports a peer (only while the server runs: from close() on, no 'connect' is emitted). */
  #announce(index: number, peer: Peer): void {
    this.#peers.set(index, peer)
    if (peerConnectChannel.hasSubscribers) peerConnectChannel.publish({ server: this, peer } satisfies PeerConnectMessage)
    this.#log?.debug({ clientId: peer.clientId.toString(), address: peerAddress(peer) }, 'volley peer connected')
    this.emit('connect', peer)
  }

  /** An error of the socket (sendmmsg, recvmmsg), logged, then emitted. */
  #onError(error: Error): void {
    this.#log?.error({ err: error, address: this.#local === undefined ? undefined : addressText(this.#local) }, 'volley server socket error')
    this.emit('error', error)
  }

  /** The counters as the engine has them now (as they stood at the stop, once stopped). */
  #readCounters(): Float64Array {
    if (this.#engine !== undefined && this.#state !== 'stopped') this.#engine.readProtocolStats(this.#id, this.#counters)
    return this.#counters
  }

  /** stats().drops now: volley:server:drops reads them each interval. */
  #readDrops(): ServerStats['drops'] {
    return serverDrops(this.#readCounters()).drops
  }

  #onClosed(): void {
    this.#dropsSampler.stop()
    if (this.#engine !== undefined) this.#engine.readProtocolStats(this.#id, this.#counters)
    this.#unannounced.clear()
    this.#hold.closed()
    for (const peer of this.#peers.values()) peer.markDisconnected(closingPeer)
    this.#peers.clear()
    this.#engineBlocked.clear()
    // The per-slot tables (native memory, maxClients rows each) go with the socket: a Peer an application
    // keeps reaches this server through its host, and must not keep them (230 MB at 2^20 clients).
    this.#links = null
    this.#slotCounters = null
    this.#queues.clear()
    this.#readings.clear()
    // Its copy (the engine's is wiped too), once close() was called: a closed server cannot listen again.
    if (this.#closed !== undefined) this.#wipeKeys()
    this.#setState('stopped')
    this.#resolveClosed?.()
    if (serverCloseChannel.hasSubscribers) serverCloseChannel.publish({ server: this } satisfies ServerCloseMessage)
    this.#log?.info({ address: this.#local === undefined ? undefined : addressText(this.#local) }, 'volley server closed')
  }
}

/** A peer's address as logs give it: 'a.b.c.d:port' or '[v6]:port'. */
function peerAddress(peer: Peer): string {
  return addressText({ address: peer.address, family: peer.address.includes(':') ? 'IPv6' : 'IPv4', port: peer.port })
}

/** ServerStats' drops and errors from the counters readProtocolStats() wrote: stats() and volley:server:drops read them so. */
function serverDrops(c: Float64Array): Pick<ServerStats, 'drops' | 'errors'> {
  const { drops, errors } = commonProtocolDrops(c, ServerCounter.sendDropped)
  return {
    drops: {
      ...drops,
      wrongProtocol: c[ServerCounter.wrongProtocol]!,
      tokenExpired: c[ServerCounter.tokenExpired]!,
      tokenRefused: c[ServerCounter.tokenRefused]!,
      requestsThrottled: c[ServerCounter.requestsThrottled]!,
    },
    errors,
  }
}

/** Wipes the copies of the keys listen() gave an engine (#keysForEngine), once it holds its own. */
function wipeEngineKeys(options: NativeSocketOptions): void {
  const protocol = options.protocol
  if (protocol?.kind !== 'server') return
  protocol.privateKey.fill(0)
  for (const previous of protocol.previousKeys ?? []) previous.key.fill(0)
}

/** Why a peer's send() fails once close() began: every peer is disconnected before the 'disconnect' events. */
const closingPeer =
  "the server is closing (server.close() disconnects every peer at once, before their 'disconnect' events: " +
  "a handler that sends to other peers checks peer.connected first)"

/**
 * The address or publicAddress option, parsed (port 0: any free port; in publicAddress, the port bound).
 * Errors name the option and show the value as given: parseServerAddress's alone say neither which option
 * was wrong nor, for port 0, the value received.
 */
function serverAddressOption(name: 'address' | 'publicAddress', value: unknown): ServerAddress {
  if (typeof value !== 'string') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be a string like '127.0.0.1:40000' or '[::1]:40000'. Received ${describe(value)}`)
  }
  try {
    return parseServerAddressPortZero(value)
  } catch (error) {
    if (!(error instanceof VolleyTypeError)) throw error
    const ports = name === 'address' ? 'a port from 0 (any free port) to 65535' : 'a port from 0 (the port bound) to 65535'
    throw new VolleyTypeError(
      error.code,
      `The "${name}" option must be an IPv4 literal or an IPv6 literal in brackets${zoneRefused(value)}, and ${ports}: 'a.b.c.d:port' or '[ipv6]:port'. Received '${value}'`,
    )
  }
}

