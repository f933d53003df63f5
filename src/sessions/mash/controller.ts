// The controller side of MASH (seed 003 §2, §3): requests with message ids and timeouts, subscriptions and
// their notifications, over one connection at a time. A new connection (after a reconnect) is attach()ed;
// the subscriptions of the last one are then stale until resubscribe() makes them again, with a new priming.
import { EventEmitter } from 'node:events'
import { VolleyError, VolleyTypeError, abortedError, checkSignal, describe, surfaceLater } from '../../util/errors.ts'
import { booleanOption, checkOptions, integerOption } from '../../util/options.ts'
import { ConnectionManager, type ManagedConnection } from '../connection-manager.ts'
import type { SessionTransport } from '../transport.ts'
import { Timer, type Scheduler } from '../timers.ts'
import { MashStatusError } from './errors.ts'
import { MashLink, type MashLinkSettings, type MashLinkStats } from './link.ts'
import { linkSettings, type MashLinkOptions } from './settings.ts'
import {
  MashOperation,
  MashStatus,
  encodeMessage,
  errorText,
  invokePayload,
  parseSubscribeResponsePayload,
  readPayload,
  subscribePayload,
  unsubscribePayload,
  type MashNotification,
  type MashResponse,
  type MashValue,
} from './wire.ts'

// The seed's request timeout (TC-PROTO-002); the reference code later chose 10 s.
/** How long a request waits for its response by default, ms (30 s): requestTimeoutMs's default. */
export const MASH_REQUEST_TIMEOUT_MS = 30_000

export interface MashControllerOptions extends MashLinkOptions {
  /** How long a request waits for its response, ms (default 30,000). */
  requestTimeoutMs?: number | undefined
  /**
   * A ConnectionManager whose connections the controller runs on: each new one is attached as it comes
   * (reconnects with backoff are the manager's). Without it, attach() gives the controller its connections.
   */
  connection?: ManagedConnection | undefined
  /**
   * After each reconnect, make the stale subscriptions again (resubscribe()); failures are emitted as
   * 'resubscribeFailed'. Default false: as in MASH, subscriptions do not come back by themselves.
   */
  resubscribe?: boolean | undefined
}

export interface MashRequestOptions {
  signal?: AbortSignal | undefined
  /** This request's timeout, ms (default: the controller's requestTimeoutMs). */
  timeoutMs?: number | undefined
}

export interface MashSubscribeOptions extends MashRequestOptions {
  /** The attributes to follow; empty or absent: all the feature's readable ones. */
  attributeIds?: readonly number[] | undefined
  /** Shortest time between notifications, ms (the device's default when absent: 1,000). */
  minIntervalMs?: number | undefined
  /** Longest time without one (the heartbeat), ms (the device's default when absent: 60,000). */
  maxIntervalMs?: number | undefined
}

export interface MashSubscriptionEvents {
  /** changes: the attributes that changed (all values on priming and full heartbeats; none on an empty one). */
  notification: [changes: ReadonlyMap<number, MashValue>, priming: boolean]
}

/**
 * Where a subscription is: subscribing (its subscribe is in flight), active (notifications come), stale (its
 * connection ended: resubscribe() makes it again), ending (its unsubscribe is in flight), ended.
 */
export type MashSubscriptionState = 'subscribing' | 'active' | 'stale' | 'ending' | 'ended'

/** A subscription as the controller holds it: it lives on across reconnects (stale until resubscribed). */
export class MashSubscription extends EventEmitter<MashSubscriptionEvents> {
  /** The latest value of each attribute, from priming and notifications. */
  readonly values = new Map<number, MashValue>()
  readonly endpointId: number
  readonly featureId: number
  readonly attributeIds: readonly number[]
  readonly minIntervalMs: number | undefined
  readonly maxIntervalMs: number | undefined
  #id = 0
  #state: MashSubscriptionState = 'subscribing'

  /** @internal */
  constructor(endpointId: number, featureId: number, options: MashSubscribeOptions) {
    super()
    this.endpointId = endpointId
    this.featureId = featureId
    this.attributeIds = Object.freeze([...(options.attributeIds ?? [])])
    this.minIntervalMs = options.minIntervalMs
    this.maxIntervalMs = options.maxIntervalMs
  }

