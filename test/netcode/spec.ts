// Test-side writers built field by field from STANDARD.md (netcode 1.02), independent of the library's
// encoders: what a token or packet must look like, byte for byte.
export const VERSION = Uint8Array.from([...'NETCODE 1.02'].map((c) => c.charCodeAt(0)).concat(0))

export function le(value: bigint | number, bytes: number): number[] {
  let v = BigInt(value)
  if (v < 0n) v += 1n << BigInt(8 * bytes)
  const out: number[] = []
  for (let i = 0; i < bytes; i++) {
    out.push(Number(v & 0xffn))
    v >>= 8n
  }
  return out
}

/** "a.b.c.d:port" or "[v6]:port" as the standard writes it: type, address, port. */
export function specAddress(text: string): number[] {
  const v6 = /^\[(.+)\]:(\d+)$/.exec(text)
  if (v6) {
    const [head = '', tail = ''] = v6[1]!.split('::')
    const left = head ? head.split(':') : []
    const right = tail ? tail.split(':') : []
    const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right].map((g) => Number.parseInt(g, 16))
    return [2, ...groups.flatMap((g) => le(g, 2)), ...le(Number(v6[2]), 2)]
  }
  const [host = '', port = '0'] = text.split(':')
  return [1, ...host.split('.').map(Number), ...le(Number(port), 2)]
}

export function pad(bytes: number[], size: number): Uint8Array {
  const out = new Uint8Array(size)
  out.set(bytes)
  return out
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

export function fill(size: number, value: number): Uint8Array {
  return new Uint8Array(size).fill(value)
}

/** Fixed inputs of the golden token. */
export const goldenToken = {
  protocolId: 0x1122334455667788n,
  clientId: 0x0102030405060708n,
  createTimestamp: 1_700_000_000n,
  expireSeconds: 30,
  timeoutSeconds: 5,
  serverAddresses: ['127.0.0.1:40000', '[::1]:40001', '[2001:db8::1:2]:7'],
  privateKey: fill(32, 0x77),
  clientToServerKey: fill(32, 0x11),
  serverToClientKey: fill(32, 0x22),
  userData: Uint8Array.from({ length: 256 }, (_, i) => i),
  nonce: fill(24, 0xaa),
}

/** The golden token as generateConnectToken's options: made at its createTimestamp. */
export function goldenTokenOptions() {
  const { createTimestamp, ...options } = goldenToken
  return { ...options, nowSeconds: Number(createTimestamp) }
}

/** The private part's plaintext (1008 bytes before the MAC), per the standard. */
export function specPrivatePlain(): Uint8Array {
  const t = goldenToken
  return pad(
    [
      ...le(t.clientId, 8),
      ...le(t.timeoutSeconds, 4),
      ...le(t.serverAddresses.length, 4),
      ...t.serverAddresses.flatMap(specAddress),
      ...t.clientToServerKey,
      ...t.serverToClientKey,
      ...t.userData,
    ],
    1008,
  )
}

/** The public token, given its sealed private part. */
export function specPublicToken(sealedPrivate: Uint8Array): Uint8Array {
  const t = goldenToken
  const expire = t.createTimestamp + BigInt(t.expireSeconds)
  return pad(
    [
      ...VERSION,
      ...le(t.protocolId, 8),
      ...le(t.createTimestamp, 8),
      ...le(expire, 8),
      ...t.nonce,
      ...sealedPrivate,
      ...le(t.timeoutSeconds, 4),
      ...le(t.serverAddresses.length, 4),
      ...t.serverAddresses.flatMap(specAddress),
      ...t.clientToServerKey,
      ...t.serverToClientKey,
    ],
    2048,
  )
}

export function specNonce(sequence: bigint): Uint8Array {
  return Uint8Array.from([0, 0, 0, 0, ...le(sequence, 8)])
}

export function specPacketAd(protocolId: bigint, prefix: number): Uint8Array {
  return Uint8Array.from([...VERSION, ...le(protocolId, 8), prefix])
}
