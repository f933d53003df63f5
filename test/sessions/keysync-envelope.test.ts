// The key sync's signed datagram (src/sessions/keysync/envelope.ts): its bytes against the reference's own
// (test/fixtures/keysync-reference-vectors.ts), pinning, replays, and what hostile bytes do to it.
import { constants, createHash, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  EnvelopeVerifier,
  KEYSYNC_MAX_DATAGRAM_BYTES,
  envelopeTypeFor,
  generateSaeKeyPair,
  loadPublicKey,
  publicKeyPemOf,
  signEnvelope,
  type EnvelopeResult,
  type EnvelopeSigner,
} from '../../src/sessions/keysync/envelope.ts'
import {
  MASTER_CERTIFICATE_PEM,
  MASTER_SAE_ID,
  OURS_SALT_32_BASE64,
  OURS_SIGNED,
  OURS_SIGNED_AT,
  REFERENCE_SIGNED,
  REFERENCE_SIGNED_AT,
  SLAVE_CERTIFICATE_PEM,
  SLAVE_SAE_ID,
} from '../fixtures/keysync-reference-vectors.ts'

const HOUR_MS = 3_600_000
const T0 = 1_800_000_000

let master: EnvelopeSigner
let slave: EnvelopeSigner
let intruder: EnvelopeSigner

beforeAll(() => {
  master = { saeId: 'M', ...generateSaeKeyPair() }
  slave = { saeId: 'S', ...generateSaeKeyPair() }
  intruder = { saeId: 'X', ...generateSaeKeyPair() }
})

const verifierFor = (...signers: EnvelopeSigner[]) => new EnvelopeVerifier({ pinnedPeers: new Map(signers.map((s) => [s.saeId, s.publicKeyPem])) })
const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'))
const fromBase64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64'))
const text = (datagram: Uint8Array) => Buffer.from(datagram).toString('utf8')

function message(fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    message_type: 'cleanup_acknowledgment',
    message_id: randomUUID(),
    timestamp: T0,
    master_sae_id: 'M',
    slave_sae_id: 'S',
    original_message_id: randomUUID(),
    status: 'completed',
    ...fields,
  })
}

/** A datagram put together by hand: for payloads and fields signEnvelope refuses to write. */
function craft(payload: Uint8Array, key: KeyObject, fields: Record<string, unknown>): Uint8Array {
  const digest = createHash('sha256').update(payload).digest()
  const signature = sign('sha256', digest, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN })
  return bytes(JSON.stringify({ payload: Buffer.from(payload).toString('base64'), signature: signature.toString('base64'), ...fields }))
}

/** base64 of 3n+1 bytes ends "X?==": flipping the lowest of the four unused bits in "?" keeps the bytes. */
function nonCanonical(base64: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  const at = base64.length - 3
  return base64.slice(0, at) + alphabet[alphabet.indexOf(base64[at]!) ^ 1]! + base64.slice(at + 1)
}

function rejected(result: EnvelopeResult): string {
  return result.ok ? 'accepted' : result.reason
}

describe('keys', () => {
  it('generates RSA-2048 pairs whose PEM is SubjectPublicKeyInfo with a trailing newline', () => {
    expect(master.privateKey.asymmetricKeyType).toBe('rsa')
    expect(master.privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048)
    expect(master.publicKeyPem.startsWith('-----BEGIN PUBLIC KEY-----\n')).toBe(true)
    expect(master.publicKeyPem.endsWith('\n-----END PUBLIC KEY-----\n')).toBe(true)
    expect(publicKeyPemOf(master.privateKey)).toBe(master.publicKeyPem)
    expect(publicKeyPemOf(loadPublicKey(master.publicKeyPem))).toBe(master.publicKeyPem)
  })

  it('loads a certificate as the reference does, to the very PEM it embeds', () => {
    const reference = JSON.parse(text(fromBase64(REFERENCE_SIGNED[0]!.datagramBase64))) as { public_key: string }
    expect(publicKeyPemOf(loadPublicKey(MASTER_CERTIFICATE_PEM))).toBe(reference.public_key)
  })

  it('refuses keys that are not RSA of 2048 bits or more', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    expect(() => loadPublicKey(small.publicKey.export({ type: 'spki', format: 'pem' }) as string)).toThrow(TypeError)
    expect(() => new EnvelopeVerifier({ pinnedPeers: new Map([['A', small.publicKey]]) })).toThrow(TypeError)
    expect(() => new EnvelopeVerifier({ pinnedPeers: new Map([['A', ec.publicKey]]) })).toThrow(TypeError)
    const signer = { saeId: 'A', privateKey: small.privateKey, publicKeyPem: publicKeyPemOf(small.privateKey) }
    expect(() => signEnvelope(message(), signer, 'UNKNOWN')).toThrow(TypeError)
    const ecSigner = { saeId: 'A', privateKey: ec.privateKey, publicKeyPem: publicKeyPemOf(ec.privateKey) }
    expect(() => signEnvelope(message(), ecSigner, 'UNKNOWN')).toThrow(TypeError)
  })
})

