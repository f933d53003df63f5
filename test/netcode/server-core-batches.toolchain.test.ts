// The native server core taking its datagrams in batches of 1 to 40, as the engine gives them (ReceiveBatch,
// whose table lookups run ahead of its datagrams), does exactly what a second one does with the same datagrams
// one by one: the same events, byte for byte, and the same state, over a seeded stream of datagrams and calls
// (honest handshakes and traffic, and their datagrams mutated, replayed, sent from other addresses, out of time).
import { beforeAll, describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { encodeConnectToken, readConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { PacketType } from '../../src/protocol/netcode/constants.ts'
import { encryptPacket, readEncryptedPacket, writeConnectionRequest } from './codecs/packets.ts'
import { type Sodium, loadSodium } from '../../src/protocol/netcode/sodium.ts'
import { seededRandom } from '../helpers.ts'
import type { ServerCoreBinding, ServerCoreOptions, ServerEvent } from './core-bindings.ts'
import { fill } from './spec.ts'

const protocolId = 0xd1ffn
const privateKey = fill(32, 0x42)
const serverAddress = '127.0.0.1:40000'
const T0 = 1_800_000_000n

let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

interface Honest {
  address: string
  token: ReturnType<typeof readConnectToken>
  sequence: bigint
  challenge: Uint8Array | undefined
}

function honestClient(clientId: number, address: string, timeoutSeconds: number): Honest {
  const bytes = encodeConnectToken(sodium, {
    protocolId,
    privateKey,
    clientId: BigInt(clientId),
    serverAddresses: [serverAddress],
    expireSeconds: 40,
    timeoutSeconds,
    userData: fill(8, clientId),
    nowSeconds: Number(T0),
  })
  return { address, token: readConnectToken(bytes), sequence: 0n, challenge: undefined }
}

/** What one run did: events of each kind the cores agreed on, and the server's counters at the end. */
interface Coverage {
  events: Record<ServerEvent['kind'], number>
  counters: Record<string, number>
  /** The sizes of the batches the batched core took. */
  batches: number[]
}

function run(seed: number, steps: number): Coverage {
  const random = seededRandom(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const options: ServerCoreOptions = { protocolId, privateKey, publicAddress: serverAddress, maxClients: 3, challengeKey: fill(32, 0x17), keepAliveIntervalUs: 100_000 }
  const NativeCore = (loadTestingAddon().netcode as unknown as { ServerCore: new (o: ServerCoreOptions) => ServerCoreBinding }).ServerCore
  const single = new NativeCore(options)
  const batched = new NativeCore(options)
  const clients = [honestClient(1, '127.0.0.1:50001', 2), honestClient(2, '127.0.0.1:50002', 5), honestClient(3, '10.0.0.3:50003', -1), honestClient(4, '[::1]:50004', 3)]
  const strangers = ['127.0.0.1:50099', '127.0.0.1:0', '[::ffff:127.0.0.1]:50001']
  const seen: { from: string; data: Uint8Array }[] = []
  let us = 0
  let unix = T0
  const events: Coverage['events'] = { send: 0, connect: 0, disconnect: 0, payload: 0 }
  const batches: number[] = []

  // Any call but a receive: the datagrams held for the batched core go in first, then both take the call.
  const both = (call: (core: ServerCoreBinding) => ServerEvent[], what: string): ServerEvent[] => {
    flush()
    const expected = call(single)
    expect(call(batched), `seed ${seed}: ${what}`).toEqual(expected)
    expect(batched.state(), `seed ${seed}: state after ${what}`).toEqual(single.state())
    for (const event of expected) events[event.kind]++
    return expected
  }
  let pending: { from: string; data: Uint8Array; what: string }[] = []
  let batchSize = 1
  const deliver = (from: string, data: Uint8Array, what: string): void => {
    seen.push({ from, data })
    pending.push({ from, data, what })
    if (pending.length >= batchSize) flush()
  }
  function flush(): void {
    if (pending.length === 0) return
    const expected: ServerEvent[] = []
    for (const { from, data } of pending) expected.push(...receiveOne(from, data))
    const got = batched.receiveBatch(pending.map(({ from, data }) => [from, data] as const), us, unix)
    const what = `seed ${seed}: a batch of ${pending.length} (${pending[0]!.what} to ${pending.at(-1)!.what})`
    // The same events in order, and the same datagrams in order: a call's events come before its datagrams.
    const apart = (events: ServerEvent[]) => ({ events: events.filter((e) => e.kind !== 'send'), sends: events.filter((e) => e.kind === 'send') })
    expect(apart(got), what).toEqual(apart(expected))
    expect(batched.state(), what).toEqual(single.state())
    batches.push(pending.length)
    pending = []
    batchSize = 1 + Math.floor(random() * 40)
  }
  // One datagram to the core that takes them one by one; the honest clients read the challenges it sends.
  const receiveOne = (from: string, data: Uint8Array): ServerEvent[] => {
    const received = single.receive(from, data, us, unix)
    for (const event of received) {
      events[event.kind]++
      if (event.kind !== 'send') continue
      const client = clients.find((each) => each.address === event.to)
      if (client === undefined) continue
      const read = readEncryptedPacket(sodium, event.data, { protocolId, key: client.token.serverToClientKey, accept: new Set([PacketType.connectionChallenge]) })
      if (read.ok) client.challenge = read.value.body
    }
    return received
  }
  const encrypted = (client: Honest, type: PacketType, body: Uint8Array): Uint8Array =>
    encryptPacket(sodium, { type, sequence: client.sequence++, body }, protocolId, client.token.clientToServerKey)

  for (let step = 0; step < steps; step++) {
    const roll = random()
    const client = pick(clients)
    if (roll < 0.15) {
      deliver(client.address, writeConnectionRequest(client.token), `step ${step}: request from ${client.address}`)
    } else if (roll < 0.3) {
      if (client.challenge !== undefined) deliver(client.address, encrypted(client, PacketType.connectionResponse, client.challenge), `step ${step}: response`)
    } else if (roll < 0.45) {
      const type = pick([PacketType.payload, PacketType.keepAlive, PacketType.payload, PacketType.disconnect])
      const body = type === PacketType.payload ? fill(1 + Math.floor(random() * 40), step & 0xff) : type === PacketType.keepAlive ? new Uint8Array(8) : new Uint8Array(0)
      deliver(client.address, encrypted(client, type, body), `step ${step}: type ${type}`)
    } else if (roll < 0.65 && seen.length > 0) {
      // A datagram seen before: again, mutated (bits flipped, cut, extended), and maybe from elsewhere.
      const { from, data } = pick(seen)
      const copy = Uint8Array.from(data)
      const mutation = random()
      let bytes: Uint8Array = copy
      if (mutation < 0.4) copy[Math.floor(random() * copy.length)]! ^= 1 << Math.floor(random() * 8)
      else if (mutation < 0.55) bytes = copy.subarray(0, Math.floor(random() * copy.length))
      else if (mutation < 0.65) bytes = Uint8Array.from([...copy, 0])
      deliver(random() < 0.7 ? from : pick(strangers), bytes, `step ${step}: replayed or mutated`)
    } else if (roll < 0.8) {
      // Up to 150 ms, now and then up to a second: keep-alives, resends and timeouts fall due between the datagrams.
      flush() // what was received came before the clock moved
      us += 1000 * Math.floor(random() * (random() < 0.2 ? 1000 : 150))
      if (random() < 0.05) unix += 1n
      both((core) => core.update(us, unix), `step ${step}: update at ${us}`)
    } else if (roll < 0.9) {
      const index = Math.floor(random() * 4)
      const body = fill(1 + Math.floor(random() * 30), 7)
      both((core) => core.sendPayload(index, body, us, unix), `step ${step}: send to ${index}`)
    } else if (roll < 0.95) {
      const index = Math.floor(random() * 4)
      both((core) => core.disconnect(index, us, unix), `step ${step}: disconnect ${index}`)
    } else if (random() < 0.5) {
      // A client that starts its sequence again (a new process with the same token).
      client.sequence = random() < 0.5 ? 0n : client.sequence
    } else {
      // A burst, as a busy gateway reads them: payloads of every client, interleaved, and datagrams seen before.
      batchSize = 33 + Math.floor(random() * 30)
      for (let i = 0; i < batchSize; i++) {
        const sender = pick(clients)
        if (random() < 0.7 || seen.length === 0) deliver(sender.address, encrypted(sender, PacketType.payload, fill(8, i)), `step ${step}: burst payload ${i}`)
        else deliver(pick(seen).from, pick(seen).data, `step ${step}: burst replay ${i}`)
      }
    }
  }
  both((core) => core.stop(us, unix), 'stop')
  for (let i = 0; i < 12; i++) {
    us += 100_000
    both((core) => core.update(us, unix), `update ${i} while stopping`)
  }
  expect(single.state().stopped).toBe(true)
  return { events, counters: single.state().counters, batches }
}

describe('the native server core taking datagrams in batches', () => {
  it('does what a core taking them one by one does, at every step: events byte for byte, and state', () => {
    const total: Coverage = { events: { send: 0, connect: 0, disconnect: 0, payload: 0 }, counters: {}, batches: [] }
    for (let seed = 1; seed <= 12; seed++) {
      const { events, counters, batches } = run(seed, 400)
      total.batches.push(...batches)
      for (const kind of Object.keys(events) as ServerEvent['kind'][]) total.events[kind] += events[kind]
      for (const [name, value] of Object.entries(counters)) total.counters[name] = (total.counters[name] ?? 0) + value
    }
    // Agreeing proves nothing if both refused everything: the stream must have reached what it is made to reach.
    for (const kind of ['send', 'connect', 'disconnect', 'payload'] as const) expect(total.events[kind], `${kind} events over the seeds`).toBeGreaterThan(0)
    // Mutated datagrams (malformed, decryption failed), replays, requests again from a client connected
    // (token refused), strangers' addresses (unknown address), a fourth client for three slots (denied).
    for (const counter of ['malformed', 'replayed', 'decryptionFailed', 'tokenRefused', 'unknownAddress', 'denied']) {
      expect(total.counters[counter], `${counter} over the seeds`).toBeGreaterThan(0)
    }
    // Batches of one, and batches larger than the 32 datagrams whose lines the server asks for at once.
    expect(total.batches).toContain(1)
    expect(Math.max(...total.batches), 'the largest batch').toBeGreaterThan(32)
  })
})
