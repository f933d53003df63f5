// Hand-made netcode peers for the attack suite (test/adversarial-server.test.ts) and the attack report
// (bench/attacks.ts): they hold valid connect tokens, as a paying customer can, and send over loopback what an
// attacker would rather than what a Volley client does. Each speaks netcode 1.02 and the delivery layer's
// frames byte for byte, from the project's own codecs.
import dgram from 'node:dgram'
import { type ConnectToken, encodeConnectToken, readConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { PacketType } from '../../src/protocol/netcode/constants.ts'
import { encryptPacket, readEncryptedPacket, writeConnectionRequest } from '../../test/netcode/codecs/packets.ts'
import type { Sodium } from '../../src/protocol/netcode/sodium.ts'
import { Frame, packetMarker } from '../../src/protocol/delivery/wire-format.ts'

/** The server attacked: where it listens and the key its tokens are sealed with. */
export interface Target {
  host: string
  port: number
  protocolId: bigint
  privateKey: Uint8Array
}

/** A connect token for `clientId`, as the target's backend would make it (10 s timeout, 60 s to live). */
export function tokenFor(sodium: Sodium, target: Target, clientId: bigint, timeoutSeconds = 10): ConnectToken {
  return readConnectToken(
    encodeConnectToken(sodium, {
      protocolId: target.protocolId,
      privateKey: target.privateKey,
      clientId,
      serverAddresses: [`${target.host}:${target.port}`],
      expireSeconds: 60,
      timeoutSeconds,
    }),
  )
}

/** A datagram socket bound on loopback, closed with the peer. */
export async function loopbackSocket(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject)
      resolve()
    })
  })
  return socket
}

const everyType = new Set<number>([PacketType.connectionDenied, PacketType.connectionChallenge, PacketType.keepAlive, PacketType.payload, PacketType.disconnect])

/**
 * A netcode client that does only what it is told: it handshakes when asked, keeps its connection alive, and
 * sends the payloads (delivery packets) it is given, encrypted with its keys. It counts what the server sends.
 */
export class RawPeer {
  state: 'idle' | 'requesting' | 'responding' | 'connected' | 'disconnected' | 'denied' = 'idle'
  challenges = 0
  payloadsIn = 0
  bytesIn = 0
  /** Packets and bytes this peer sent. */
  packetsOut = 0
  bytesOut = 0
  #sequence = 0n
  #challenge: Uint8Array | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #connected: Promise<boolean>
  #settle: (connected: boolean) => void = () => {}

