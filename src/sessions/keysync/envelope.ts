// The signed datagram of the SAE key sync (research §D.1), the reference's SignedMessage: one UDP datagram of
// UTF-8 JSON {"payload","signature","sender_sae_id","public_key","type"}, in that order and compact, as
// pydantic 2 writes it. payload is base64 of the message's JSON bytes; signature is base64 RSA-PSS (MGF1-SHA256,
// SHA-256; salt of the maximum length when signing, of any length when verifying) over SHA-256(those bytes):
// the 32-byte digest is the signed message, so PSS hashes it once more. The reference verifies with the key the
// datagram carries; we verify with the key pinned for sender_sae_id, so a datagram signed by anyone else,
// however self-consistent, is never accepted.
import { constants, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, KeyObject } from 'node:crypto'
import { KEYSYNC_TIMESTAMP_WINDOW_MS } from './settings.ts'

/** The reference's receive buffer (SyncConfig.max_message_size): a longer datagram is cut there, so never sent. */
export const KEYSYNC_MAX_DATAGRAM_BYTES = 8192
/** The smallest RSA modulus we pin or sign with, bits (the reference signs with whatever its certificate holds). */
export const KEYSYNC_MIN_RSA_BITS = 2048
/** How much later than timestamp + window a message id is still remembered: clocks of the two layers may differ. */
export const KEYSYNC_REPLAY_MARGIN_MS = 300_000
/** How many message ids a verifier remembers per sender by default. */
export const KEYSYNC_REPLAY_CAPACITY = 4096

/** The envelope's `type` values: the reference writes UNKNOWN for rotation_completed and every cleanup_* message. */
export type EnvelopeType = 'NOTIFY' | 'NOTIFY-ACK' | 'SYNC-CONFIRM' | 'ERROR' | 'UNKNOWN'

/** The `type` the reference puts on the envelope of a message of `messageType` (receivers ignore it). */
export function envelopeTypeFor(messageType: string): EnvelopeType {
  switch (messageType) {
    case 'key_notification':
      return 'NOTIFY'
    case 'key_acknowledgment':
      return 'NOTIFY-ACK'
    case 'sync_confirmation':
      return 'SYNC-CONFIRM'
    case 'error':
      return 'ERROR'
    default:
      return 'UNKNOWN'
  }
}

export interface EnvelopeSigner {
  saeId: string
  /** An RSA private key of at least 2048 bits. */
  privateKey: KeyObject
  /** The SubjectPublicKeyInfo PEM of privateKey's public half, as carried in the envelope's public_key. */
  publicKeyPem: string
}

export interface SaeKeyPair {
  privateKey: KeyObject
  publicKeyPem: string
}

/** A new RSA-2048 key pair (e = 65537), the size of the reference's SAE certificates' keys. */
export function generateSaeKeyPair(): SaeKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 })
  return { privateKey, publicKeyPem: spkiPem(publicKey) }
}

/**
 * An RSA public key from a SubjectPublicKeyInfo PEM or from an X.509 certificate PEM (the reference takes its
 * own key from its certificate). Throws TypeError for anything else or a modulus under 2048 bits.
 */
export function loadPublicKey(pem: string | Uint8Array): KeyObject {
  const key = createPublicKey(typeof pem === 'string' ? pem : { key: Buffer.from(pem), format: 'pem' })
  checkRsa(key)
  return key
}

/** An RSA private key from PEM (PKCS#8 or PKCS#1, unencrypted). Throws TypeError for anything else. */
export function loadPrivateKey(pem: string | Uint8Array): KeyObject {
  const key = createPrivateKey(typeof pem === 'string' ? pem : { key: Buffer.from(pem), format: 'pem' })
  checkRsa(key)
  return key
}

/** The SubjectPublicKeyInfo PEM of a key or of a private key's public half, with its trailing newline. */
export function publicKeyPemOf(key: KeyObject): string {
  return spkiPem(key.type === 'private' ? createPublicKey(key) : key)
}

/**
 * The datagram carrying `payloadJson` (a message's JSON, sent byte for byte) signed by `signer`, with `type` on
 * the envelope (see envelopeTypeFor). Throws TypeError when the payload is not a JSON object with a string
 * message_id and an integer timestamp (the verifier's own conditions), when the key is not RSA of 2048 bits or
 * more or publicKeyPem is not its public half, and RangeError when the datagram would exceed 8192 bytes.
 */
