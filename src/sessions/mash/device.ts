// The device side of MASH (seed 003 §3, research §A.4): a model of endpoints → features → attributes that
// answers reads, writes and invokes, and subscriptions fed by set(): primed at once, coalesced (the window
// opens at the first change after the last notification, last value wins, deltas only), bounce-backs
// suppressed, a heartbeat at maxInterval. Each connection is a MashDeviceSession; its subscriptions end with it.
import { EventEmitter } from 'node:events'
import { encode } from 'cborg'
import { VolleyRangeError, VolleyTypeError, describe, surfaceLater } from '../../util/errors.ts'
import { booleanOption, checkOptions, integerOption } from '../../util/options.ts'
import type { SessionTransport } from '../transport.ts'
import { Timer, type Scheduler } from '../timers.ts'
import { mashSessionCloseChannel, mashSessionOpenChannel } from '../../api/diagnostics.ts'
import type { MashSessionCloseMessage, MashSessionOpenMessage } from '../diagnostics.ts'
import { MashStatusError } from './errors.ts'
import { MashLink, isTooLarge, type MashLinkSettings, type MashLinkStats } from './link.ts'
import { linkSettings, type MashLinkOptions } from './settings.ts'
import {
  MashOperation,
  MashStatus,
  parseInvokePayload,
  parseReadPayload,
  parseSubscribePayload,
  parseUnsubscribePayload,
  parseWritePayload,
  sendableProblem,
  subscribeResponsePayload,
  type MashRequest,
  type MashValue,
} from './wire.ts'

export type MashAttributeType = 'bool' | 'uint' | 'int' | 'float' | 'string' | 'bytes' | 'array' | 'map' | 'any'
export type MashAccess = 'read' | 'write' | 'readwrite'

export interface MashAttributeDefinition {
  /** 0 to 65535. */
  id: number
  /** What values it takes (default 'any'); null is always taken (no value yet). */
  type?: MashAttributeType | undefined
  /** Who may read and write it over MASH (default 'read'); set() from the application is always allowed. */
  access?: MashAccess | undefined
  /** Bounds of a number, checked on writes (CONSTRAINT_ERROR) and by set(). */
  min?: number | undefined
  max?: number | undefined
  /** Its first value (default null). */
  value?: MashValue | undefined
}

export interface MashRequestContext {
  readonly session: MashDeviceSession
  readonly endpointId: number
  readonly featureId: number
}

/**
 * A command: resolves with its result (undefined: none). Throw a MashStatusError to answer with its status;
 * any other error answers BUSY and is emitted as the device's 'handlerError'.
 */
export type MashCommandHandler = (params: Map<string, MashValue>, context: MashRequestContext) => MashValue | undefined | Promise<MashValue | undefined>

export interface MashFeatureDefinition {
  /** 1 to 255 (feature 0 is the unsubscribe address). */
  id: number
  attributes?: readonly MashAttributeDefinition[] | undefined
  commands?: Readonly<Record<number, MashCommandHandler>> | undefined
}

export interface MashEndpointDefinition {
  /** 0 to 255. */
  id: number
  features: readonly MashFeatureDefinition[]
}

/**
 * Sees a controller's write before it is applied (the values checked against the model already): throw a
 * MashStatusError to refuse it; resolve with other values to store instead (a device that rounds, say).
 */
export type MashWriteHandler = (
  values: Map<number, MashValue>,
  context: MashRequestContext,
) => void | Map<number, MashValue> | Promise<void | Map<number, MashValue>>

/**
 * Sees a controller's read before it is answered, with the values the model holds for the attributes asked
 * (ids checked already): throw a MashStatusError to refuse it (NOT_AUTHORIZED, say); resolve with a map to
 * answer with other values (read fresh from hardware, say).
 */
export type MashReadHandler = (
  values: Map<number, MashValue>,
  context: MashRequestContext,
) => void | Map<number, MashValue> | Promise<void | Map<number, MashValue>>

export interface MashDeviceOptions extends MashLinkOptions {
  endpoints: readonly MashEndpointDefinition[]
  onRead?: MashReadHandler | undefined
  onWrite?: MashWriteHandler | undefined
  /** Subscriptions per connection (default 50; RESOURCE_EXHAUSTED past it). */
  maxSubscriptions?: number | undefined
  /** Attributes listed in one subscription (default 100; RESOURCE_EXHAUSTED past it). */
  maxAttributesPerSubscription?: number | undefined
  /** What a heartbeat carries: every value ('full', the default) or none ('empty'). */
  heartbeat?: 'full' | 'empty' | undefined
  /** Drops a pending change equal to the value last notified (default true). */
  bounceBackSuppression?: boolean | undefined
  /** Swaps a minInterval above maxInterval instead of refusing it (default false). */
  autoCorrectIntervals?: boolean | undefined
  /** The shortest maxInterval (heartbeat period) a subscription may ask for, ms (default 1,000; CONSTRAINT_ERROR below). */
  minHeartbeatIntervalMs?: number | undefined
  /** Requests of one connection whose onRead, onWrite or command handler is still running (default 64; BUSY past it). */
  maxPendingHandlers?: number | undefined
}

function noDeviceStats(): MashDeviceStats {
  return { sessions: 0, subscriptions: 0, notificationsSent: 0, heartbeatsSent: 0, bounceBacksSuppressed: 0, changesCoalesced: 0, unsendableNotifications: 0, handlersRefused: 0 }
}