describe('signEnvelope', () => {
  it('round-trips through a verifier that pins the sender', () => {
    const payloadJson = message({ message_type: 'error', error_code: 'E', error_message: 'clé ✗ "q"\n', details: { a: [1, null] } })
    const datagram = signEnvelope(payloadJson, master, envelopeTypeFor('error'))
    const result = verifierFor(master).open(datagram, T0 * 1000)
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.senderSaeId).toBe('M')
    expect(result.type).toBe('ERROR')
    expect(result.payloadJson).toBe(payloadJson)
    expect(result.message).toEqual(JSON.parse(payloadJson))
    expect(result.messageId).toBe(JSON.parse(payloadJson).message_id)
    expect(result.timestamp).toBe(T0)
    expect(result.embeddedKeyMatchesPin).toBe(true)
  })

  it("writes the reference's bytes: its field order, compact JSON, base64 of the payload's UTF-8", () => {
    for (const vector of REFERENCE_SIGNED) {
      const referenceText = text(fromBase64(vector.datagramBase64))
      const reference = JSON.parse(referenceText) as Record<string, string>
      expect(Object.keys(reference)).toEqual(['payload', 'signature', 'sender_sae_id', 'public_key', 'type'])
      expect(JSON.stringify(reference)).toBe(referenceText)
      expect(reference['payload']).toBe(Buffer.from(vector.payloadJson, 'utf8').toString('base64'))
      expect(reference['type']).toBe(envelopeTypeFor(vector.name))
      // Ours differs only in what the key makes: the signature and the public key.
      const ours = text(signEnvelope(vector.payloadJson, { ...master, saeId: reference['sender_sae_id']! }, reference['type']!))
      const { signature, public_key: publicKey } = JSON.parse(ours) as Record<string, string>
      expect(ours).toBe(JSON.stringify({ ...reference, signature, public_key: publicKey }))
      expect(publicKey).toBe(master.publicKeyPem)
      expect(Buffer.from(signature!, 'base64').length).toBe(256)
    }
  })

  it('names the envelope types as the reference does', () => {
    expect(['key_notification', 'key_acknowledgment', 'sync_confirmation', 'error'].map(envelopeTypeFor)).toEqual(['NOTIFY', 'NOTIFY-ACK', 'SYNC-CONFIRM', 'ERROR'])
    const rest = ['rotation_completed', 'cleanup_status_request', 'cleanup_status_response', 'cleanup_delete_request', 'cleanup_delete_response', 'cleanup_acknowledgment']
    expect(new Set(rest.map(envelopeTypeFor))).toEqual(new Set(['UNKNOWN']))
  })

  it('refuses what it could not send or we would not open', () => {
    expect(() => signEnvelope('[1]', master, 'UNKNOWN')).toThrow(TypeError)
    expect(() => signEnvelope('{"message_id":"a"}', master, 'UNKNOWN')).toThrow(TypeError)
    expect(() => signEnvelope(message({ timestamp: T0 + 0.5 }), master, 'UNKNOWN')).toThrow(TypeError)
    expect(() => signEnvelope('{"message_id":"a","timestamp":1,"x":"lone \uD800"}', master, 'UNKNOWN')).toThrow(TypeError)
    expect(() => signEnvelope(message(), { ...master, publicKeyPem: slave.publicKeyPem }, 'UNKNOWN')).toThrow(TypeError)
    expect(() => signEnvelope(message({ details: 'x'.repeat(KEYSYNC_MAX_DATAGRAM_BYTES) }), master, 'UNKNOWN')).toThrow(RangeError)
  })
})