export function signEnvelope(payloadJson: string, signer: EnvelopeSigner, type: string): Uint8Array {
  if (typeof payloadJson !== 'string' || loneSurrogate.test(payloadJson)) throw new TypeError('payloadJson must be a well-formed string')
  if (innerFields(parseObject(payloadJson)) === undefined) throw new TypeError('payloadJson must be a JSON object with a string message_id and an integer timestamp')
  const { privateKey } = signer
  if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private') throw new TypeError('signer.privateKey must be a private KeyObject')
  checkRsa(privateKey)
  if (derivedPem(privateKey) !== signer.publicKeyPem) throw new TypeError("signer.publicKeyPem is not the private key's public half")
  const payload = Buffer.from(payloadJson, 'utf8')
  const signature = sign('sha256', sha256(payload), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN })
  const datagram = Buffer.from(
    JSON.stringify({
      payload: payload.toString('base64'),
      signature: signature.toString('base64'),
      sender_sae_id: signer.saeId,
      public_key: signer.publicKeyPem,
      type,
    }),
    'utf8',
  )
  if (datagram.length > KEYSYNC_MAX_DATAGRAM_BYTES) throw new RangeError(`the datagram is ${datagram.length} bytes, over ${KEYSYNC_MAX_DATAGRAM_BYTES}`)
  // A copy: Buffer.from may hand out a slice of its shared pool, whose .buffer holds other bytes.
  return new Uint8Array(datagram)
}

export type EnvelopeDropReason = 'oversized' | 'malformed' | 'unpinned' | 'signature' | 'replayed'

export interface EnvelopeVerifierOptions {
  /** Each peer's SAE id and its RSA public key (a KeyObject, an SPKI PEM or a certificate PEM). */
  pinnedPeers: ReadonlyMap<string, KeyObject | string>
  /** Longer datagrams are dropped unread (default 8192, the reference's receive buffer). */
  maxDatagramBytes?: number
  /** How many message ids are remembered per sender (default 4096). */
  replayCapacity?: number
  /** The timestamp window the layer above enforces, either way (default 3,600 s, the reference's). */
  replayWindowMs?: number
  /** Extra time a message id is remembered past its timestamp + window (default 300 s). */
  replayMarginMs?: number
}

/** A datagram that opened: its sender, proven by the pinned key, and its message. @inline */
export interface OpenedEnvelope {
  ok: true
  /** The envelope's sender_sae_id, proven by its pinned key. Which role it must hold is the layer above's check. */
  senderSaeId: string
  /** The envelope's type (unchecked: receivers go by the message's message_type). */
  type: string
  /** The signed payload, decoded: the message's JSON exactly as signed. */
  payloadJson: string
  /** JSON.parse(payloadJson): an object, not yet checked beyond message_id and timestamp. */
  message: unknown
  messageId: string
  /** The message's timestamp, epoch seconds: the layer above checks it against its clock. */
  timestamp: number
  /** Whether the public_key carried equals the pinned key's SPKI PEM (a diagnostic only: it is never used). */
  embeddedKeyMatchesPin: boolean
}

/** A datagram that was dropped, and why. @inline */
export interface RejectedEnvelope {
  ok: false
  reason: EnvelopeDropReason
}

/** What EnvelopeVerifier.open() returns: `ok` says which. @inline */
export type EnvelopeResult = OpenedEnvelope | RejectedEnvelope

/** What EnvelopeVerifier.stats() returns: datagrams accepted, drops by reason, and message ids remembered. @inline */
export interface EnvelopeVerifierStats {
  accepted: number
  drops: Record<EnvelopeDropReason, number>
  /** Message ids remembered, all senders. */
  replayEntries: number
}

interface Pin {
  key: KeyObject
  pem: string
  signatureBytes: number
}

// Replays: ids are remembered after the signature verifies (so no forger can fill the table), each until its
// timestamp + replayWindowMs + replayMarginMs. Past that a copy is too old for the layer above, which accepts
// a message only while |timestamp − now| ≤ replayWindowMs; such a copy is passed up unrecorded for that layer
// to refuse. When a sender's table is full, the id whose time ends first is forgotten and its end becomes the
// sender's floor: any new message of that sender ending at or before the floor is dropped as 'replayed'.
/**
 * Opens key sync datagrams: checks the shape, verifies the signature with the key pinned for sender_sae_id
 * (never the public_key the datagram carries) and drops replays. open never throws.
 *
 * Replays: message ids are remembered per sender, so no message id is accepted twice while its timestamp is
 * inside the window (replayWindowMs), however many come. A pinned peer that sends more than replayCapacity
 * messages within one window may see some of its own dropped as 'replayed'; no other peer is affected.
 */