  /** The device's id for it on the current connection; 0 unless active (or ending). */
  get id(): number {
    return this.#id
  }

  get state(): MashSubscriptionState {
    return this.#state
  }

  /** @internal */
  moveTo(state: MashSubscriptionState, id = state === 'active' || state === 'ending' ? this.#id : 0): void {
    this.#state = state
    this.#id = id
  }
}

export interface MashControllerEvents {
  notification: [subscription: MashSubscription, changes: ReadonlyMap<number, MashValue>, priming: boolean]
  /** A keep-alive round trip, ms. */
  latency: [latencyMs: number]
  /** A connection was attached. */
  connect: []
  /** The connection ended: error says why when it did not end with a MASH close. */
  disconnect: [error: Error | undefined]
  /** With the resubscribe option: a subscription the device refused to make again after a reconnect. */
  resubscribeFailed: [subscription: MashSubscription, error: Error]
}

interface PendingRequest {
  readonly id: number
  readonly operation: number
  readonly what: string
  readonly resolve: (response: MashResponse) => void
  readonly reject: (error: Error) => void
  readonly timer: Timer
  readonly signal: AbortSignal | undefined
  readonly onAbort: (() => void) | undefined
  /**
   * Runs as a SUCCESS response is dispatched, before the promise settles: state that later messages of the same
   * batch depend on (a subscription's id, for its first notification) is in place for them.
   */
  readonly accept: ((response: MashResponse) => void) | undefined
}

const NO_OPTIONS: MashSubscribeOptions = Object.freeze({})
const requestOptionNames: ReadonlySet<string> = new Set(['signal', 'timeoutMs'])
const subscribeOptionNames: ReadonlySet<string> = new Set(['signal', 'timeoutMs', 'attributeIds', 'minIntervalMs', 'maxIntervalMs'])
const controllerOptionNames: ReadonlySet<string> = new Set(['requestTimeoutMs', 'keepAlive', 'closeTimeoutMs', 'scheduler', 'connection', 'resubscribe'])

/**
 * The controller side of MASH: requests (read, write, invoke) with timeouts, and subscriptions with their
 * notifications, over one connection at a time. After a reconnect its subscriptions are stale until
 * resubscribe() (or the resubscribe option) makes them again.
 */