describe('interoperability with the reference (golden vectors)', () => {
  const pinned = () =>
    new EnvelopeVerifier({
      pinnedPeers: new Map([
        [MASTER_SAE_ID, MASTER_CERTIFICATE_PEM],
        [SLAVE_SAE_ID, SLAVE_CERTIFICATE_PEM],
      ]),
    })

  it("opens datagrams the reference's own signer wrote", () => {
    const verifier = pinned()
    expect(REFERENCE_SIGNED.map((v) => v.name)).toEqual(['key_notification', 'key_acknowledgment', 'cleanup_status_request', 'error'])
    for (const vector of REFERENCE_SIGNED) {
      const result = verifier.open(fromBase64(vector.datagramBase64), REFERENCE_SIGNED_AT * 1000)
      expect(result.ok, vector.name).toBe(true)
      if (!result.ok) continue
      expect(result.payloadJson).toBe(vector.payloadJson)
      expect(result.type).toBe(envelopeTypeFor(vector.name))
      expect(result.embeddedKeyMatchesPin).toBe(true)
      expect((result.message as { message_type: string }).message_type).toBe(vector.name)
    }
  })

  it('opens the datagrams we wrote that the reference accepted, all ten messages', () => {
    const verifier = pinned()
    expect(OURS_SIGNED).toHaveLength(10)
    for (const vector of OURS_SIGNED) {
      const result = verifier.open(fromBase64(vector.datagramBase64), OURS_SIGNED_AT * 1000)
      expect(result.ok, vector.name).toBe(true)
      if (result.ok) expect(result.payloadJson).toBe(vector.payloadJson)
    }
  })

  it('accepts any PSS salt length, as the reference does', () => {
    expect(pinned().open(fromBase64(OURS_SALT_32_BASE64), OURS_SIGNED_AT * 1000).ok).toBe(true)
  })

  it("refuses the reference's datagrams under the wrong pins", () => {
    const swapped = new EnvelopeVerifier({
      pinnedPeers: new Map([
        [MASTER_SAE_ID, SLAVE_CERTIFICATE_PEM],
        [SLAVE_SAE_ID, MASTER_CERTIFICATE_PEM],
      ]),
    })
    for (const vector of REFERENCE_SIGNED) expect(rejected(swapped.open(fromBase64(vector.datagramBase64), REFERENCE_SIGNED_AT * 1000))).toBe('signature')
    const none = new EnvelopeVerifier({ pinnedPeers: new Map() })
    for (const vector of REFERENCE_SIGNED) expect(rejected(none.open(fromBase64(vector.datagramBase64), REFERENCE_SIGNED_AT * 1000))).toBe('unpinned')
  })
})

describe('pinning and tampering', () => {
  const now = T0 * 1000
  let datagram: Uint8Array
  let fields: Record<string, string>
  beforeAll(() => {
    datagram = signEnvelope(message(), master, 'UNKNOWN')
    fields = JSON.parse(text(datagram)) as Record<string, string>
  })
  const edited = (changes: Record<string, string>) => bytes(JSON.stringify({ ...fields, ...changes }))

  it('refuses a flipped payload byte, a flipped signature byte, and a swapped sender', () => {
    const payload = Buffer.from(fields['payload']!, 'base64')
    payload[20]! ^= 0x01
    const signature = Buffer.from(fields['signature']!, 'base64')
    signature[100]! ^= 0x80
    const verifier = verifierFor(master, slave)
    expect(rejected(verifier.open(edited({ payload: payload.toString('base64') }), now))).toBe('signature')
    expect(rejected(verifier.open(edited({ signature: signature.toString('base64') }), now))).toBe('signature')
    expect(rejected(verifier.open(edited({ sender_sae_id: 'S' }), now))).toBe('signature')
    expect(rejected(verifier.open(edited({ sender_sae_id: 'nobody' }), now))).toBe('unpinned')
    expect(verifier.open(datagram, now).ok).toBe(true)
  })

  it('never accepts a self-consistent datagram signed by a key that is not pinned', () => {
    const verifier = verifierFor(master, slave)
    const payload = bytes(message())
    // It carries its own key, as the reference would check it against: under a pinned id, the pin refuses it.
    const forged = craft(payload, intruder.privateKey, { sender_sae_id: 'M', public_key: intruder.publicKeyPem, type: 'UNKNOWN' })
    expect(rejected(verifier.open(forged, now))).toBe('signature')
    const stranger = craft(payload, intruder.privateKey, { sender_sae_id: 'X', public_key: intruder.publicKeyPem, type: 'UNKNOWN' })
    expect(rejected(verifier.open(stranger, now))).toBe('unpinned')
  })

  it('ignores the embedded public key, only reporting whether it matches the pin', () => {
    const verifier = verifierFor(master)
    const result = verifier.open(edited({ public_key: intruder.publicKeyPem }), now)
    expect(result.ok && result.embeddedKeyMatchesPin).toBe(false)
    expect(result.ok).toBe(true)
  })

  it('unpins and re-pins without forgetting replays', () => {
    const verifier = verifierFor(master)
    expect(verifier.open(datagram, now).ok).toBe(true)
    verifier.unpin('M')
    expect(rejected(verifier.open(datagram, now))).toBe('unpinned')
    verifier.pin('M', master.privateKey)
    expect(rejected(verifier.open(datagram, now))).toBe('replayed')
  })
})