export class EnvelopeVerifier {
  readonly #pins = new Map<string, Pin>()
  readonly #seen = new Map<string, ReplayTable>()
  readonly #maxDatagramBytes: number
  readonly #capacity: number
  readonly #keepMs: number
  readonly #drops: Record<EnvelopeDropReason, number> = { oversized: 0, malformed: 0, unpinned: 0, signature: 0, replayed: 0 }
  #accepted = 0

  /** Throws TypeError when a pinned key is not RSA of 2048 bits or more, RangeError for a bad limit. */
  constructor(options: EnvelopeVerifierOptions) {
    this.#maxDatagramBytes = positiveInteger(options.maxDatagramBytes ?? KEYSYNC_MAX_DATAGRAM_BYTES, 'maxDatagramBytes')
    this.#capacity = positiveInteger(options.replayCapacity ?? KEYSYNC_REPLAY_CAPACITY, 'replayCapacity')
    this.#keepMs =
      positiveInteger(options.replayWindowMs ?? KEYSYNC_TIMESTAMP_WINDOW_MS, 'replayWindowMs') +
      nonNegativeInteger(options.replayMarginMs ?? KEYSYNC_REPLAY_MARGIN_MS, 'replayMarginMs')
    for (const [saeId, key] of options.pinnedPeers) this.pin(saeId, key)
  }

  /** Pins (or re-pins) a peer's key. The ids it already sent stay remembered. */
  pin(saeId: string, key: KeyObject | string): void {
    const publicKey = typeof key === 'string' ? loadPublicKey(key) : key.type === 'private' ? createPublicKey(key) : key
    checkRsa(publicKey)
    const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0
    this.#pins.set(saeId, { key: publicKey, pem: spkiPem(publicKey), signatureBytes: Math.ceil(bits / 8) })
  }

  /** Stops accepting a peer. Its remembered ids are kept, so pinning it again cannot readmit a replay. */
  unpin(saeId: string): void {
    this.#pins.delete(saeId)
  }