export class MashController extends EventEmitter<MashControllerEvents> {
  readonly #scheduler: Scheduler
  readonly #linkSettings: MashLinkSettings
  readonly #requestTimeoutMs: number
  #link: MashLink | null = null
  readonly #pending = new Map<number, PendingRequest>()
  /** The next request's id: per connection, from 1, wrapping 0xFFFFFFFF → 1 (0 is the notifications'). */
  #nextId = 1
  /** Active (and ending) subscriptions by their id on the current connection. */
  readonly #subscriptions = new Map<number, MashSubscription>()
  readonly #stale = new Set<MashSubscription>()
  #closed = false
  readonly #connection: ManagedConnection | undefined
  readonly #resubscribe: boolean
  readonly #onConnected = (next: SessionTransport): void => {
    if (this.#closed) return
    this.attach(next)
    if (this.#resubscribe && this.#stale.size > 0) void this.#resubscribeAll()
  }

  /**
   * Runs on `transport` when given one (or on the connections of the `connection` option); else attach() gives
   * it its connections. `new MashController(options)` is `new MashController(null, options)`.
   */
  constructor(transport?: SessionTransport | MashControllerOptions | null, options: MashControllerOptions = {}) {
    super()
    if (transport !== undefined && transport !== null && !isTransportLike(transport)) {
      options = transport
      transport = null
    }
    checkOptions('MashController options', options, controllerOptionNames)
    const { scheduler, link } = linkSettings(options)
    this.#scheduler = scheduler
    this.#linkSettings = link
    this.#requestTimeoutMs = integerOption('requestTimeoutMs', options.requestTimeoutMs, MASH_REQUEST_TIMEOUT_MS, 1, 2 ** 31 - 1)
    this.#resubscribe = booleanOption('resubscribe', options.resubscribe)
    const { connection } = options
    this.#connection = connection
    if (connection !== undefined) {
      if (!(connection instanceof ConnectionManager)) {
        throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "connection" option must be a ConnectionManager. Received ${describe(connection)}`)
      }
      if (transport !== undefined && transport !== null) {
        throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'Give a MashController a transport or a "connection" option, not both')
      }
      connection.on('connected', this.#onConnected)
      transport = connection.transport
    }
    if (transport !== undefined && transport !== null) this.attach(transport as SessionTransport)
  }

  async #resubscribeAll(): Promise<void> {
    const { failed } = await this.resubscribe()
    for (const { subscription, error } of failed) this.emit('resubscribeFailed', subscription, error)
  }

  /** Whether a connection is attached and open. */
  get connected(): boolean {
    return this.#link?.open ?? false
  }

  /** Requests awaiting their response. */
  get pendingRequests(): number {
    return this.#pending.size
  }

  /** Subscriptions whose connection ended, to be made again by resubscribe(). */
  get staleSubscriptions(): readonly MashSubscription[] {
    return [...this.#stale]
  }

  /** The current connection's counters (null before the first). */
  stats(): MashLinkStats | null {
    return this.#link === null ? null : structuredClone(this.#link.stats)
  }

  /**
   * Runs on a new connection: message ids start again at 1. The previous connection must have ended or be
   * closing (ERR_INVALID_STATE while it is open: one connection at a time); a closing one finishes its close
   * on its own.
   */
  attach(transport: SessionTransport): void {
    if (this.#closed) throw new VolleyError('ERR_CONNECTION_CLOSED', 'The MashController was closed: attach() after close()')
    if (!isTransportLike(transport)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "transport" argument must be a SessionTransport. Received ${describe(transport)}`)
    }
    if (this.#link?.open === true) {
      throw new VolleyError('ERR_INVALID_STATE', 'The MashController is on a connection still open: close it (or wait for its end) before attach()')
    }
    this.#nextId = 1
    this.#link = new MashLink(transport, this.#scheduler, this.#linkSettings, {
      response: (response) => this.#onResponse(response),
      notification: (notification) => this.#onNotification(notification),
      latency: (latencyMs) => this.emit('latency', latencyMs),
      ended: (error) => this.#onEnded(error),
    })
    if (this.#link.open && !transport.closed) this.emit('connect')
  }

  /** Reads attributes (all the feature's readable ones when attributeIds is empty). */
  async read(endpointId: number, featureId: number, attributeIds: readonly number[] = [], options: MashRequestOptions = NO_OPTIONS): Promise<Map<number, MashValue>> {
    const response = await this.#request(MashOperation.read, endpointId, featureId, readPayload(attributeIds), options, 'read')
    return attributeMap(response.payload)
  }

  /** Writes attributes; resolves with the values the device holds after the write. */
  async write(
    endpointId: number,
    featureId: number,
    values: ReadonlyMap<number, MashValue> | Readonly<Record<number, MashValue>>,
    options: MashRequestOptions = NO_OPTIONS,
  ): Promise<Map<number, MashValue>> {
    const payload = values instanceof Map ? new Map(values as ReadonlyMap<number, MashValue>) : attributeMapOf(values as Readonly<Record<number, MashValue>>)
    const response = await this.#request(MashOperation.write, endpointId, featureId, payload, options, 'write')
    return attributeMap(response.payload)
  }

  /** Invokes a command; resolves with its result (undefined when it has none). */
  async invoke(
    endpointId: number,
    featureId: number,
    commandId: number,
    params?: ReadonlyMap<string, MashValue> | Readonly<Record<string, MashValue>>,
    options: MashRequestOptions = NO_OPTIONS,
  ): Promise<MashValue | undefined> {
    const response = await this.#request(MashOperation.invoke, endpointId, featureId, invokePayload(commandId, params), options, 'invoke')
    // A response to messages 1 to 3 carries an empty map where there is no result (the wire's filler, so that
    // it is not read as a control message): no result either way.
    if (response.messageId <= 3 && response.payload instanceof Map && response.payload.size === 0) return undefined
    return response.payload
  }

  /** Subscribes; resolves once the device took it, with the priming values in subscription.values. */
  async subscribe(endpointId: number, featureId: number, options: MashSubscribeOptions = NO_OPTIONS): Promise<MashSubscription> {
    checkOptions('subscribe() options', options, subscribeOptionNames)
    const subscription = new MashSubscription(endpointId, featureId, options)
    try {
      await this.#subscribe(subscription, options)
    } catch (error) {
      subscription.moveTo('ended')
      throw error
    }
    return subscription
  }