describe('replays', () => {
  const now = T0 * 1000

  it('drops a second copy, and any other message with the same id from the same sender', () => {
    const verifier = verifierFor(master, slave)
    const id = randomUUID()
    const first = signEnvelope(message({ message_id: id }), master, 'UNKNOWN')
    expect(verifier.open(first, now).ok).toBe(true)
    expect(rejected(verifier.open(first, now + 1000))).toBe('replayed')
    expect(rejected(verifier.open(signEnvelope(message({ message_id: id, status: 'failed' }), master, 'UNKNOWN'), now))).toBe('replayed')
    // Ids are remembered per sender.
    expect(verifier.open(signEnvelope(message({ message_id: id }), slave, 'UNKNOWN'), now).ok).toBe(true)
    expect(verifier.stats()).toMatchObject({ accepted: 2, replayEntries: 2, drops: { replayed: 2 } })
  })

  it('remembers an id until its timestamp + window + margin, when its copies are too old for the layer above', () => {
    const verifier = new EnvelopeVerifier({ pinnedPeers: new Map([['M', master.publicKeyPem]]), replayWindowMs: HOUR_MS, replayMarginMs: 60_000 })
    const datagram = signEnvelope(message(), master, 'UNKNOWN')
    const end = T0 * 1000 + HOUR_MS + 60_000
    // First seen as early as the window allows (timestamp an hour ahead of the clock): still remembered at its end.
    expect(verifier.open(datagram, T0 * 1000 - HOUR_MS).ok).toBe(true)
    expect(rejected(verifier.open(datagram, end - 1))).toBe('replayed')
    // Past it the copy is passed up unrecorded: its timestamp is over an hour old, which the layer above refuses.
    expect(verifier.open(datagram, end).ok).toBe(true)
    expect(verifier.open(datagram, end + 1).ok).toBe(true)
    expect(verifier.stats().replayEntries).toBe(0)
  })

  it('records an id only once its signature verifies, so a forger cannot poison it', () => {
    const verifier = verifierFor(master)
    const payloadJson = message()
    const forged = craft(bytes(payloadJson), intruder.privateKey, { sender_sae_id: 'M', public_key: master.publicKeyPem, type: 'UNKNOWN' })
    expect(rejected(verifier.open(forged, now))).toBe('signature')
    expect(verifier.open(signEnvelope(payloadJson, master, 'UNKNOWN'), now).ok).toBe(true)
  })

  it('at capacity forgets the id that ends first and drops, as replayed, anything ending no later', () => {
    const verifier = new EnvelopeVerifier({ pinnedPeers: new Map([['M', master.publicKeyPem], ['S', slave.publicKeyPem]]), replayCapacity: 3 })
    const sent = [0, 1, 2, 3].map((i) => signEnvelope(message({ timestamp: T0 + i }), master, 'UNKNOWN'))
    for (const datagram of sent) expect(verifier.open(datagram, now).ok).toBe(true)
    expect(verifier.stats().replayEntries).toBe(3)
    // The forgotten one (timestamp T0) is still refused: the floor covers it; so is every copy still remembered.
    for (const datagram of sent) expect(rejected(verifier.open(datagram, now))).toBe('replayed')
    // A new message ending at or before the floor is a false drop, the documented price of overflow…
    expect(rejected(verifier.open(signEnvelope(message({ timestamp: T0 }), master, 'UNKNOWN'), now))).toBe('replayed')
    // …one later is not, and the other senders are untouched.
    expect(verifier.open(signEnvelope(message({ timestamp: T0 + 1 }), master, 'UNKNOWN'), now).ok).toBe(true)
    expect(verifier.open(signEnvelope(message({ timestamp: T0 - 100 }), slave, 'UNKNOWN'), now).ok).toBe(true)
    // Once the window is over, every id of it has ended and the table holds only newer ones.
    const later = now + 2 * HOUR_MS
    expect(verifier.open(signEnvelope(message({ timestamp: T0 + 7200 }), master, 'UNKNOWN'), later).ok).toBe(true)
    expect(verifier.stats().replayEntries).toBe(2)
  })
})