  /** Opens one datagram at nowMs (epoch ms, the clock the layer above checks timestamps with; a non-finite one drops all). */
  open(datagram: Uint8Array, nowMs: number): EnvelopeResult {
    // A NaN clock would make every remembered id look ended: fail closed.
    if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) return this.#drop('malformed')
    try {
      return this.#open(datagram, nowMs)
    } catch {
      // Nothing above should throw; a crypto or engine surprise still must not reach the socket's handler.
      return this.#drop('malformed')
    }
  }

  stats(): EnvelopeVerifierStats {
    let replayEntries = 0
    for (const table of this.#seen.values()) replayEntries += table.size
    return { accepted: this.#accepted, drops: { ...this.#drops }, replayEntries }
  }

  #open(datagram: Uint8Array, nowMs: number): EnvelopeResult {
    if (!(datagram instanceof Uint8Array)) return this.#drop('malformed')
    if (datagram.byteLength > this.#maxDatagramBytes) return this.#drop('oversized')
    const envelope = parseObject(decodeUtf8(datagram))
    if (envelope === undefined) return this.#drop('malformed')
    const { payload, signature, sender_sae_id: sender, public_key: embedded, type } = envelope
    // The reference's own conditions on a SignedMessage, so that what we accept it would also parse.
    if (typeof sender !== 'string' || typeof type !== 'string') return this.#drop('malformed')
    if (typeof embedded !== 'string' || !embedded.startsWith('-----BEGIN PUBLIC KEY-----')) return this.#drop('malformed')
    const payloadBytes = base64Strict(payload)
    const signatureBytes = base64Strict(signature)
    if (payloadBytes === undefined || payloadBytes.length === 0 || signatureBytes === undefined || signatureBytes.length === 0) return this.#drop('malformed')
    const pin = this.#pins.get(sender)
    if (pin === undefined) return this.#drop('unpinned')
    if (signatureBytes.length !== pin.signatureBytes) return this.#drop('signature')
    // Any salt length, as the reference's verifier: its PSS.MAX_LENGTH reaches OpenSSL as -2, "recover" on verify.
    const valid = verify('sha256', sha256(payloadBytes), { key: pin.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signatureBytes)
    if (!valid) return this.#drop('signature')
    const payloadJson = decodeUtf8(payloadBytes)
    const message = parseObject(payloadJson)
    const inner = innerFields(message)
    if (payloadJson === undefined || inner === undefined) return this.#drop('malformed')
    let table = this.#seen.get(sender)
    if (table === undefined) this.#seen.set(sender, (table = new ReplayTable(this.#capacity)))
    if (!table.admit(inner.messageId, inner.timestamp * 1000 + this.#keepMs, nowMs)) return this.#drop('replayed')
    this.#accepted++
    return { ok: true, senderSaeId: sender, type, payloadJson, message, messageId: inner.messageId, timestamp: inner.timestamp, embeddedKeyMatchesPin: embedded === pin.pem }
  }

  #drop(reason: EnvelopeDropReason): RejectedEnvelope {
    this.#drops[reason]++
    return { ok: false, reason }
  }
}

/** One sender's remembered message ids, each with the instant (ms) after which its copies are too old anyway. */
class ReplayTable {
  readonly #ends = new Map<string, number>()
  #floor = -Infinity

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.#ends.size
  }

  /** Whether a message is new; records it when it could still be accepted above. */
  admit(messageId: string, endMs: number, nowMs: number): boolean {
    const known = this.#ends.get(messageId)
    if (known !== undefined) {
      if (known > nowMs) return false
      this.#ends.delete(messageId)
    }
    // Already too old for the layer above, and a copy can only be older: nothing to remember.
    if (endMs <= nowMs) return true
    // It may be one of the ids forgotten at overflow.
    if (endMs <= this.#floor) return false
    this.#ends.set(messageId, endMs)
    if (this.#ends.size > this.capacity) this.#evict(nowMs)
    return true
  }

  // Linear, and only when full: a table fills only when a peer sends over capacity messages in one window.
  #evict(nowMs: number): void {
    for (const [id, end] of this.#ends) if (end <= nowMs) this.#ends.delete(id)
    if (this.#ends.size <= this.capacity) return
    let first: string | undefined
    let firstEnd = Infinity
    for (const [id, end] of this.#ends) {
      if (end < firstEnd) {
        first = id
        firstEnd = end
      }
    }
    if (first === undefined) return
    this.#ends.delete(first)
    this.#floor = Math.max(this.#floor, firstEnd)
  }
}

// A BOM or an invalid sequence makes the text invalid JSON or undefined, as Python's decode and json.loads do.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const base64Shape = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

function parseObject(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

/** The fields the envelope itself needs from a message: the replay key and the time it stays acceptable. */
function innerFields(message: Record<string, unknown> | undefined): { messageId: string; timestamp: number } | undefined {
  if (message === undefined) return undefined
  const { message_id: messageId, timestamp } = message
  if (typeof messageId !== 'string' || messageId.length === 0 || typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp)) return undefined
  return { messageId, timestamp }
}

// Canonical standard base64 only (what Python's b64encode writes): Buffer's lenient decoder would let many
// spellings of one payload through.
function base64Strict(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || !base64Shape.test(value)) return undefined
  const bytes = Buffer.from(value, 'base64')
  return bytes.toString('base64') === value ? bytes : undefined
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest()
}

function spkiPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }) as string
}

const derivedPems = new WeakMap<KeyObject, string>()

function derivedPem(privateKey: KeyObject): string {
  let pem = derivedPems.get(privateKey)
  if (pem === undefined) derivedPems.set(privateKey, (pem = spkiPem(createPublicKey(privateKey))))
  return pem
}

function checkRsa(key: KeyObject): void {
  if (key.asymmetricKeyType !== 'rsa') throw new TypeError(`an RSA key is required, not ${key.asymmetricKeyType ?? key.type}`)
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < KEYSYNC_MIN_RSA_BITS) throw new TypeError(`an RSA key of at least ${KEYSYNC_MIN_RSA_BITS} bits is required, not ${bits}`)
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer`)
  return value
}

function nonNegativeInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer`)
  return value
}