  /**
   * Ends a subscription: at once here (its notifications are no longer taken), and at the device, which the
   * promise waits for. A stale subscription just ends.
   */
  async unsubscribe(subscription: MashSubscription, options: MashRequestOptions = NO_OPTIONS): Promise<void> {
    if (!(subscription instanceof MashSubscription)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "subscription" argument must be a MashSubscription. Received ${describe(subscription)}`)
    }
    switch (subscription.state) {
      case 'ended':
      case 'ending':
        return
      case 'stale':
      case 'subscribing':
        // Not (or not yet) at the device: a resubscribe in flight finds it ended and unsubscribes it there.
        this.#stale.delete(subscription)
        subscription.moveTo('ended')
        return
      case 'active':
        break
    }
    const id = subscription.id
    // Checked before anything changes: a call refused here leaves the subscription as it was.
    if (options !== NO_OPTIONS) checkOptions('unsubscribe() options', options, requestOptionNames)
    checkSignal(options.signal)
    if (options.signal?.aborted === true) throw abortedError('The unsubscribe was aborted', options.signal)
    subscription.moveTo('ending')
    this.#subscriptions.delete(id)
    try {
      // Unsubscribe is a Subscribe to endpoint 0, feature 0 (§A.2).
      await this.#request(MashOperation.subscribe, 0, 0, unsubscribePayload(id), options, 'unsubscribe')
    } catch (error) {
      // A connection that ended took the subscription with it at the device: it is gone either way.
      if (!(error instanceof VolleyError && error.code === 'ERR_CONNECTION_CLOSED')) throw error
    } finally {
      subscription.moveTo('ended')
    }
  }

  // Seed 003 §6.3.
  /**
   * Makes the stale subscriptions again on the current connection (in MASH they do not come back by
   * themselves); each gets a new id and a new priming. One resubscribe per subscription at a time: those
   * already being made again are left to the call making them.
   */
  async resubscribe(options: MashRequestOptions = NO_OPTIONS): Promise<{ resubscribed: MashSubscription[]; failed: { subscription: MashSubscription; error: Error }[] }> {
    const stale = [...this.#stale]
    for (const subscription of stale) {
      this.#stale.delete(subscription)
      subscription.moveTo('subscribing')
    }
    const results = await Promise.allSettled(stale.map((subscription) => this.#subscribe(subscription, options)))
    const resubscribed: MashSubscription[] = []
    const failed: { subscription: MashSubscription; error: Error }[] = []
    results.forEach((result, index) => {
      const subscription = stale[index]!
      if (result.status === 'fulfilled') {
        resubscribed.push(subscription)
        return
      }
      failed.push({ subscription, error: result.reason as Error })
      // Refused or cut off: stale again, to be tried later (unless unsubscribe() or close() ended it meanwhile).
      if (subscription.state === 'subscribing' && this.#closed) subscription.moveTo('ended')
      else if (subscription.state === 'subscribing') {
        subscription.moveTo('stale')
        this.#stale.add(subscription)
      }
    })
    return { resubscribed, failed }
  }

  /**
   * Closes the connection with a MASH close (type 3), the peer echoing it; pending requests fail (a write or
   * an invoke with ERR_OUTCOME_UNKNOWN) and later ones reject with ERR_CONNECTION_CLOSED; subscriptions end.
   * With the `connection` option, the manager is closed too (it reconnects no more). Resolves when the
   * transport has ended.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#closed = true
    const link = this.#link
    const ended =
      link === null || link.state === 'closed' || link.transport.closed
        ? Promise.resolve()
        : new Promise<void>((resolve) => link.transport.once('close', () => resolve()))
    link?.close()
    for (const subscription of [...this.#stale, ...this.#subscriptions.values()]) subscription.moveTo('ended')
    this.#stale.clear()
    this.#subscriptions.clear()
    if (this.#connection !== undefined) {
      // The close went out; the manager ends the connection now: were it to wait for the echo, it would
      // take the end for a loss and start a reconnect.
      this.#connection.off('connected', this.#onConnected)
      this.#connection.close()
    }
    return ended
  }

  async #subscribe(subscription: MashSubscription, options: MashRequestOptions): Promise<void> {
    const payload = subscribePayload({
      attributeIds: subscription.attributeIds,
      minIntervalMs: subscription.minIntervalMs,
      maxIntervalMs: subscription.maxIntervalMs,
    })
    let malformed: MashStatusError | undefined
    await this.#request(MashOperation.subscribe, subscription.endpointId, subscription.featureId, payload, options, 'subscribe', (response) => {
      const parsed = parseSubscribeResponsePayload(response.payload)
      if (!parsed.ok) {
        malformed = new MashStatusError(parsed.status, parsed.detail, 'subscribe (its response was malformed)')
        return
      }
      const { subscriptionId, currentValues } = parsed.value
      if (this.#subscriptions.has(subscriptionId)) {
        // A device that gives an id in use would orphan the subscription holding it.
        malformed = new MashStatusError(MashStatus.INVALID_PARAMETER, `subscription id ${subscriptionId} is in use already`, 'subscribe (its response was malformed)')
        return
      }
      if (subscription.state !== 'subscribing') {
        // Unsubscribed while its subscribe was in flight: end it at the device too.
        void this.#request(MashOperation.subscribe, 0, 0, unsubscribePayload(subscriptionId), {}, 'unsubscribe').catch(() => {})
        return
      }
      // Registered as the response is dispatched: a notification in the same batch finds it.
      subscription.moveTo('active', subscriptionId)
      this.#subscriptions.set(subscriptionId, subscription)
      subscription.values.clear()
      for (const [attribute, value] of currentValues) subscription.values.set(attribute, value)
      this.#notify(subscription, currentValues, true)
    })
    if (malformed !== undefined) throw malformed
    if (subscription.state === 'ended') {
      throw new VolleyError('ERR_CONNECTION_CLOSED', 'The subscription was ended (unsubscribe() or close()) before the device took it')
    }
  }

  #request(
    operation: number,
    endpointId: number,
    featureId: number,
    payload: MashValue | undefined,
    options: MashRequestOptions,
    what: string,
    accept?: (response: MashResponse) => void,
  ): Promise<MashResponse> {
    // A call without options (the common one) passes the shared empty object: nothing to check.
    if (options !== NO_OPTIONS) checkOptions(`${what}() options`, options, what === 'subscribe' ? subscribeOptionNames : requestOptionNames)
    const { signal } = options
    checkSignal(signal)
    const timeoutMs = integerOption('timeoutMs', options.timeoutMs, this.#requestTimeoutMs, 1, 2 ** 31 - 1)
    const link = this.#link
    if (this.#closed || link === null || !link.open) {
      return Promise.reject(new VolleyError('ERR_CONNECTION_CLOSED', `Cannot ${what}: ${this.#closed ? 'the MashController was closed' : 'no connection is open'}`))
    }
    if (signal?.aborted === true) return Promise.reject(abortedError(`The ${what} was aborted`, signal))
    const id = this.#takeId()
    // Encoded before anything is pending: a value past MASH's limits throws here, for this call alone.
    const bytes = encodeMessage(
      payload === undefined
        ? { kind: 'request', messageId: id, operation, endpointId, featureId }
        : { kind: 'request', messageId: id, operation, endpointId, featureId, payload },
    )
    return new Promise<MashResponse>((resolve, reject) => {
      const onAbort = signal === undefined ? undefined : (): void => this.#fail(id, abortedError(`The ${what} was aborted`, signal))
      const timer = new Timer(() =>
        this.#fail(id, new VolleyError('ERR_REQUEST_TIMED_OUT', `The device did not answer the ${what} (message ${id}) within ${timeoutMs} ms`)),
      )
      this.#pending.set(id, { id, operation, what, resolve, reject, timer, signal, onAbort, accept })
      this.#scheduler.arm(timer, this.#scheduler.now() + timeoutMs)
      if (onAbort !== undefined) signal!.addEventListener('abort', onAbort, { once: true })
      try {
        link.sendEncoded(bytes)
      } catch (error) {
        // The connection below refused it (a Volley peer whose messages are smaller than MASH's): nothing waits.
        this.#fail(id, error as Error)
      }
    })
  }

  #takeId(): number {
    for (;;) {
      const id = this.#nextId
      this.#nextId = followingMessageId(id)
      // After a wrap, an id still pending (a request 4 billion requests old) is skipped, not reused.
      if (!this.#pending.has(id)) return id
    }
  }

  /** @internal For tests of the wrap: the id the next request takes. */
  set nextMessageId(id: number) {
    this.#nextId = id
  }

  #settle(id: number): PendingRequest | undefined {
    const pending = this.#pending.get(id)
    if (pending === undefined) return undefined
    this.#pending.delete(id)
    this.#scheduler.disarm(pending.timer)
    if (pending.onAbort !== undefined) pending.signal!.removeEventListener('abort', pending.onAbort)
    return pending
  }

