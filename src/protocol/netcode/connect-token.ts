// Connect tokens (netcode 1.02): what a web backend hands a client so that it may connect to a server.
// The 2048-byte public token carries the server addresses and the connection keys in the clear, and a
// private part sealed with XChaCha20-Poly1305 under the key the backend shares with its servers.
import { VolleyRangeError, VolleyTypeError, describe } from '../../util/errors.ts'
import { checkAttached, maxUint64 } from '../../util/bytes.ts'
import { bytesOption, checkOptions, integerOption, requiredIntegerOption, uint64Option, uint8ArrayOf } from '../../util/options.ts'
import { sizes, versionInfo } from './constants.ts'
import { type ServerAddress, parseReachableServerAddress, readServerAddress, writeServerAddress } from './server-address.ts'
import { type Sodium, loadSodium, randomBytes } from './sodium.ts'
import { Reader, WireError, Writer, equalBytes } from './wire.ts'

const connectTokenOptionNames: ReadonlySet<string> = new Set([
  'protocolId',
  'privateKey',
  'clientId',
  'serverAddresses',
  'expireSeconds',
  'timeoutSeconds',
  'userData',
  'clientToServerKey',
  'serverToClientKey',
  'nowSeconds',
  'nonce',
])

/** generateConnectToken()'s options. */
export interface ConnectTokenOptions {
  /** Unique to your application: servers refuse tokens of any other. */
  protocolId: bigint | number
  /** 32 bytes shared by the web backend and its servers (generateKey()). */
  privateKey: Uint8Array
  /** Your globally unique id of the authenticated client. */
  clientId: bigint | number
  /** 1 to 32 addresses, 'a.b.c.d:port' or '[ipv6]:port', tried in order. */
  serverAddresses: readonly string[]
  // netcode's reference generator takes any negative value for "never"; here only -1 is, for a negative
  // result of arithmetic means a token that should have expired.
  /**
   * Seconds from now until the token expires; -1: it never expires (other negative values are refused). 0
   * makes a token that has expired already (servers refuse it: for tests).
   */
  expireSeconds: number
  /**
   * Seconds without packets after which a connection times out; negative disables it (development only).
   * Not 0: a netcode 1.02 server forgets a handshake with that timeout at once.
   */
  timeoutSeconds: number
  /** Up to 256 bytes for the server application (zero-padded). */
  userData?: Uint8Array | undefined
  /** The 32-byte key of the connection's client-to-server packets; random when not given. */
  clientToServerKey?: Uint8Array | undefined
  /** The 32-byte key of the connection's server-to-client packets; random when not given. */
  serverToClientKey?: Uint8Array | undefined
  /** Creation time in seconds since the epoch (default: now), up to 2^32 − 1: not Date.now()'s milliseconds. */
  nowSeconds?: number | undefined
  /**
   * The 24-byte nonce (default: random). Give one only to reproduce a token, as tests do: two tokens sealed
   * with one nonce under one private key give away what their private parts differ by.
   */
  nonce?: Uint8Array | undefined
}

/** The public part of a connect token, as a client reads it. */
export interface ConnectToken {
  protocolId: bigint
  /** Seconds since the epoch when the backend made the token. */
  createTimestamp: bigint
  /** Seconds since the epoch after which servers refuse it; 2^64 - 1: never. */
  expireTimestamp: bigint
  /** The 24-byte XChaCha20 nonce the private part is sealed with. */
  nonce: Uint8Array
  /** The sealed private part, passed on to the server in connection requests. */
  privateData: Uint8Array
  /** Seconds without packets after which the connection times out; negative: never. */
  timeoutSeconds: number
  /** The servers to try, in order. */
  serverAddresses: ServerAddress[]
  clientToServerKey: Uint8Array
  serverToClientKey: Uint8Array
}

/** The private part, as a server reads it once unsealed. */
export interface PrivateConnectToken {
  clientId: bigint
  timeoutSeconds: number
  serverAddresses: ServerAddress[]
  clientToServerKey: Uint8Array
  serverToClientKey: Uint8Array
  userData: Uint8Array
}

/**
 * A 32-byte key that must be secret. All zeros is refused: it is what a placeholder, an unset buffer or an
 * empty environment variable decoded gives, and it would seal tokens and packets that anyone can open.
 */