/** The counters of many devices (a gateway hosting them), added up. */
export function sumDeviceStats(devices: Iterable<MashDevice>): MashDeviceStats {
  const sum = noDeviceStats()
  for (const device of devices) {
    const stats = device.counters
    for (const key of Object.keys(sum) as (keyof MashDeviceStats)[]) sum[key] += stats[key]
  }
  return sum
}

// The subscription defaults of §A.4.
/** The shortest time between a subscription's notifications when a subscribe leaves it out, ms (1 s). */
export const MASH_DEFAULT_MIN_INTERVAL_MS = 1_000
/** The longest time without a notification (the heartbeat) when a subscribe leaves it out, ms (60 s). */
export const MASH_DEFAULT_MAX_INTERVAL_MS = 60_000

export interface MashDeviceStats {
  sessions: number
  subscriptions: number
  notificationsSent: number
  heartbeatsSent: number
  /** Changes dropped because they equalled the value last notified. */
  bounceBacksSuppressed: number
  /** Changes replaced by a newer one inside a coalescing window. */
  changesCoalesced: number
  /** Notifications a connection below refused for their size even alone (a Volley channel with small messages). */
  unsendableNotifications: number
  /** Requests answered BUSY because their connection had maxPendingHandlers handlers running. */
  handlersRefused: number
}

export interface MashDeviceEvents {
  session: [session: MashDeviceSession]
  /** A controller's write was applied (values as stored). */
  write: [values: ReadonlyMap<number, MashValue>, context: MashRequestContext]
  /** A command handler, onRead or onWrite threw something other than a MashStatusError (answered BUSY). */
  handlerError: [error: unknown, context: MashRequestContext]
}

interface AttributeState {
  readonly id: number
  /** Its place in its feature's list: subscriptions keep their values in arrays by it. */
  index: number
  readonly type: MashAttributeType
  readonly readable: boolean
  readonly writable: boolean
  readonly min: number
  readonly max: number
  value: MashValue
}

/** One feature of one endpoint, with the subscriptions that follow it: the feature index. */
interface FeatureState {
  readonly endpointId: number
  readonly featureId: number
  readonly attributes: Map<number, AttributeState>
  /** The same attributes, each at its index. */
  readonly list: readonly AttributeState[]
  readonly commands: ReadonlyMap<number, MashCommandHandler>
  readonly subscriptions: Set<DeviceSubscription>
}

const deviceOptionNames: ReadonlySet<string> = new Set([
  'endpoints',
  'onRead',
  'onWrite',
  'maxSubscriptions',
  'maxAttributesPerSubscription',
  'heartbeat',
  'bounceBackSuppression',
  'autoCorrectIntervals',
  'minHeartbeatIntervalMs',
  'maxPendingHandlers',
  'keepAlive',
  'closeTimeoutMs',
  'scheduler',
])

interface DeviceSettings {
  minHeartbeatIntervalMs: number
  maxPendingHandlers: number
  maxSubscriptions: number
  maxAttributesPerSubscription: number
  fullHeartbeat: boolean
  bounceBackSuppression: boolean
  autoCorrectIntervals: boolean
}

const featureKey = (endpointId: number, featureId: number): number => endpointId * 256 + featureId

/**
 * The device side of MASH: a model of endpoints, features and attributes that answers reads, writes, invokes
 * and subscriptions. set() feeds the subscriptions: changes are coalesced per window and sent as deltas, with
 * a heartbeat at each subscription's maxInterval. serve() answers one connection (a MashDeviceSession).
 */
export class MashDevice extends EventEmitter<MashDeviceEvents> {
  readonly #features = new Map<number, FeatureState>()
  readonly #endpoints = new Set<number>()
  readonly #scheduler: Scheduler
  readonly #linkSettings: MashLinkSettings
  readonly #settings: DeviceSettings
  readonly #onRead: MashReadHandler | undefined
  readonly #onWrite: MashWriteHandler | undefined
  readonly #sessions = new Set<MashDeviceSession>()
  #nextSubscriptionId = 1
  /** @internal Counters the sessions and subscriptions add to. */
  readonly counters: MashDeviceStats = noDeviceStats()