  #fail(id: number, error: Error): void {
    this.#settle(id)?.reject(error)
  }

  #onResponse(response: MashResponse): boolean {
    const pending = this.#settle(response.messageId)
    if (pending === undefined) return false
    if (response.status !== MashStatus.SUCCESS) {
      pending.reject(new MashStatusError(response.status, errorText(response.payload), pending.what))
      return true
    }
    try {
      pending.accept?.(response)
    } catch (error) {
      // A priming listener that threw: the request still settles, and the error surfaces as an uncaught one.
      surfaceLater(error)
    }
    pending.resolve(response)
    return true
  }

  #onNotification(notification: MashNotification): boolean {
    const subscription = this.#subscriptions.get(notification.subscriptionId)
    if (subscription === undefined || subscription.state !== 'active' || subscription.endpointId !== notification.endpointId || subscription.featureId !== notification.featureId) {
      return false
    }
    for (const [attribute, value] of notification.changes) subscription.values.set(attribute, value)
    this.#notify(subscription, notification.changes, false)
    return true
  }

  #notify(subscription: MashSubscription, changes: ReadonlyMap<number, MashValue>, priming: boolean): void {
    subscription.emit('notification', changes, priming)
    this.emit('notification', subscription, changes, priming)
  }

  #onEnded(error: Error | undefined): void {
    const cause = error
    // Subscriptions first: a pending request's rejection handler that looks at them sees them stale.
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.state === 'ending') {
        subscription.moveTo('ended')
        continue
      }
      subscription.moveTo('stale')
      this.#stale.add(subscription)
    }
    this.#subscriptions.clear()
    for (const pending of [...this.#pending.values()]) {
      // A read or a subscribe can simply be asked again; a write or an invoke may or may not have been done.
      const unknown = pending.operation === MashOperation.write || pending.operation === MashOperation.invoke
      this.#fail(
        pending.id,
        unknown
          ? new VolleyError('ERR_OUTCOME_UNKNOWN', `The connection ended while the ${pending.what} (message ${pending.id}) was in flight: the device may or may not have done it`, { cause })
          : new VolleyError('ERR_CONNECTION_CLOSED', `The connection ended before the device answered the ${pending.what} (message ${pending.id})`, { cause }),
      )
    }
    this.emit('disconnect', error)
  }
}

function isTransportLike(value: unknown): value is SessionTransport {
  const candidate = value as Partial<SessionTransport> | null
  return typeof value === 'object' && candidate !== null && typeof candidate.send === 'function' && typeof candidate.on === 'function'
}

/** The message id after `id`: u32, wrapping 0xFFFFFFFF → 1 (0 is the notifications'). */
export function followingMessageId(id: number): number {
  return id >= 0xffff_ffff ? 1 : id + 1
}

/** A response payload of attribute values: {attributeId: value}; anything else is no values. */
function attributeMap(payload: MashValue | undefined): Map<number, MashValue> {
  const values = new Map<number, MashValue>()
  if (!(payload instanceof Map)) return values
  for (const [key, value] of payload) if (typeof key === 'number') values.set(key, value)
  return values
}

function attributeMapOf(values: Readonly<Record<number, MashValue>>): Map<number, MashValue> {
  if (typeof values !== 'object' || values === null) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "values" argument must be a Map or an object of attribute id → value. Received ${describe(values)}`)
  }
  const map = new Map<number, MashValue>()
  for (const [key, value] of Object.entries(values)) {
    const id = Number(key)
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Attribute ids are integers from 0 to 65535. Received '${key}'`)
    map.set(id, value)
  }
  return map
}
