// One MASH connection as both roles see it: messages decoded and checked, control messages (ping, pong,
// close) handled here, the rest handed to the role (a controller takes responses and notifications, a
// device takes requests). Counts what it drops; never answers beyond what MASH says.
import { VolleyError } from '../../util/errors.ts'
import type { SessionTransport } from '../transport.ts'
import { Timer, type Scheduler } from '../timers.ts'
import { KeepAlive, type KeepAliveSettings } from './keepalive.ts'
import {
  MASH_MAX_MESSAGE_BYTES,
  MashControlType,
  MashStatus,
  decodeMessage,
  encodeMessage,
  errorPayload,
  type MashMessage,
  type MashNotification,
  type MashRequest,
  type MashResponse,
} from './wire.ts'

/** What a link counts: messages each way, and the ones it dropped, by cause. */
export interface MashLinkStats {
  messagesSent: number
  messagesReceived: number
  /** Requests answered with a status other than SUCCESS (the device's side). */
  errorResponses: number
  /**
   * Answers that could not be sent as made (past MASH's limits, or a value the device holds that CBOR cannot
   * carry): a short RESOURCE_EXHAUSTED or BUSY went instead.
   */
  unsendableAnswers: number
  dropped: {
    /** Not CBOR, not a map, a non-integer or non-finite key or value, a field of the wrong type or range. */
    malformed: number
    /** A response whose messageId no pending request has (timed out, aborted, or never asked). */
    unexpectedResponses: number
    /** A message of a kind this side does not take (a request at a controller, a response at a device). */
    unexpectedKinds: number
    /** A notification for a subscription this side does not hold (ended, or never made). */
    unknownSubscriptions: number
    /** A pong whose seq is not the pending ping's. */
    strayPongs: number
  }
  pingsSent: number
  missedPongs: number
  /** The latest ping's round trip, ms; -1 before the first pong. */
  latencyMs: number
}

/** The role on top of a link. */
export interface MashLinkRole {
  request?(request: MashRequest): void
  response?(response: MashResponse): boolean
  notification?(notification: MashNotification): boolean
  latency?(latencyMs: number): void
  /** The link ended: error says why when it was not an orderly close. Called once. */
  ended(error: Error | undefined): void
  /** The transport takes messages again. */
  drain?(): void
  /** An answer could not be sent as made (see respond()). */
  unsendable?(error: unknown): void
}

/** Whether an encode or a send failed for the size of what was sent (a value past MASH's limits, a message too large). */
export function isTooLarge(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ERR_MESSAGE_TOO_LARGE' || code === 'ERR_OUT_OF_RANGE'
}

export type MashLinkState = 'open' | 'closing' | 'closed'

export interface MashLinkSettings {
  keepAlive: KeepAliveSettings
  /** How long a close waits for the peer's echo before it ends the transport, ms. */
  closeTimeoutMs: number
}

export class MashLink {
  readonly transport: SessionTransport
  readonly #scheduler: Scheduler
  readonly #settings: MashLinkSettings
  readonly #role: MashLinkRole
  readonly #keepAlive: KeepAlive
  readonly #closeTimer = new Timer(() => this.transport.close())
  #state: MashLinkState = 'open'
  #endError: Error | undefined
  readonly stats: MashLinkStats = {
    messagesSent: 0,
    messagesReceived: 0,
    errorResponses: 0,
    unsendableAnswers: 0,
    dropped: { malformed: 0, unexpectedResponses: 0, unexpectedKinds: 0, unknownSubscriptions: 0, strayPongs: 0 },
    pingsSent: 0,
    missedPongs: 0,
    latencyMs: -1,
  }