export function secretKeyOption(name: string, value: unknown, optional = false, kind: 'option' | 'argument' = 'option'): Uint8Array {
  const key = bytesOption(name, value, sizes.key, kind)
  if (key.every((byte) => byte === 0)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "${name}" ${kind} is all zeros, which is no secret: give a random key (generateKey())${optional ? ', or none' : ''}`)
  }
  return key
}

/** A random 32-byte key, for the private key shared with servers or for connection keys. */
export async function generateKey(): Promise<Uint8Array> {
  return randomBytes(sizes.key)
}

/** Makes a connect token: the 2048 bytes to hand a client (see connectTokenToBase64 for transport). */
export async function generateConnectToken(options: ConnectTokenOptions): Promise<Uint8Array> {
  const parsed = parseConnectTokenOptions(options) // a mistake is told before the crypto loads, or fails to
  return sealConnectToken(await loadSodium(), parsed)
}

export function encodeConnectToken(sodium: Sodium, options: ConnectTokenOptions): Uint8Array {
  return sealConnectToken(sodium, parseConnectTokenOptions(options))
}

type ParsedConnectTokenOptions = ReturnType<typeof parseConnectTokenOptions>

function parseConnectTokenOptions(options: ConnectTokenOptions) {
  checkOptions('options of generateConnectToken()', options, connectTokenOptionNames)
  const protocolId = uint64Option('protocolId', options.protocolId)
  const clientId = uint64Option('clientId', options.clientId)
  const privateKey = secretKeyOption('privateKey', options.privateKey)
  const serverAddresses = serverAddressesOption(options.serverAddresses)
  if (typeof options.expireSeconds === 'number' && Number.isInteger(options.expireSeconds) && options.expireSeconds < -1) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "expireSeconds" option must be -1 (never expires) or from 0 to 4294967296. Received ${options.expireSeconds} (a negative lifetime from arithmetic is a token that should have expired)`)
  }
  const expireSeconds = requiredIntegerOption('expireSeconds', options.expireSeconds, -1, 2 ** 32)
  const timeoutSeconds = requiredIntegerOption('timeoutSeconds', options.timeoutSeconds, -(2 ** 31), 2 ** 31 - 1)
  if (timeoutSeconds === 0) {
    // The reference server keeps a pending handshake until request time + timeout: with 0 it never completes.
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', 'The "timeoutSeconds" option must be positive, or negative for no timeout. Received 0 (a netcode 1.02 server would drop the handshake at once)')
  }
  const userData = new Uint8Array(sizes.userData)
  if (options.userData !== undefined) {
    const given = uint8ArrayOf(options.userData)
    if (given === undefined) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "userData" option must be a Uint8Array. Received ${describe(options.userData)}`)
    }
    checkAttached(given, 'The "userData" option')
    if (given.byteLength > sizes.userData) {
      throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "userData" option holds at most 256 bytes. Received ${given.byteLength}`)
    }
    userData.set(given)
  }
  const clientToServerKey =
    options.clientToServerKey === undefined ? randomBytes(sizes.key) : secretKeyOption('clientToServerKey', options.clientToServerKey, true)
  const serverToClientKey =
    options.serverToClientKey === undefined ? randomBytes(sizes.key) : secretKeyOption('serverToClientKey', options.serverToClientKey, true)
  // One key for both ways: both sides would seal sequences 0, 1, 2… under it with the same nonces (a
  // keystream used twice), and each would take the other's packets for its own.
  if (equalBytes(clientToServerKey, serverToClientKey)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'The "clientToServerKey" and "serverToClientKey" options must differ: each direction needs a key of its own')
  }
  const nonce = options.nonce === undefined ? randomBytes(sizes.connectTokenNonce) : bytesOption('nonce', options.nonce, sizes.connectTokenNonce)
  if (typeof options.nowSeconds === 'number' && options.nowSeconds > 2 ** 32 - 1) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "nowSeconds" option is seconds since the epoch, at most 4294967295. Received ${options.nowSeconds}: milliseconds (Date.now())? Divide them by 1000`)
  }
  const now = integerOption('nowSeconds', options.nowSeconds, Math.floor(Date.now() / 1000), 0, 2 ** 32 - 1)
  const createTimestamp = BigInt(now)
  const expireTimestamp = expireSeconds < 0 ? maxUint64 : createTimestamp + BigInt(expireSeconds)

  return { protocolId, clientId, privateKey, serverAddresses, timeoutSeconds, userData, clientToServerKey, serverToClientKey, nonce, createTimestamp, expireTimestamp }
}

function sealConnectToken(sodium: Sodium, parsed: ParsedConnectTokenOptions): Uint8Array {
  const { protocolId, clientId, privateKey, serverAddresses, timeoutSeconds, userData, clientToServerKey, serverToClientKey, nonce, createTimestamp, expireTimestamp } = parsed
  const privatePlain = writePrivateConnectToken({ clientId, timeoutSeconds, serverAddresses, clientToServerKey, serverToClientKey, userData })
  const privateData = sealPrivateConnectToken(sodium, privatePlain, protocolId, expireTimestamp, nonce, privateKey)

  const token = new Uint8Array(sizes.connectToken)
  const writer = new Writer(token)
  writer.raw(versionInfo).u64(protocolId).u64(createTimestamp).u64(expireTimestamp).raw(nonce).raw(privateData)
  writer.u32(timeoutSeconds).u32(serverAddresses.length)
  for (const address of serverAddresses) writeServerAddress(writer, address)
  writer.raw(clientToServerKey).raw(serverToClientKey)
  return token
}

/** Reads the public part of a connect token. Throws ERR_INVALID_CONNECT_TOKEN when it is not one. */
export function readConnectToken(token: Uint8Array): ConnectToken {
  const reader = new Reader(connectTokenBytes(token))
  if (!equalBytes(reader.raw(sizes.versionInfo), versionInfo)) {
    throw new VolleyTypeError('ERR_INVALID_CONNECT_TOKEN', 'The connect token is not a netcode 1.02 token (version info differs)')
  }
  try {
    const protocolId = reader.u64()
    const createTimestamp = reader.u64()
    const expireTimestamp = reader.u64()
    const nonce = reader.raw(sizes.connectTokenNonce)
    const privateData = reader.raw(sizes.privateConnectToken)
    const timeoutSeconds = reader.i32()
    const serverAddresses = readAddressList(reader)
    const clientToServerKey = reader.raw(sizes.key)
    const serverToClientKey = reader.raw(sizes.key)
    if (createTimestamp > expireTimestamp) throw new WireError('created after it expires')
    return { protocolId, createTimestamp, expireTimestamp, nonce, privateData, timeoutSeconds, serverAddresses, clientToServerKey, serverToClientKey }
  } catch (error) {
    if (!(error instanceof WireError)) throw error
    throw new VolleyTypeError('ERR_INVALID_CONNECT_TOKEN', `The connect token is malformed: ${error.message}`)
  }
}

/** The 1024-byte plaintext of the private part; its last 16 bytes stay zero for the MAC. */
export function writePrivateConnectToken(token: PrivateConnectToken): Uint8Array {
  const plain = new Uint8Array(sizes.privateConnectToken)
  const writer = new Writer(plain.subarray(0, sizes.privateConnectToken - sizes.mac))
  writer.u64(token.clientId).u32(token.timeoutSeconds).u32(token.serverAddresses.length)
  for (const address of token.serverAddresses) writeServerAddress(writer, address)
  writer.raw(token.clientToServerKey).raw(token.serverToClientKey).raw(token.userData)
  return plain
}

function privateTokenAssociatedData(protocolId: bigint, expireTimestamp: bigint): Uint8Array {
  const data = new Uint8Array(sizes.versionInfo + 16)
  new Writer(data).raw(versionInfo).u64(protocolId).u64(expireTimestamp)
  return data
}

export function sealPrivateConnectToken(
  sodium: Sodium,
  plain: Uint8Array,
  protocolId: bigint,
  expireTimestamp: bigint,
  nonce: Uint8Array,
  key: Uint8Array,
): Uint8Array {
  return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
    plain.subarray(0, sizes.privateConnectToken - sizes.mac),
    privateTokenAssociatedData(protocolId, expireTimestamp),
    null,
    nonce,
    key,
  )
}

/** Unseals and reads a private part; null when it does not decrypt or does not parse. */
export function openPrivateConnectToken(
  sodium: Sodium,
  sealed: Uint8Array,
  protocolId: bigint,
  expireTimestamp: bigint,
  nonce: Uint8Array,
  key: Uint8Array,
): PrivateConnectToken | null {
  let plain: Uint8Array
  try {
    plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed, privateTokenAssociatedData(protocolId, expireTimestamp), nonce, key)
  } catch {
    return null
  }
  try {
    const reader = new Reader(plain)
    const clientId = reader.u64()
    const timeoutSeconds = reader.i32()
    const serverAddresses = readAddressList(reader)
    return {
      clientId,
      timeoutSeconds,
      serverAddresses,
      clientToServerKey: reader.raw(sizes.key),
      serverToClientKey: reader.raw(sizes.key),
      userData: reader.raw(sizes.userData),
    }
  } catch (error) {
    if (error instanceof WireError) return null
    throw error
  } finally {
    plain.fill(0) // the keys are copied out (Reader.raw): none left in the decrypted token
  }
}

/** A token's 2048 bytes as text, for JSON or an HTTP header: standard base64, 2,732 characters. */
export function connectTokenToBase64(token: Uint8Array): string {
  const bytes = connectTokenBytes(token)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

// Standard base64 of 2048 bytes, canonical: 682 groups of four characters for 2046 bytes, then three for the
// last two (the third's low bits zero) and '='.
const base64Token = /^[A-Za-z0-9+/]{2730}[AEIMQUYcgkosw048]=$/

/**
 * The token connectTokenToBase64 wrote. Whitespace around it (a line end from a file or a terminal) is
 * ignored; anything else that is not that base64 text is refused, where Buffer.from() would skip it.
 */
export function connectTokenFromBase64(text: string): Uint8Array {
  if (typeof text !== 'string') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `A base64 connect token must be a string. Received ${describe(text)}`)
  }
  const trimmed = text.trim()
  if (!base64Token.test(trimmed)) {
    throw new VolleyTypeError(
      'ERR_INVALID_CONNECT_TOKEN',
      `A base64 connect token is 2,732 characters of standard base64 (A-Z, a-z, 0-9, '+', '/') ending in '='. Received ${describe(text)} of ${text.length} characters`,
    )
  }
  return new Uint8Array(Buffer.from(trimmed, 'base64'))
}

/** The 2048 bytes of a token argument, checked for type and size. */
function connectTokenBytes(token: unknown): Uint8Array {
  const bytes = uint8ArrayOf(token)
  if (bytes === undefined) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `A connect token must be a Uint8Array of 2048 bytes. Received ${describe(token)}`)
  }
  checkAttached(bytes, 'The connect token')
  if (bytes.byteLength !== sizes.connectToken) {
    throw new VolleyTypeError('ERR_INVALID_CONNECT_TOKEN', `A connect token is 2048 bytes. Received ${bytes.byteLength}`)
  }
  return bytes
}

function readAddressList(reader: Reader): ServerAddress[] {
  const count = reader.u32()
  if (count < 1 || count > sizes.maxServerAddresses) throw new WireError(`${count} server addresses (1 to 32 allowed)`)
  const addresses: ServerAddress[] = []
  for (let i = 0; i < count; i++) addresses.push(readServerAddress(reader))
  return addresses
}

function serverAddressesOption(value: unknown): ServerAddress[] {
  if (!Array.isArray(value)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "serverAddresses" option must be an array of 1 to 32 addresses. Received ${describe(value)}`)
  }
  if (value.length < 1 || value.length > sizes.maxServerAddresses) {
    // An array of the wrong length is a wrong value, as an empty "channels" is.
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "serverAddresses" option must be an array of 1 to 32 addresses. Received ${describe(value)}`)
  }
  const addresses: ServerAddress[] = []
  // An indexed loop: map() would skip the holes of a sparse array.
  for (let i = 0; i < value.length; i++) addresses.push(parseReachableServerAddress(value[i], `serverAddresses[${i}]`))
  return addresses
}