  constructor(options: MashDeviceOptions) {
    super()
    checkOptions('MashDevice options', options, deviceOptionNames)
    const { scheduler, link } = linkSettings(options)
    this.#scheduler = scheduler
    this.#linkSettings = link
    const heartbeat = options.heartbeat ?? 'full'
    if (heartbeat !== 'full' && heartbeat !== 'empty') {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "heartbeat" option must be 'full' or 'empty'. Received ${describe(heartbeat)}`)
    }
    this.#settings = {
      minHeartbeatIntervalMs: integerOption('minHeartbeatIntervalMs', options.minHeartbeatIntervalMs, 1_000, 1, 2 ** 31 - 1),
      maxPendingHandlers: integerOption('maxPendingHandlers', options.maxPendingHandlers, 64, 1, 1_000_000),
      maxSubscriptions: integerOption('maxSubscriptions', options.maxSubscriptions, 50, 1, 1_000_000),
      maxAttributesPerSubscription: integerOption('maxAttributesPerSubscription', options.maxAttributesPerSubscription, 100, 1, 65_536),
      fullHeartbeat: heartbeat === 'full',
      bounceBackSuppression: options.bounceBackSuppression === undefined ? true : booleanOption('bounceBackSuppression', options.bounceBackSuppression),
      autoCorrectIntervals: booleanOption('autoCorrectIntervals', options.autoCorrectIntervals),
    }
    for (const name of ['onRead', 'onWrite'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') {
        throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be a function. Received ${describe(options[name])}`)
      }
    }
    this.#onRead = options.onRead
    this.#onWrite = options.onWrite
    this.#buildModel(options.endpoints)
  }

  /** @internal */
  get settings(): Readonly<DeviceSettings> {
    return this.#settings
  }

  /** @internal */
  get scheduler(): Scheduler {
    return this.#scheduler
  }

  /** @internal */
  get onRead(): MashReadHandler | undefined {
    return this.#onRead
  }

  /** @internal */
  get onWrite(): MashWriteHandler | undefined {
    return this.#onWrite
  }

  /** The connections served now. */
  get sessions(): ReadonlySet<MashDeviceSession> {
    return this.#sessions
  }

  stats(): MashDeviceStats {
    return { ...this.counters }
  }

  /** Answers MASH on a connection: requests, subscriptions and pings, until it ends. */
  serve(transport: SessionTransport): MashDeviceSession {
    if (typeof transport !== 'object' || transport === null || typeof transport.send !== 'function' || typeof transport.on !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "transport" argument must be a SessionTransport. Received ${describe(transport)}`)
    }
    const session = new MashDeviceSession(this, transport, this.#linkSettings)
    this.#sessions.add(session)
    this.counters.sessions = this.#sessions.size
    if (mashSessionOpenChannel.hasSubscribers) mashSessionOpenChannel.publish({ device: this, session } satisfies MashSessionOpenMessage)
    this.emit('session', session)
    return session
  }

  /** The value of an attribute. */
  get(endpointId: number, featureId: number, attributeId: number): MashValue {
    return this.#attribute(endpointId, featureId, attributeId).value
  }

  /**
   * Sets an attribute from the application (a measurement, a state change): each subscription that follows
   * it records the change, to be notified when its coalescing window closes.
   */
  set(endpointId: number, featureId: number, attributeId: number, value: MashValue): void {
    const feature = this.#feature(endpointId, featureId)
    const attribute = this.#attribute(endpointId, featureId, attributeId)
    const problem = valueProblem(attribute, value)
    if (problem !== undefined) {
      const message = `Attribute ${attributeId} of endpoint ${endpointId} feature ${featureId} ${problem.text}. Received ${describe(value)}`
      throw problem.range ? new VolleyRangeError('ERR_OUT_OF_RANGE', message) : new VolleyTypeError('ERR_INVALID_ARG_VALUE', message)
    }
    this.#store(feature, attribute, value)
  }

  /** @internal Stores a checked value and tells the subscriptions that follow the attribute. */
  store(feature: FeatureState, attribute: AttributeState, value: MashValue): void {
    this.#store(feature, attribute, value)
  }

  #store(feature: FeatureState, attribute: AttributeState, value: MashValue): void {
    attribute.value = value
    if (feature.subscriptions.size === 0) return
    const now = this.#scheduler.now()
    for (const subscription of feature.subscriptions) subscription.change(attribute, value, now)
  }

  /** @internal */
  featureState(endpointId: number, featureId: number): FeatureState | undefined {
    return this.#features.get(featureKey(endpointId, featureId))
  }

  /** @internal */
  hasEndpoint(endpointId: number): boolean {
    return this.#endpoints.has(endpointId)
  }

  /** @internal A device-wide subscription id: u32 from 1, wrapping past ids in use. */
  takeSubscriptionId(inUse: (id: number) => boolean): number {
    for (;;) {
      const id = this.#nextSubscriptionId
      this.#nextSubscriptionId = id >= 0xffff_ffff ? 1 : id + 1
      if (!inUse(id)) return id
    }
  }

  /** @internal */
  sessionEnded(session: MashDeviceSession): void {
    this.#sessions.delete(session)
    this.counters.sessions = this.#sessions.size
  }

  #feature(endpointId: number, featureId: number): FeatureState {
    const feature = this.#features.get(featureKey(endpointId, featureId))
    if (feature === undefined) {
      throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The device has no feature ${featureId} on endpoint ${endpointId}`)
    }
    return feature
  }

  #attribute(endpointId: number, featureId: number, attributeId: number): AttributeState {
    const attribute = this.#feature(endpointId, featureId).attributes.get(attributeId)
    if (attribute === undefined) {
      throw new VolleyRangeError('ERR_OUT_OF_RANGE', `Feature ${featureId} of endpoint ${endpointId} has no attribute ${attributeId}`)
    }
    return attribute
  }

  #buildModel(endpoints: unknown): void {
    if (!Array.isArray(endpoints) || endpoints.length === 0) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "endpoints" option must be a non-empty array of { id, features }. Received ${describe(endpoints)}`)
    }
    for (const [e, endpoint] of (endpoints as MashEndpointDefinition[]).entries()) {
      const endpointId = integerOption(`endpoints[${e}].id`, endpoint?.id, -1, 0, 255)
      if (this.#endpoints.has(endpointId)) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Endpoint ${endpointId} is defined twice`)
      this.#endpoints.add(endpointId)
      if (!Array.isArray(endpoint.features)) {
        throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `endpoints[${e}].features must be an array. Received ${describe(endpoint.features)}`)
      }
      for (const [f, feature] of endpoint.features.entries()) {
        const where = `endpoints[${e}].features[${f}]`
        const featureId = integerOption(`${where}.id`, feature?.id, -1, 1, 255)
        const key = featureKey(endpointId, featureId)
        if (this.#features.has(key)) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Feature ${featureId} of endpoint ${endpointId} is defined twice`)
        const attributes = new Map<number, AttributeState>()
        for (const [a, definition] of (feature.attributes ?? []).entries()) {
          const attribute = attributeState(`${where}.attributes[${a}]`, definition)
          if (attributes.has(attribute.id)) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `${where} defines attribute ${attribute.id} twice`)
          attributes.set(attribute.id, attribute)
        }
        const commands = new Map<number, MashCommandHandler>()
        for (const [name, handler] of Object.entries(feature.commands ?? {})) {
          const commandId = Number(name)
          if (!Number.isInteger(commandId) || commandId < 0 || commandId > 255 || typeof handler !== 'function') {
            throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `${where}.commands maps command ids 0 to 255 to functions. Received ${name}: ${describe(handler)}`)
          }
          commands.set(commandId, handler as MashCommandHandler)
        }
        const list = [...attributes.values()]
        list.forEach((attribute, index) => (attribute.index = index))
        this.#features.set(key, { endpointId, featureId, attributes, list, commands, subscriptions: new Set() })
      }
    }
  }
}