  private constructor(
    readonly sodium: Sodium,
    readonly target: Target,
    readonly token: ConnectToken,
    readonly socket: dgram.Socket,
  ) {
    this.#connected = new Promise((resolve) => (this.#settle = resolve))
    socket.on('message', (data) => this.#receive(data))
  }

  static async open(sodium: Sodium, target: Target, token: ConnectToken): Promise<RawPeer> {
    return new RawPeer(sodium, target, token, await loopbackSocket())
  }

  get port(): number {
    return this.socket.address().port
  }

  /** The raw bytes, as they are (a request, garbage, a captured packet). */
  sendRaw(data: Uint8Array): void {
    this.packetsOut++
    this.bytesOut += data.byteLength
    this.socket.send(data, this.target.port, this.target.host)
  }

  request(): void {
    this.sendRaw(writeConnectionRequest(this.token))
  }

  /** An encrypted packet of this peer's connection, with its next sequence number. */
  packet(type: number, body: Uint8Array): Uint8Array {
    return encryptPacket(this.sodium, { type: type as PacketType, sequence: this.#sequence++, body }, this.target.protocolId, this.token.clientToServerKey)
  }

  send(type: number, body: Uint8Array): void {
    this.sendRaw(this.packet(type, body))
  }

  /**
   * Handshakes as a client does (a request, then a response, each resent every `resendMs` until answered), then
   * sends a keep-alive every `keepAliveMs`. Resolves true once connected, false when denied or after `timeoutMs`.
   */
  connect(options: { resendMs?: number; keepAliveMs?: number; timeoutMs?: number } = {}): Promise<boolean> {
    const { resendMs = 100, keepAliveMs = 500, timeoutMs = 10_000 } = options
    this.state = 'requesting'
    const started = Date.now()
    const tick = (): void => {
      if (this.state === 'requesting') this.request()
      else if (this.state === 'responding') this.send(PacketType.connectionResponse, this.#challenge!)
      else if (this.state === 'connected') this.send(PacketType.keepAlive, new Uint8Array(8))
      if (this.state !== 'connected' && Date.now() - started > timeoutMs) this.#settle(false)
    }
    tick()
    this.#timer = setInterval(() => {
      tick()
      if (this.state === 'connected' && this.#timer !== undefined) {
        clearInterval(this.#timer)
        this.#timer = setInterval(tick, keepAliveMs)
      }
    }, resendMs)
    return this.#connected
  }

  /** Stops resending and keeping alive; the socket stays open (the server's packets are still counted). */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  close(): void {
    this.stop()
    this.#settle(false)
    this.socket.close()
  }

  #receive(data: Buffer): void {
    this.bytesIn += data.byteLength
    const read = readEncryptedPacket(this.sodium, data, { protocolId: this.target.protocolId, key: this.token.serverToClientKey, accept: everyType })
    if (!read.ok) return
    const { type, body } = read.value
    if (type === PacketType.connectionChallenge) {
      this.challenges++
      if (this.state === 'requesting') {
        this.#challenge = body.slice()
        this.state = 'responding'
        this.send(PacketType.connectionResponse, this.#challenge)
      }
    } else if (type === PacketType.keepAlive || type === PacketType.payload) {
      if (type === PacketType.payload) this.payloadsIn++
      if (this.state === 'responding' || this.state === 'requesting') {
        this.state = 'connected'
        this.#settle(true)
      }
    } else if (type === PacketType.connectionDenied) {
      this.state = 'denied'
      this.#settle(false)
    } else if (type === PacketType.disconnect) {
      if (this.state === 'connected') this.state = 'disconnected'
      this.stop()
    }
  }
}

/** LEB128, as the delivery layer writes its varints. */
export function varint(value: number): number[] {
  const out: number[] = []
  while (value >= 0x80) {
    out.push((value % 128) | 0x80)
    value = Math.floor(value / 128)
  }
  out.push(value)
  return out
}

/** The delivery layer's frames (native/protocol/delivery/wire_format.h), as an attacker writes them. */
export const frames = {
  /** A client's settings (role 0): its largest message and its channels' modes (1 reliable, 2 unreliable, 3 sequenced). */
  settings: (maxMessageBytes: number, modes: readonly number[]): number[] => [Frame.settings, 0, ...varint(maxMessageBytes), ...varint(modes.length), ...modes],
  message: (channel: number, sequence: number, data: readonly number[]): number[] => [Frame.message, channel, ...varint(sequence), ...varint(data.length), ...data],
  /** Fragment `index` of a message announced at `length` bytes, carrying `bytes` bytes of data. */
  fragment: (channel: number, sequence: number, length: number, index: number, bytes: number): number[] => [
    Frame.fragment,
    channel,
    ...varint(sequence),
    ...varint(length),
    ...varint(index),
    ...new Array<number>(bytes).fill(0x5a),
  ],
  /** An ACK of packets `lowest` to `largest`, none of which the peer may have sent. */
  ack: (largest: number, lowest: number): number[] => [Frame.ack, ...varint(largest), 0, ...varint(largest - lowest), 0],
  ping: (id: number, clockUs: number): number[] => [Frame.ping, ...varint(id), ...varint(clockUs)],
}

/** Numbers a connection's delivery packets and writes them (the marker, the packet number, the frames). */
export class DeliveryPackets {
  number = 0
  packet(...parts: number[][]): Uint8Array {
    return Uint8Array.from([packetMarker, ...varint(this.number++), ...parts.flat()])
  }
}