  constructor(transport: SessionTransport, scheduler: Scheduler, settings: MashLinkSettings, role: MashLinkRole) {
    this.transport = transport
    this.#scheduler = scheduler
    this.#settings = settings
    this.#role = role
    this.#keepAlive = new KeepAlive(settings.keepAlive, scheduler, {
      sendPing: (seq) => {
        this.stats.pingsSent++
        this.send({ kind: 'control', type: MashControlType.ping, seq })
      },
      latency: (latencyMs) => {
        this.stats.latencyMs = latencyMs
        this.#role.latency?.(latencyMs)
      },
      timedOut: (missed) => {
        this.stats.missedPongs = missed
        this.#end(new VolleyError('ERR_KEEPALIVE_TIMED_OUT', `The peer answered none of the last ${missed} pings (each given ${settings.keepAlive.pongTimeoutMs} ms)`))
      },
    })
    transport.on('message', this.#onMessage)
    transport.on('drain', this.#onDrain)
    transport.on('close', this.#onClose)
    if (transport.closed) queueMicrotask(() => this.#onClose())
    else this.#keepAlive.start()
  }

  get state(): MashLinkState {
    return this.#state
  }

  get open(): boolean {
    return this.#state === 'open'
  }

  /** Why the link ended, when it did not end in order; undefined while it is up. */
  get endError(): Error | undefined {
    return this.#endError
  }

  /** Sends a message; false: the transport holds it (back-pressure) or the link is closed. */
  send(message: MashMessage): boolean {
    if (this.#state === 'closed') return false
    return this.sendEncoded(encodeMessage(message))
  }

  /** Sends a message the caller encoded (a request, encoded before it became pending). */
  sendEncoded(bytes: Uint8Array): boolean {
    if (this.#state === 'closed') return false
    this.stats.messagesSent++
    return this.transport.send(bytes)
  }

  /**
   * Answers a request. An answer that cannot be sent as made (past MASH's limits, a value CBOR cannot carry, a
   * connection below with smaller messages) is replaced by a short RESOURCE_EXHAUSTED (too large) or BUSY, and
   * reported to the role: false then.
   */
  respond(messageId: number, status: number, payload?: MashResponse['payload'], text?: string): boolean {
    try {
      this.#respond(messageId, status, payload, text)
      return true
    } catch (error) {
      if (this.#state === 'closed') return false
      this.stats.unsendableAnswers++
      const tooLarge = isTooLarge(error)
      this.#respond(
        messageId,
        tooLarge ? MashStatus.RESOURCE_EXHAUSTED : MashStatus.BUSY,
        undefined,
        tooLarge ? 'the answer would be past the limits of a MASH message' : 'the device could not encode its answer',
      )
      this.#role.unsendable?.(error)
      return false
    }
  }

  #respond(messageId: number, status: number, payload: MashResponse['payload'] | undefined, text: string | undefined): void {
    if (status !== MashStatus.SUCCESS) this.stats.errorResponses++
    // null is a value (a command's result): only undefined is no payload.
    const body = payload !== undefined ? payload : text !== undefined ? errorPayload(text) : undefined
    this.send(body === undefined ? { kind: 'response', messageId, status } : { kind: 'response', messageId, status, payload: body })
  }

  /**
   * Starts an orderly close: the close message (type 3), then the transport ends when the peer echoes it or
   * after closeTimeoutMs. The role ends at once (its requests fail with ERR_CONNECTION_CLOSED).
   */
  close(): void {
    if (this.#state !== 'open') return
    this.#state = 'closing'
    this.#keepAlive.stop()
    // Armed before the send: on a transport that delivers at once, the echo may end the link inside send().
    this.#scheduler.arm(this.#closeTimer, this.#scheduler.now() + this.#settings.closeTimeoutMs)
    this.send({ kind: 'control', type: MashControlType.close, seq: 0 })
    this.#roleEnded(undefined)
  }

  /** Ends the link and its transport now, for a reason (a keep-alive timeout, a frame out of bounds). */
  #end(error: Error | undefined): void {
    if (this.#state === 'closed') return
    this.#endError = error
    this.transport.close(error)
    this.#onClose(error)
  }

  readonly #onMessage = (data: Uint8Array): void => {
    if (this.#state === 'closed') return
    this.stats.messagesReceived++
    if (data.byteLength > MASH_MAX_MESSAGE_BYTES) {
      // §A.1: an oversized message is fatal; nothing is answered.
      this.stats.dropped.malformed++
      this.#end(new VolleyError('ERR_FRAME_SIZE', `A ${data.byteLength}-byte message came; MASH messages are 1 to ${MASH_MAX_MESSAGE_BYTES} bytes`))
      return
    }
    const decoded = decodeMessage(data)
    if (!decoded.ok) {
      this.stats.dropped.malformed++
      // A request whose id is known gets INVALID_PARAMETER (a duplicate key among them); anything else is dropped.
      if (decoded.kind === 'request' && decoded.messageId !== 0 && this.#state === 'open' && this.#role.request !== undefined) {
        this.respond(decoded.messageId, MashStatus.INVALID_PARAMETER, undefined, decoded.detail)
      }
      return
    }
    const message = decoded.message
    switch (message.kind) {
      case 'control':
        this.#control(message.type, message.seq)
        return
      case 'request':
        if (this.#state !== 'open') return // after a close, requests get no answer: the peer fails them itself
        if (this.#role.request === undefined) this.stats.dropped.unexpectedKinds++
        else this.#role.request(message)
        return
      case 'response':
        // After a close, answers and notifications belong to nothing: the controller may be on a new
        // connection whose ids start at 1 again.
        if (this.#state !== 'open') this.stats.dropped.unexpectedResponses++
        else if (this.#role.response === undefined) this.stats.dropped.unexpectedKinds++
        else if (!this.#role.response(message)) this.stats.dropped.unexpectedResponses++
        return
      case 'notification':
        if (this.#state !== 'open') this.stats.dropped.unknownSubscriptions++
        else if (this.#role.notification === undefined) this.stats.dropped.unexpectedKinds++
        else if (!this.#role.notification(message)) this.stats.dropped.unknownSubscriptions++
        return
    }
  }

  #control(type: number, seq: number): void {
    switch (type) {
      case MashControlType.ping:
        if (this.#state === 'open') this.send({ kind: 'control', type: MashControlType.pong, seq })
        return
      case MashControlType.pong:
        if (!this.#keepAlive.pong(seq)) this.stats.dropped.strayPongs++
        return
      case MashControlType.close:
        if (this.#state === 'closing') {
          // The echo of our close: the exchange is done.
          this.transport.close()
          return
        }
        if (this.#state === 'open') {
          this.#state = 'closing'
          this.#keepAlive.stop()
          // The closer ends the transport; should it not, this side does after the timeout.
          this.#scheduler.arm(this.#closeTimer, this.#scheduler.now() + this.#settings.closeTimeoutMs)
          this.send({ kind: 'control', type: MashControlType.close, seq: 0 })
          this.#roleEnded(undefined)
        }
        return
      default:
        this.stats.dropped.malformed++
    }
  }

  readonly #onDrain = (): void => {
    if (this.#state === 'open') this.#role.drain?.()
  }

  readonly #onClose = (error?: Error): void => {
    if (this.#state === 'closed') return
    const wasOpen = this.#state === 'open'
    this.#state = 'closed'
    this.#endError ??= wasOpen ? (error ?? new VolleyError('ERR_CONNECTION_CLOSED', 'The connection ended without a MASH close')) : undefined
    this.#keepAlive.stop()
    this.#scheduler.disarm(this.#closeTimer)
    this.transport.off('message', this.#onMessage)
    this.transport.off('drain', this.#onDrain)
    this.transport.off('close', this.#onClose)
    if (wasOpen) this.#roleEnded(this.#endError)
  }

  #roleEndedCalled = false
  #roleEnded(error: Error | undefined): void {
    if (this.#roleEndedCalled) return
    this.#roleEndedCalled = true
    this.#role.ended(error)
  }
}