function attributeState(where: string, definition: MashAttributeDefinition): AttributeState {
  if (typeof definition !== 'object' || definition === null) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `${where} must be an object { id, type?, access?, value? }. Received ${describe(definition)}`)
  }
  const id = integerOption(`${where}.id`, definition.id, -1, 0, 0xffff)
  const type = definition.type ?? 'any'
  if (!attributeTypes.has(type)) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `${where}.type must be one of ${[...attributeTypes].join(', ')}. Received ${describe(type)}`)
  const access = definition.access ?? 'read'
  if (access !== 'read' && access !== 'write' && access !== 'readwrite') {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `${where}.access must be 'read', 'write' or 'readwrite'. Received ${describe(access)}`)
  }
  const state: AttributeState = {
    id,
    index: -1,
    type,
    readable: access !== 'write',
    writable: access !== 'read',
    min: definition.min ?? -Infinity,
    max: definition.max ?? Infinity,
    value: null,
  }
  const value = definition.value ?? null
  const problem = valueProblem(state, value)
  if (problem !== undefined) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `${where}.value: the attribute ${problem.text}. Received ${describe(value)}`)
  state.value = value
  return state
}

const attributeTypes: ReadonlySet<string> = new Set(['bool', 'uint', 'int', 'float', 'string', 'bytes', 'array', 'map', 'any'])

/** Why a value does not fit an attribute: its type (range false) or its bounds (range true). */
interface AttributeProblem {
  readonly range: boolean
  readonly text: string
}

/** Why a value does not fit an attribute, or undefined when it does. */
function valueProblem(attribute: AttributeState, value: MashValue): AttributeProblem | undefined {
  if (value === null) return undefined
  let fits: boolean
  switch (attribute.type) {
    case 'bool':
      fits = typeof value === 'boolean'
      break
    case 'uint':
      fits = (typeof value === 'number' && Number.isInteger(value) && value >= 0) || (typeof value === 'bigint' && value >= 0n)
      break
    case 'int':
      fits = (typeof value === 'number' && Number.isInteger(value)) || typeof value === 'bigint'
      break
    case 'float':
      fits = typeof value === 'number' && Number.isFinite(value)
      break
    case 'string':
      fits = typeof value === 'string'
      break
    case 'bytes':
      fits = value instanceof Uint8Array
      break
    case 'array':
      fits = Array.isArray(value)
      break
    case 'map':
      fits = value instanceof Map
      break
    case 'any':
      fits = value !== undefined
      break
  }
  if (!fits) return { range: false, text: `takes values of type ${attribute.type}` }
  if ((typeof value === 'number' || typeof value === 'bigint') && (value < attribute.min || value > attribute.max)) {
    return { range: true, text: `takes values from ${attribute.min} to ${attribute.max}` }
  }
  // A value the device could not send back (in a read, a notification) is no value it may hold. (A finite
  // number or a boolean, the usual measurement, always goes: set() on the hot path skips the walk.)
  if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return undefined
  const unsendable = sendableProblem(value)
  if (unsendable !== undefined) return { range: true, text: `cannot hold it: ${unsendable}` }
  return undefined
}

/** Whether two values are the same for bounce-back suppression: by identity, else by their canonical CBOR. */
function sameValue(a: MashValue, b: MashValue): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  const left = encode(a)
  const right = encode(b)
  return left.byteLength === right.byteLength && Buffer.compare(left, right) === 0
}

/**
 * One subscription at the device: the values last notified and the pending changes, in arrays by the
 * attributes' places in their feature (no Map per subscription: 50,000 of them are a gateway's memory), and
 * one timer.
 */