describe('hostile bytes', () => {
  const now = T0 * 1000

  it('drops an oversized datagram before reading it', () => {
    const verifier = verifierFor(master)
    const datagram = signEnvelope(message(), master, 'UNKNOWN')
    const padded = new Uint8Array(KEYSYNC_MAX_DATAGRAM_BYTES + 1).fill(0x20)
    padded.set(datagram)
    expect(rejected(verifier.open(padded, now))).toBe('oversized')
    expect(rejected(verifier.open(new Uint8Array(100_000).fill(0xff), now))).toBe('oversized')
    const small = new EnvelopeVerifier({ pinnedPeers: new Map([['M', master.publicKeyPem]]), maxDatagramBytes: datagram.length - 1 })
    expect(rejected(small.open(datagram, now))).toBe('oversized')
    // Trailing whitespace within the limit is still JSON, and the same signed message.
    expect(verifier.open(padded.subarray(0, KEYSYNC_MAX_DATAGRAM_BYTES), now).ok).toBe(true)
  })

  it('drops what is not a SignedMessage as malformed', () => {
    const verifier = verifierFor(master)
    const good = JSON.parse(text(signEnvelope(message(), master, 'UNKNOWN'))) as Record<string, unknown>
    const variants: Record<string, unknown>[] = [
      { ...good, payload: undefined },
      { ...good, signature: 5 },
      { ...good, sender_sae_id: null },
      { ...good, type: ['UNKNOWN'] },
      { ...good, public_key: 'MIIBIjANBgkq' },
      { ...good, signature: '' },
      { ...good, payload: '' },
      { ...good, payload: ` ${good['payload'] as string}` },
      { ...good, payload: `${good['payload'] as string}=` },
      { ...good, signature: (good['signature'] as string).replace(/(.{64})/, '$1\n') },
      // The same 256 bytes spelled another way (unused bits set): Buffer would decode it to a valid signature.
      { ...good, signature: nonCanonical(good['signature'] as string) },
    ]
    expect(Buffer.from(nonCanonical(good['signature'] as string), 'base64')).toEqual(Buffer.from(good['signature'] as string, 'base64'))
    for (const variant of variants) expect(rejected(verifier.open(bytes(JSON.stringify(variant)), now))).toBe('malformed')
    for (const junk of ['', 'null', '[]', '"x"', '42', '{', '{"payload":', 'NaN'])
      expect(rejected(verifier.open(bytes(junk), now))).toBe('malformed')
    expect(rejected(verifier.open(undefined as unknown as Uint8Array, now))).toBe('malformed')
    expect(rejected(verifier.open('{}' as unknown as Uint8Array, now))).toBe('malformed')
    // A broken clock must not make remembered ids look ended.
    expect(rejected(verifier.open(signEnvelope(message(), master, 'UNKNOWN'), Number.NaN))).toBe('malformed')
  })

  it('drops bytes that are not UTF-8, and a byte-order mark, as the reference does', () => {
    const verifier = verifierFor(master)
    const datagram = signEnvelope(message(), master, 'UNKNOWN')
    const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...datagram])
    expect(rejected(verifier.open(withBom, now))).toBe('malformed')
    // An invalid byte inside a JSON string, and an overlong encoding of '/'.
    const at = text(datagram).indexOf('-----BEGIN') + 3
    for (const bad of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      const broken = new Uint8Array([...datagram.subarray(0, at), ...bad, ...datagram.subarray(at)])
      expect(rejected(verifier.open(broken, now))).toBe('malformed')
    }
  })

  it('drops a signed payload that is not a message it can key', () => {
    const verifier = verifierFor(master)
    const signed = (payload: Uint8Array) => craft(payload, master.privateKey, { sender_sae_id: 'M', public_key: master.publicKeyPem, type: 'UNKNOWN' })
    const payloads = [
      bytes('not json'),
      bytes('[1,2]'),
      bytes('{"message_id":"a","timestamp":"1800000000"}'),
      bytes('{"message_id":"a","timestamp":1800000000.5}'),
      bytes('{"message_id":"","timestamp":1800000000}'),
      bytes('{"timestamp":1800000000}'),
      new Uint8Array([0x7b, 0xff, 0x7d]),
      new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('{"message_id":"a","timestamp":1800000000}')]),
    ]
    for (const payload of payloads) expect(rejected(verifier.open(signed(payload), now))).toBe('malformed')
    expect(verifier.open(signed(bytes('{"message_id":"a","timestamp":1800000000}')), now).ok).toBe(true)
  })

  it('counts every drop by reason', () => {
    const verifier = verifierFor(master)
    const datagram = signEnvelope(message(), master, 'UNKNOWN')
    verifier.open(datagram, now)
    verifier.open(datagram, now)
    verifier.open(new Uint8Array(KEYSYNC_MAX_DATAGRAM_BYTES + 1), now)
    verifier.open(bytes('{'), now)
    verifier.open(signEnvelope(message(), slave, 'UNKNOWN'), now)
    verifier.open(bytes(text(signEnvelope(message(), slave, 'UNKNOWN')).replace('"sender_sae_id":"S"', '"sender_sae_id":"M"')), now)
    expect(verifier.stats()).toEqual({ accepted: 1, replayEntries: 1, drops: { oversized: 1, malformed: 1, unpinned: 1, signature: 1, replayed: 1 } })
  })

  it('survives seeded random mutations: never throws, never accepts other semantics', () => {
    const original = signEnvelope(message({ message_type: 'error', error_code: 'E', error_message: 'é ✗', details: null }), master, 'ERROR')
    const originalFields = JSON.parse(text(original)) as Record<string, unknown>
    let seed = 0x2545f491
    const random = () => {
      // xorshift32: the same mutations on every run.
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) / 0x1_0000_0000
    }
    const below = (n: number) => Math.floor(random() * n)
    const interesting = [0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x3d, 0x2b, 0x2f, 0x41, 0x80, 0xc3, 0xef, 0xff]
    let accepted = 0
    for (let round = 0; round < 1500; round++) {
      const bytesOut = Array.from(original)
      for (let edits = 1 + below(4); edits > 0; edits--) {
        const at = below(bytesOut.length + 1)
        switch (below(6)) {
          case 0:
            bytesOut[at % bytesOut.length]! ^= 1 << below(8)
            break
          case 1:
            bytesOut[at % bytesOut.length] = interesting[below(interesting.length)]!
            break
          case 2:
            bytesOut.splice(at, 1 + below(8))
            break
          case 3:
            bytesOut.splice(at, 0, ...bytesOut.slice(below(bytesOut.length), below(bytesOut.length)).slice(0, 64))
            break
          case 4:
            bytesOut.splice(at, 0, 0x20)
            break
          default:
            bytesOut.length = Math.min(bytesOut.length, at)
        }
      }
      const mutated = new Uint8Array(bytesOut)
      // A fresh verifier each round, so that a replay drop cannot hide an acceptance.
      let result: EnvelopeResult | undefined
      expect(() => (result = verifierFor(master).open(mutated, now))).not.toThrow()
      if (result?.ok !== true) continue
      accepted++
      const fields = JSON.parse(text(mutated)) as Record<string, unknown>
      for (const name of ['payload', 'signature', 'sender_sae_id']) expect(fields[name]).toBe(originalFields[name])
    }
    // A few mutations only touch whitespace or unsigned fields; most must fail.
    expect(accepted).toBeLessThan(300)
    for (let round = 0; round < 300; round++) {
      const noise = new Uint8Array(below(600)).map(() => below(256))
      expect(rejected(verifierFor(master).open(noise, now))).toMatch(/^(malformed|unpinned|signature)$/)
    }
  })
})