class DeviceSubscription {
  readonly id: number
  readonly session: MashDeviceSession
  readonly feature: FeatureState
  /** Whether it follows each attribute of the feature, by index; null: all the readable ones. */
  readonly #followed: readonly boolean[] | null
  readonly minIntervalMs: number
  readonly maxIntervalMs: number
  /** The value last notified (or primed) of each attribute it follows, by index. */
  readonly #lastValues: MashValue[]
  /** The pending change of each attribute, by index; undefined: none (undefined is no MashValue). */
  readonly #pendingValues: (MashValue | undefined)[]
  /** The indexes with a pending change, in the order they came. */
  readonly #pendingIndexes: number[] = []
  /** When the open coalescing window closes; Infinity while none is open. */
  windowClosesAt = Infinity
  lastNotifiedAt: number
  readonly timer = new Timer((now) => this.due(now))
  /** Ended (unsubscribed, or its connection gone): never armed again, even from a notify() that ended it. */
  #ended = false

  constructor(id: number, session: MashDeviceSession, feature: FeatureState, attributeIds: readonly number[], minIntervalMs: number, maxIntervalMs: number, now: number) {
    this.id = id
    this.session = session
    this.feature = feature
    const { list } = feature
    if (attributeIds.length === 0) this.#followed = null
    else {
      const followed = new Array<boolean>(list.length).fill(false)
      for (const attributeId of attributeIds) followed[feature.attributes.get(attributeId)!.index] = true
      this.#followed = followed
    }
    this.minIntervalMs = minIntervalMs
    this.maxIntervalMs = maxIntervalMs
    this.lastNotifiedAt = now
    this.#lastValues = new Array<MashValue>(list.length).fill(null)
    this.#pendingValues = new Array<MashValue | undefined>(list.length).fill(undefined)
    // Priming: the current values are what later deltas are measured from.
    for (const attribute of list) if (this.#follows(attribute)) this.#lastValues[attribute.index] = attribute.value
  }

  #follows(attribute: AttributeState): boolean {
    return this.#followed === null ? attribute.readable : this.#followed[attribute.index]!
  }

  /** The values it follows, by attribute id: its priming, and a full heartbeat. */
  values(): Map<number, MashValue> {
    const values = new Map<number, MashValue>()
    for (const attribute of this.feature.list) if (this.#follows(attribute)) values.set(attribute.id, this.#lastValues[attribute.index]!)
    return values
  }

  get hasPending(): boolean {
    return this.#pendingIndexes.length > 0
  }

  change(attribute: AttributeState, value: MashValue, now: number): void {
    if (!this.#follows(attribute)) return
    const index = attribute.index
    if (this.#pendingValues[index] !== undefined) this.session.device.counters.changesCoalesced++
    else this.#pendingIndexes.push(index)
    this.#pendingValues[index] = value
    if (this.minIntervalMs === 0) {
      // No coalescing: each change goes out as it comes.
      this.flush(now)
      return
    }
    if (this.windowClosesAt === Infinity) {
      this.windowClosesAt = now + this.minIntervalMs
      this.arm()
    }
  }

  arm(): void {
    if (this.#ended) return
    const deadline = Math.min(this.windowClosesAt, this.lastNotifiedAt + this.maxIntervalMs)
    this.session.device.scheduler.arm(this.timer, deadline)
  }

  due(now: number): void {
    if (this.#ended) return
    if (this.hasPending && now >= this.windowClosesAt) this.flush(now)
    else if (now >= this.lastNotifiedAt + this.maxIntervalMs) {
      // A heartbeat time with changes pending sends them: they have waited at least minInterval since the last.
      if (this.hasPending) this.flush(now)
      else this.heartbeat(now)
    } else this.arm()
  }

  /** Sends the pending changes that differ from what was last notified (all of them without suppression). */
  flush(now: number): void {
    const session = this.session
    if (this.#ended) return
    if (!session.writable) {
      // Back-pressure: the changes wait (and go on coalescing) until the connection drains, due then at once
      // (with minInterval 0 no window was open to say so).
      if (this.windowClosesAt === Infinity) this.windowClosesAt = now
      session.blocked.add(this)
      return
    }
    const counters = session.device.counters
    const suppress = session.device.settings.bounceBackSuppression
    const list = this.feature.list
    let changes: Map<number, MashValue> | undefined
    for (const index of this.#pendingIndexes) {
      const value = this.#pendingValues[index]!
      this.#pendingValues[index] = undefined
      if (suppress && sameValue(this.#lastValues[index]!, value)) {
        counters.bounceBacksSuppressed++
        continue
      }
      changes ??= new Map()
      changes.set(list[index]!.id, value)
      this.#lastValues[index] = value
    }
    this.#pendingIndexes.length = 0
    this.windowClosesAt = Infinity
    if (changes !== undefined) {
      session.notify(this, changes)
      counters.notificationsSent++
      this.lastNotifiedAt = now
    }
    // Nothing left after suppression: nothing is sent, and the heartbeat keeps its time (the reference resets
    // it, which lets a stream of bounce-backs silence a subscription past maxInterval).
    this.arm()
  }

  heartbeat(now: number): void {
    const session = this.session
    if (this.#ended) return
    if (!session.writable) {
      session.blocked.add(this)
      return
    }
    session.notify(this, session.device.settings.fullHeartbeat ? this.values() : EMPTY_CHANGES)
    session.device.counters.heartbeatsSent++
    this.lastNotifiedAt = now
    this.arm()
  }

  end(): void {
    this.#ended = true
    this.session.device.scheduler.disarm(this.timer)
    this.feature.subscriptions.delete(this)
    this.session.blocked.delete(this)
  }
}

const EMPTY_CHANGES: ReadonlyMap<number, MashValue> = new Map()

export interface MashDeviceSessionEvents {
  /** The connection ended (error: why, when not with a MASH close); its subscriptions are gone. */
  close: [error: Error | undefined]
}

/** One controller's connection to a device: its requests answered, its subscriptions. */
export class MashDeviceSession extends EventEmitter<MashDeviceSessionEvents> {
  readonly device: MashDevice
  readonly #link: MashLink
  readonly #subscriptions = new Map<number, DeviceSubscription>()
  /** @internal Subscriptions whose notification waits for the connection to drain. */
  readonly blocked = new Set<DeviceSubscription>()
  #ended = false
  /** Requests whose application handler has not finished. */
  #handlersRunning = 0

  /** @internal */
  constructor(device: MashDevice, transport: SessionTransport, settings: MashLinkSettings) {
    super()
    this.device = device
    this.#link = new MashLink(transport, device.scheduler, settings, {
      request: (request) => this.#onRequest(request),
      drain: () => this.#onDrain(),
      ended: (error) => this.#onEnded(error),
    })
  }

  get transport(): SessionTransport {
    return this.#link.transport
  }

  get subscriptionCount(): number {
    return this.#subscriptions.size
  }

  /** @internal */
  get writable(): boolean {
    return this.#link.transport.writable
  }

  stats(): MashLinkStats {
    return structuredClone(this.#link.stats)
  }

  /** Closes the connection with a MASH close (type 3). */
  close(): void {
    this.#link.close()
  }

  /**
   * @internal Sends a notification; changes too many for one message go in several (each value fits one: the
   * device holds no value it could not send).
   */
  notify(subscription: DeviceSubscription, changes: ReadonlyMap<number, MashValue>): void {
    const { endpointId, featureId } = subscription.feature
    try {
      this.#link.send({ kind: 'notification', subscriptionId: subscription.id, endpointId, featureId, changes })
    } catch (error) {
      if (isTooLarge(error) && changes.size > 1) {
        const entries = [...changes]
        const half = entries.length >> 1
        this.notify(subscription, new Map(entries.slice(0, half)))
        this.notify(subscription, new Map(entries.slice(half)))
        return
      }
      this.device.counters.unsendableNotifications++
      this.#handlerError(error, { session: this, endpointId, featureId })
    }
  }

  #onDrain(): void {
    const now = this.device.scheduler.now()
    for (const subscription of [...this.blocked]) {
      if (!this.writable) return
      this.blocked.delete(subscription)
      subscription.due(now)
    }
  }

  #onEnded(error: Error | undefined): void {
    if (this.#ended) return
    this.#ended = true
    for (const subscription of this.#subscriptions.values()) subscription.end()
    this.device.counters.subscriptions -= this.#subscriptions.size
    this.#subscriptions.clear()
    this.device.sessionEnded(this)
    if (mashSessionCloseChannel.hasSubscribers) mashSessionCloseChannel.publish({ device: this.device, session: this, error } satisfies MashSessionCloseMessage)
    this.emit('close', error)
  }

  /** Refuses a request with a status and a text. */
  #refuse(messageId: number, status: number, text: string): void {
    this.#respond(messageId, status, undefined, text)
  }

  /** Answers a request (nothing once the connection ended); false when the answer had to be replaced by an error. */
  #respond(messageId: number, status: number, payload?: MashValue, text?: string): boolean {
    if (this.#ended) return false
    // The send may end the connection (a peer past maxHeldBytes): then nothing that follows is to be made.
    return this.#link.respond(messageId, status, payload, text) && !this.#ended
  }

  #onRequest(request: MashRequest): void {
    const { messageId, endpointId, featureId } = request
    switch (request.operation) {
      case MashOperation.subscribe:
        if (endpointId === 0 && featureId === 0) this.#unsubscribe(request)
        else this.#subscribe(request)
        return
      case MashOperation.read:
        // Answered at once unless an onRead handler is to see it first.
        if (this.device.onRead === undefined) this.#readNow(request)
        else this.#read(request).catch(surfaceLater)
        return
      case MashOperation.write:
        this.#write(request).catch(surfaceLater)
        return
      case MashOperation.invoke:
        this.#invoke(request).catch(surfaceLater)
        return
      default:
        this.#respond(messageId, MashStatus.UNSUPPORTED, undefined, `operation ${request.operation} is not one of read (1), write (2), subscribe (3), invoke (4)`)
    }
  }

  /** The feature a request names, or undefined once it answered INVALID_ENDPOINT / INVALID_FEATURE. */
  #featureOf(request: MashRequest): FeatureState | undefined {
    const feature = this.device.featureState(request.endpointId, request.featureId)
    if (feature !== undefined) return feature
    if (!this.device.hasEndpoint(request.endpointId)) this.#respond(request.messageId, MashStatus.INVALID_ENDPOINT, undefined, `no endpoint ${request.endpointId}`)
    else this.#respond(request.messageId, MashStatus.INVALID_FEATURE, undefined, `no feature ${request.featureId} on endpoint ${request.endpointId}`)
    return undefined
  }

  /**
   * Runs an application handler for a request, at most maxPendingHandlers at a time per connection (a
   * controller that pipelines requests to a slow handler gets BUSY, not an unbounded queue of promises).
   * undefined: the request was answered BUSY.
   */
  async #runHandler<T>(messageId: number, context: MashRequestContext, handler: () => T | Promise<T>): Promise<{ value: T } | { error: unknown } | undefined> {
    if (this.#handlersRunning >= this.device.settings.maxPendingHandlers) {
      this.device.counters.handlersRefused++
      this.#respond(messageId, MashStatus.BUSY, undefined, `${this.device.settings.maxPendingHandlers} requests of this connection are being handled already`)
      return undefined
    }
    this.#handlersRunning++
    try {
      return { value: await handler() }
    } catch (error) {
      return { error }
    } finally {
      this.#handlersRunning--
    }
  }

  /** The values a read asks for, or undefined once it was refused. */
  #readValues(request: MashRequest): { feature: FeatureState; values: Map<number, MashValue> } | undefined {
    const feature = this.#featureOf(request)
    if (feature === undefined) return undefined
    const parsed = parseReadPayload(request.payload)
    if (!parsed.ok) {
      this.#refuse(request.messageId, parsed.status, parsed.detail)
      return undefined
    }
    const values = new Map<number, MashValue>()
    if (parsed.value.length === 0) {
      for (const attribute of feature.list) if (attribute.readable) values.set(attribute.id, attribute.value)
    } else {
      for (const attributeId of parsed.value) {
        const attribute = feature.attributes.get(attributeId)
        if (attribute === undefined) {
          this.#refuse(request.messageId, MashStatus.INVALID_ATTRIBUTE, `no attribute ${attributeId}`)
          return undefined
        }
        if (!attribute.readable) {
          this.#refuse(request.messageId, MashStatus.WRITE_ONLY, `attribute ${attributeId} is write-only`)
          return undefined
        }
        values.set(attributeId, attribute.value)
      }
    }
    return { feature, values }
  }

  #readNow(request: MashRequest): void {
    const read = this.#readValues(request)
    if (read !== undefined) this.#respond(request.messageId, MashStatus.SUCCESS, read.values)
  }

  async #read(request: MashRequest): Promise<void> {
    const read = this.#readValues(request)
    if (read === undefined) return
    const { feature, values } = read
    const onRead = this.device.onRead
    if (onRead !== undefined) {
      const context: MashRequestContext = { session: this, endpointId: feature.endpointId, featureId: feature.featureId }
      const outcome = await this.#runHandler(request.messageId, context, () => onRead(values, context))
      if (outcome === undefined) return
      if ('error' in outcome) return this.#handlerFailed(request.messageId, outcome.error, context)
      if (outcome.value instanceof Map) {
        this.#respond(request.messageId, MashStatus.SUCCESS, outcome.value)
        return
      }
    }
    this.#respond(request.messageId, MashStatus.SUCCESS, values)
  }

  async #write(request: MashRequest): Promise<void> {
    const feature = this.#featureOf(request)
    if (feature === undefined) return
    const parsed = parseWritePayload(request.payload)
    if (!parsed.ok) return this.#refuse(request.messageId, parsed.status, parsed.detail)
    // Every value is checked before any is stored: a write is all or nothing.
    for (const [attributeId, value] of parsed.value) {
      const attribute = feature.attributes.get(attributeId)
      if (attribute === undefined) return this.#refuse(request.messageId, MashStatus.INVALID_ATTRIBUTE, `no attribute ${attributeId}`)
      if (!attribute.writable) return this.#refuse(request.messageId, MashStatus.READ_ONLY, `attribute ${attributeId} is read-only`)
      const problem = valueProblem(attribute, value)
      if (problem !== undefined) {
        return this.#refuse(request.messageId, problem.range ? MashStatus.CONSTRAINT_ERROR : MashStatus.INVALID_PARAMETER, `attribute ${attributeId} ${problem.text}`)
      }
    }
    const context: MashRequestContext = { session: this, endpointId: feature.endpointId, featureId: feature.featureId }
    let values = parsed.value
    const onWrite = this.device.onWrite
    if (onWrite !== undefined) {
      const outcome = await this.#runHandler(request.messageId, context, () => onWrite(values, context))
      if (outcome === undefined) return
      if ('error' in outcome) return this.#handlerFailed(request.messageId, outcome.error, context)
      if (outcome.value instanceof Map) values = outcome.value
    }
    const stored = new Map<number, MashValue>()
    for (const [attributeId, value] of values) {
      const attribute = feature.attributes.get(attributeId)
      // A value onWrite put in place of the controller's is checked as set() would.
      if (attribute === undefined || valueProblem(attribute, value) !== undefined) continue
      this.device.store(feature, attribute, value)
      stored.set(attributeId, value)
    }
    this.#respond(request.messageId, MashStatus.SUCCESS, stored)
    try {
      this.device.emit('write', stored, context)
    } catch (error) {
      surfaceLater(error)
    }
  }

  async #invoke(request: MashRequest): Promise<void> {
    const feature = this.#featureOf(request)
    if (feature === undefined) return
    const parsed = parseInvokePayload(request.payload)
    if (!parsed.ok) return this.#refuse(request.messageId, parsed.status, parsed.detail)
    const handler = feature.commands.get(parsed.value.commandId)
    if (handler === undefined) return this.#refuse(request.messageId, MashStatus.INVALID_COMMAND, `no command ${parsed.value.commandId}`)
    const context: MashRequestContext = { session: this, endpointId: feature.endpointId, featureId: feature.featureId }
    const outcome = await this.#runHandler(request.messageId, context, () => handler(parsed.value.params, context))
    if (outcome === undefined) return
    if ('error' in outcome) return this.#handlerFailed(request.messageId, outcome.error, context)
    if (this.#ended) return
    if (!this.#respond(request.messageId, MashStatus.SUCCESS, outcome.value) && !this.#ended) this.#handlerError(new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Command ${parsed.value.commandId} returned a result MASH cannot carry`), context)
  }

  #handlerFailed(messageId: number, error: unknown, context: MashRequestContext): void {
    // A refusal's status goes on the wire as a u8 that is no success; anything else is the handler's fault.
    if (error instanceof MashStatusError && Number.isInteger(error.status) && error.status >= 1 && error.status <= 255) {
      this.#respond(messageId, error.status, undefined, error.detail)
      return
    }
    this.#respond(messageId, MashStatus.BUSY, undefined, 'the device failed to handle the request')
    this.#handlerError(error, context)
  }

  /** An application's handler failed: its 'handlerError' listeners hear it, or else a process warning. */
  #handlerError(error: unknown, context: MashRequestContext): void {
    try {
      if (this.device.listenerCount('handlerError') > 0) this.device.emit('handlerError', error, context)
      else process.emitWarning(error instanceof Error ? error : new Error(String(error)), { code: 'VOLLEY_MASH_HANDLER' })
    } catch (thrown) {
      surfaceLater(thrown)
    }
  }

  #subscribe(request: MashRequest): void {
    const { messageId } = request
    const feature = this.#featureOf(request)
    if (feature === undefined) return
    const parsed = parseSubscribePayload(request.payload)
    if (!parsed.ok) return this.#refuse(messageId, parsed.status, parsed.detail)
    const settings = this.device.settings
    const { attributeIds } = parsed.value
    let minIntervalMs = parsed.value.minIntervalMs ?? MASH_DEFAULT_MIN_INTERVAL_MS
    let maxIntervalMs = parsed.value.maxIntervalMs ?? MASH_DEFAULT_MAX_INTERVAL_MS
    if (maxIntervalMs === 0) return this.#refuse(messageId, MashStatus.CONSTRAINT_ERROR, 'maxInterval must be above 0')
    if (minIntervalMs > maxIntervalMs) {
      if (!settings.autoCorrectIntervals) {
        return this.#refuse(messageId, MashStatus.CONSTRAINT_ERROR, `minInterval ${minIntervalMs} ms is above maxInterval ${maxIntervalMs} ms`)
      }
      ;[minIntervalMs, maxIntervalMs] = [maxIntervalMs, minIntervalMs]
    }
    if (maxIntervalMs < settings.minHeartbeatIntervalMs) {
      // A heartbeat every millisecond would be a flood that one request buys: the device sets a floor.
      return this.#refuse(messageId, MashStatus.CONSTRAINT_ERROR, `maxInterval must be at least ${settings.minHeartbeatIntervalMs} ms`)
    }
    if (this.#subscriptions.size >= settings.maxSubscriptions) {
      return this.#refuse(messageId, MashStatus.RESOURCE_EXHAUSTED, `at most ${settings.maxSubscriptions} subscriptions per connection`)
    }
    if (attributeIds.length > settings.maxAttributesPerSubscription) {
      return this.#refuse(messageId, MashStatus.RESOURCE_EXHAUSTED, `at most ${settings.maxAttributesPerSubscription} attributes per subscription`)
    }
    for (const attributeId of attributeIds) {
      const attribute = feature.attributes.get(attributeId)
      if (attribute === undefined) return this.#refuse(messageId, MashStatus.INVALID_ATTRIBUTE, `no attribute ${attributeId}`)
      if (!attribute.readable) return this.#refuse(messageId, MashStatus.WRITE_ONLY, `attribute ${attributeId} is write-only`)
    }
    const now = this.device.scheduler.now()
    const id = this.device.takeSubscriptionId((candidate) => this.#subscriptions.has(candidate))
    const subscription = new DeviceSubscription(id, this, feature, attributeIds, minIntervalMs, maxIntervalMs, now)
    // Priming: the current values, in the response, at once. The subscription is made only once its response
    // went: a priming past the limits of a message is RESOURCE_EXHAUSTED instead.
    if (!this.#respond(messageId, MashStatus.SUCCESS, subscribeResponsePayload(id, subscription.values()))) return
    this.#subscriptions.set(id, subscription)
    feature.subscriptions.add(subscription)
    this.device.counters.subscriptions++
    subscription.arm()
  }

  #unsubscribe(request: MashRequest): void {
    const parsed = parseUnsubscribePayload(request.payload)
    if (!parsed.ok) return this.#refuse(request.messageId, parsed.status, parsed.detail)
    const subscription = this.#subscriptions.get(parsed.value)
    if (subscription === undefined) return this.#refuse(request.messageId, MashStatus.INVALID_PARAMETER, 'subscription not found')
    subscription.end()
    this.#subscriptions.delete(parsed.value)
    this.device.counters.subscriptions--
    this.#respond(request.messageId, MashStatus.SUCCESS)
  }
}

