// TransportBase (through an adapter stubbed here, whose connection below takes what the test says), the
// in-memory pair, and the send contract every adapter keeps (SessionTransport's comment): one table, run on
// MemoryTransport, StreamTransport, ClientTransport and PeerTransport.
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import { Duplex } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { goneBytes } from '../../src/util/bytes.ts'
import { Client, Server, generateConnectToken } from '../../src/index.ts'
import { StreamTransport } from '../../src/sessions/stream-transport.ts'
import { MemoryTransport, type SessionTransport, TransportBase, type TransportBaseOptions } from '../../src/sessions/transport.ts'
import { ClientTransport, type PeerTransport, serveSessions } from '../../src/sessions/volley-transport.ts'
import { type EngineKind, onEngine, waitFor, within } from '../helpers.ts'
import { watch } from './watch.ts'

/** A message of `size` bytes that starts with its number (one byte). */
function numbered(index: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size).fill(0xa0 | (index & 0x0f))
  bytes[0] = index
  return bytes
}

/** Runs `run` with uncaught exceptions caught (surfaceLater's), and returns them once `settled` holds. */
async function uncaughtDuring(run: () => void | Promise<void>, settled: (errors: unknown[]) => boolean): Promise<unknown[]> {
  const errors: unknown[] = []
  const swallow = (error: unknown): void => {
    errors.push(error)
  }
  process.on('uncaughtException', swallow)
  try {
    await run()
    await waitFor(() => settled(errors), 2000, 'the errors to surface')
    // One more turn: an error too many would show now.
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.off('uncaughtException', swallow)
  }
  return errors
}

/**
 * An adapter whose connection below takes `room` more messages (then refuses), recording what it took and
 * every call in `log`: TransportBase's own behaviour, with nothing else in the way.
 */
class StubTransport extends TransportBase {
  readonly maxMessageBytes: number
  room = 0
  readonly taken: Uint8Array[] = []
  readonly log: string[] = []
  /** Called inside trySend, before it answers (a reentrant call, an error of the connection below). */
  onTrySend: ((data: Uint8Array) => void) | undefined

  constructor(options: TransportBaseOptions & { maxMessageBytes?: number } = {}) {
    super(options.maxHeldBytes === undefined ? {} : { maxHeldBytes: options.maxHeldBytes })
    this.maxMessageBytes = options.maxMessageBytes ?? 1000
  }

  protected trySend(data: Uint8Array): boolean {
    this.onTrySend?.(data)
    if (this.room === 0) {
      this.log.push(`refused ${data[0]}`)
      return false
    }
    this.room--
    this.taken.push(data)
    this.log.push(`took ${data[0]}`)
    return true
  }

  protected closeBelow(error?: Error): void {
    this.log.push(`closeBelow ${error === undefined ? 'orderly' : (error as Error & { code?: string }).code ?? error.message}`)
  }

  /** The connection below has room for `room` more: what is held goes. */
  drainBelow(room: number): void {
    this.room = room
    this.sendHeld()
  }

  endBelow(error?: Error): void {
    this.ended(error)
  }
}

describe('TransportBase', () => {
  it('holds what the connection below refuses, counts its messages and bytes, sends it in order at the drain, then drains once', () => {
    const transport = new StubTransport()
    const seen = watch(transport)
    transport.room = 2
    expect(transport.send(numbered(0, 10))).toBe(true)
    expect(transport.send(numbered(1, 20))).toBe(true)
    expect(transport.send(numbered(2, 30))).toBe(false)
    expect(transport.writable).toBe(false)
    // Held behind the one refused, though the connection below might take it now.
    transport.room = 1
    expect(transport.send(numbered(3, 40))).toBe(false)
    expect(transport.heldMessages).toBe(2)
    expect(transport.heldBytes).toBe(70)
    expect(transport.taken.map((m) => m[0])).toEqual([0, 1])
    // Room for one: the first held goes, and no drain yet.
    transport.drainBelow(1)
    expect(transport.heldMessages).toBe(1)
    expect(transport.heldBytes).toBe(40)
    expect(seen.drains).toBe(0)
    transport.drainBelow(5)
    expect(transport.taken.map((m) => m[0])).toEqual([0, 1, 2, 3])
    expect(transport.taken.map((m) => m.byteLength)).toEqual([10, 20, 30, 40])
    expect(transport.heldMessages).toBe(0)
    expect(transport.heldBytes).toBe(0)
    expect(transport.writable).toBe(true)
    expect(seen.drains).toBe(1)
    // A drain of the connection below with nothing held is no 'drain'.
    transport.drainBelow(5)
    expect(seen.drains).toBe(1)
  })

  it('ends the connection with ERR_SEND_BACKLOG_FULL when a message would take the held bytes past maxHeldBytes; exactly the bound is held', () => {
    const transport = new StubTransport({ maxHeldBytes: 100 })
    expect(transport.maxHeldBytes).toBe(100)
    const seen = watch(transport)
    // What the connection below takes is not held: it does not count.
    transport.room = 3
    for (let i = 0; i < 3; i++) expect(transport.send(numbered(i, 90))).toBe(true)
    expect(transport.send(numbered(3, 60))).toBe(false)
    expect(transport.send(numbered(4, 40))).toBe(false)
    expect(transport.heldBytes).toBe(100) // the bound itself
    expect(transport.closed).toBe(false)
    expect(transport.send(numbered(5, 1))).toBe(false) // 101
    expect(transport.closed).toBe(true)
    expect(seen.closes).toHaveLength(1)
    const error = seen.closes[0] as Error & { code: string }
    expect(error.code).toBe('ERR_SEND_BACKLOG_FULL')
    expect(error.name).toBe('Error')
    expect(error.message).toContain('101 bytes (3 messages) were waiting')
    expect(error.message).toContain('bound of 100 bytes (the maxHeldBytes option)')
    // The connection below was closed with the error, and nothing held went to it.
    expect(transport.log).toEqual(['took 0', 'took 1', 'took 2', 'refused 3', 'closeBelow ERR_SEND_BACKLOG_FULL'])
    expect(transport.heldMessages).toBe(0)
    expect(transport.heldBytes).toBe(0)
    expect(transport.send(numbered(6, 1))).toBe(false)
    transport.drainBelow(10)
    expect(transport.taken).toHaveLength(3)
    expect(seen.closes).toHaveLength(1)
    expect(seen.drains).toBe(0)
  })

  it('counts what went at a partial drain out of the held bytes', () => {
    const transport = new StubTransport({ maxHeldBytes: 100 })
    const seen = watch(transport)
    for (let i = 0; i < 4; i++) transport.send(numbered(i, 25))
    expect(transport.heldBytes).toBe(100)
    transport.drainBelow(2)
    expect(transport.heldBytes).toBe(50)
    // Room for 50 more bytes held again.
    expect(transport.send(numbered(4, 50))).toBe(false)
    expect(transport.closed).toBe(false)
    expect(transport.send(numbered(5, 1))).toBe(false)
    expect(seen.closes).toEqual([expect.objectContaining({ code: 'ERR_SEND_BACKLOG_FULL', message: expect.stringContaining('101 bytes (4 messages)') })])
  })

  it('holds a message larger than the bound nowhere: the connection ends at once', () => {
    const transport = new StubTransport({ maxHeldBytes: 10, maxMessageBytes: 100 })
    const seen = watch(transport)
    transport.room = 1
    expect(transport.send(numbered(0, 100))).toBe(true) // taken at once: never held
    expect(transport.send(numbered(1, 11))).toBe(false)
    expect(seen.closes).toEqual([expect.objectContaining({ code: 'ERR_SEND_BACKLOG_FULL', message: expect.stringContaining('11 bytes (1 message) were waiting') })])
  })

  it('close() without an error first hands what is held to the connection below, in order, until it refuses one; the rest is dropped', () => {
    const transport = new StubTransport()
    const seen = watch(transport)
    for (let i = 0; i < 4; i++) transport.send(numbered(i, 10))
    expect(transport.heldMessages).toBe(4)
    transport.room = 2 // the connection below has room, and has not said so yet
    transport.close()
    // Once one is refused, those after it are held without asking the connection below.
    expect(transport.log).toEqual(['refused 0', 'took 0', 'took 1', 'refused 2', 'closeBelow orderly'])
    expect(seen.closes).toEqual([undefined])
    expect(seen.drains).toBe(0)
    expect(transport.heldMessages).toBe(0)
    transport.drainBelow(10)
    expect(transport.taken.map((m) => m[0])).toEqual([0, 1])
  })

  it('close(error) drops what is held, and so does an end of the connection below', () => {
    const closing = new StubTransport()
    const closingSeen = watch(closing)
    closing.send(numbered(0, 10))
    closing.room = 5
    const why = new Error('session over')
    closing.close(why)
    expect(closing.taken).toEqual([])
    expect(closing.log).toEqual(['refused 0', 'closeBelow session over'])
    expect(closingSeen.closes).toEqual([why])

    const ending = new StubTransport()
    const endingSeen = watch(ending)
    ending.send(numbered(0, 10))
    ending.endBelow()
    ending.drainBelow(5)
    ending.close()
    expect(ending.taken).toEqual([])
    expect(endingSeen.closes).toEqual([undefined])
    expect(ending.log).toEqual(['refused 0']) // closed already: close() did nothing below
  })

  it('an orderly close that the connection below ends with an error closes once, with that error', () => {
    const transport = new StubTransport()
    const seen = watch(transport)
    for (let i = 0; i < 3; i++) transport.send(numbered(i, 10))
    transport.room = 5
    const refusal = new Error('below refused message 1')
    transport.onTrySend = (data) => {
      if (data[0] === 1) transport.close(refusal) // as ChannelTransport does with its connection's error
    }
    transport.close()
    expect(seen.closes).toEqual([refusal])
    expect(transport.log).toEqual(['refused 0', 'took 0', 'closeBelow below refused message 1', 'took 1'])
    expect(transport.taken.map((m) => m[0])).toEqual([0, 1])
  })

  it('a drain reentered from the connection below sends nothing twice', () => {
    const transport = new StubTransport()
    const seen = watch(transport)
    for (let i = 0; i < 3; i++) transport.send(numbered(i, 10))
    let reentered = false
    transport.onTrySend = () => {
      if (reentered) return
      reentered = true
      transport.drainBelow(10)
    }
    transport.drainBelow(10)
    expect(transport.taken.map((m) => m[0])).toEqual([0, 1, 2])
    expect(seen.drains).toBe(1)
  })

  it("holds its own copy of the caller's bytes: a Buffer changed after send() does not change what goes", () => {
    const transport = new StubTransport()
    const reused = Buffer.from([7, 8, 9])
    transport.send(reused)
    reused.fill(0)
    transport.drainBelow(1)
    expect(transport.taken).toEqual([new Uint8Array([7, 8, 9])])
  })

  it("a 'close' handler that throws at the backlog's end does not throw out of send(): its error surfaces", async () => {
    const transport = new StubTransport({ maxHeldBytes: 5 })
    transport.on('close', () => {
      throw new Error('close handler')
    })
    let result: boolean | undefined
    const errors = await uncaughtDuring(
      () => {
        transport.send(numbered(0, 5))
        result = transport.send(numbered(1, 1))
      },
      (errors) => errors.length > 0,
    )
    expect(result).toBe(false)
    expect(transport.closed).toBe(true)
    expect(errors).toEqual([expect.objectContaining({ message: 'close handler' })])
  })

  it('checks maxHeldBytes: an integer from 1 to 2^53 - 1, 1 MiB by default', () => {
    expect(new StubTransport().maxHeldBytes).toBe(1 << 20)
    expect(new StubTransport({ maxHeldBytes: 1 }).maxHeldBytes).toBe(1)
    expect(new StubTransport({ maxHeldBytes: Number.MAX_SAFE_INTEGER }).maxHeldBytes).toBe(Number.MAX_SAFE_INTEGER)
    for (const bad of [0, -1, 1.5, 2 ** 53, Number.POSITIVE_INFINITY, Number.NaN]) {
      expect(() => new StubTransport({ maxHeldBytes: bad })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }))
    }
    expect(() => new StubTransport({ maxHeldBytes: '1024' as unknown as number })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: 'The "maxHeldBytes" option must be of type number. Received type string (\'1024\')' }),
    )
  })
})

describe('MemoryTransport', () => {
  it('a side that never reads: the sender holds up to maxHeldBytes (1 MiB), then ends the connection; the other side sees it end', async () => {
    const [controller, device] = MemoryTransport.pair()
    const atController = watch(controller)
    const atDevice = watch(device)
    device.pause()
    // 100,000 small requests pipelined to a side that takes none of them.
    const request = numbered(1, 100)
    let sent = 0
    while (sent < 100_000 && !controller.closed) {
      expect(controller.send(request)).toBe(false)
      sent++
    }
    // 1 MiB holds 10,485 of them; the next one ends it.
    expect(sent).toBe(Math.floor((1 << 20) / 100) + 1)
    expect(atController.closes).toEqual([
      expect.objectContaining({ code: 'ERR_SEND_BACKLOG_FULL', message: expect.stringContaining(`${10_486 * 100} bytes (10486 messages) were waiting`) }),
    ])
    expect(controller.heldBytes).toBe(0)
    await Promise.resolve()
    expect(atDevice.closes).toEqual([undefined])
    device.resume()
    expect(atDevice.messages).toEqual([])
  })

  it('holds while the other side is paused, and delivers in order at resume(), then drains', () => {
    const [a, b] = MemoryTransport.pair({ maxHeldBytes: 1000 })
    const atA = watch(a)
    const atB = watch(b)
    b.pause()
    for (let i = 0; i < 10; i++) expect(a.send(numbered(i, 100))).toBe(false)
    expect(a.heldMessages).toBe(10)
    expect(a.heldBytes).toBe(1000)
    expect(a.writable).toBe(false)
    b.resume()
    expect(atB.messages.map((m) => m[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(atA.drains).toBe(1)
    expect(a.heldBytes).toBe(0)
    expect(a.writable).toBe(true)
    expect(a.send(numbered(10, 100))).toBe(true)
    expect(atB.messages).toHaveLength(11)
  })

  it("close() hands on what the other side takes; what a paused side refuses is dropped", async () => {
    const [a, b] = MemoryTransport.pair()
    const atB = watch(b)
    b.pause()
    a.send(numbered(0, 10))
    a.send(numbered(1, 10))
    a.close()
    b.resume()
    await Promise.resolve()
    expect(atB.messages).toEqual([])
    expect(atB.closes).toEqual([undefined])

    // Sent from inside the other side's handler (which is delivering): queued there, and they come before the close.
    const [c, d] = MemoryTransport.pair()
    const atD = watch(d)
    d.once('message', () => {
      c.send(numbered(2, 10))
      c.close()
    })
    c.send(numbered(1, 10))
    await Promise.resolve()
    expect(atD.messages.map((m) => m[0])).toEqual([1, 2])
    expect(atD.closes).toEqual([undefined])
  })

  it("a 'message' handler that throws: send() does not throw, the error surfaces, and the messages after it still come", async () => {
    const [a, b] = MemoryTransport.pair()
    const heard: number[] = []
    b.on('message', (data) => {
      heard.push(data[0]!)
      if (data[0]! % 2 === 1) throw new Error(`handler ${data[0]}`)
    })
    const results: boolean[] = []
    const errors = await uncaughtDuring(
      () => {
        for (let i = 0; i < 4; i++) results.push(a.send(numbered(i, 4)))
        // Delivered from resume(), out of the inbox: resume() does not throw either.
        b.pause()
        a.send(numbered(4, 4))
        a.send(numbered(5, 4))
        b.resume()
      },
      (errors) => errors.length === 3,
    )
    expect(results).toEqual([true, true, true, true])
    expect(heard).toEqual([0, 1, 2, 3, 4, 5])
    expect(errors.map((error) => (error as Error).message)).toEqual(['handler 1', 'handler 3', 'handler 5'])
    expect(a.closed).toBe(false)
    expect(b.closed).toBe(false)
  })

  it("delivers its own copy as a plain Uint8Array: a Buffer changed after send() does not change what arrives", () => {
    const [a, b] = MemoryTransport.pair()
    const delivered: Uint8Array[] = []
    const reused = Buffer.from([1, 2, 3])
    b.on('message', (data) => {
      delivered.push(data)
      // The second send, from inside b's handler, waits in b's inbox while the caller changes its Buffer.
      if (delivered.length === 1) {
        reused.fill(9)
        a.send(reused)
        reused.fill(5)
      }
    })
    a.send(reused)
    expect(delivered).toEqual([new Uint8Array([1, 2, 3]), new Uint8Array([9, 9, 9])])
    expect(Buffer.isBuffer(delivered[0])).toBe(false)
    expect(delivered[0]!.buffer).not.toBe(reused.buffer)
  })

  it('checks its options: maxMessageBytes (1 to 2^31 - 1, no bound of its own by default), maxHeldBytes, filter', () => {
    const [a] = MemoryTransport.pair()
    expect(a.maxMessageBytes).toBe(2 ** 31 - 1)
    expect(a.maxHeldBytes).toBe(1 << 20)
    const [small, other] = MemoryTransport.pair({ maxMessageBytes: 4 })
    const atOther = watch(other)
    expect(small.send(new Uint8Array(4))).toBe(true)
    expect(() => small.send(new Uint8Array(5))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE', message: expect.stringContaining('at most 4 bytes (the maxMessageBytes option)') }))
    expect(() => other.send(new Uint8Array(5))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }))
    expect(atOther.messages).toHaveLength(1)
    for (const bad of [0, 2 ** 31, 1.5]) {
      expect(() => MemoryTransport.pair({ maxMessageBytes: bad })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    }
    expect(() => MemoryTransport.pair({ maxHeldBytes: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => MemoryTransport.pair({ filter: true as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"filter"') }))
    expect(() => MemoryTransport.pair({ maxHeldByte: 10 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => MemoryTransport.pair(null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})

// The send contract, on every adapter.

const privateKey = new Uint8Array(32).fill(12)
const protocolId = 0x5e56n
const channels = [{ mode: 'reliable' as const }]

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A Server serving sessions and a Client connected to it, on one engine: both their transports. */
async function volleyPair(engine: EngineKind, clientId: bigint): Promise<{ client: ClientTransport; peer: PeerTransport }> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, channels, disconnectIntervalMs: 5 })
  cleanups.push(() => server.close())
  const { port } = await onEngine(engine, () => server.listen())
  let peer: PeerTransport | undefined
  serveSessions(server, {}, (transport) => {
    peer = transport
  })
  const client = new Client({ channels, disconnectIntervalMs: 5 })
  cleanups.push(() => client.close())
  const token = await generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
  await within(
    onEngine(engine, () => client.connect(token)),
    5000,
    'the connection',
  )
  await waitFor(() => peer !== undefined, 5000, 'the peer transport')
  return { client: new ClientTransport(client), peer: peer! }
}

async function loopbackSocket(): Promise<net.Socket> {
  const server = net.createServer()
  cleanups.push(() => server.close())
  server.listen(0, '127.0.0.1')
  await within(once(server, 'listening'), 5000, 'the server to listen')
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1')
  cleanups.push(() => client.destroy())
  const [socket] = await within(accepted, 5000, 'the connection')
  cleanups.push(() => socket.destroy())
  return socket
}

/** What the contract table runs on: an open transport, and the largest message it takes. */
type Adapter = [name: string, make: () => Promise<{ transport: SessionTransport; maxMessageBytes: number }>]

let nextClientId = 100n
const adapters: Adapter[] = [
  ['MemoryTransport', async () => ({ transport: MemoryTransport.pair({ maxMessageBytes: 64 })[0], maxMessageBytes: 64 })],
  [
    'StreamTransport over a stream.Duplex',
    async () => {
      const stream = new Duplex({ read() {}, write: (_chunk, _encoding, callback) => callback() })
      return { transport: new StreamTransport(stream, { maxMessageBytes: 64 }), maxMessageBytes: 64 }
    },
  ],
  ['StreamTransport over a loopback socket', async () => ({ transport: new StreamTransport(await loopbackSocket()), maxMessageBytes: 8192 })],
  ...(['native', 'fallback'] as const).flatMap((engine): Adapter[] => [
    [`ClientTransport (${engine} engine)`, async () => ({ transport: (await volleyPair(engine, nextClientId++)).client, maxMessageBytes: 1 << 20 })],
    [`PeerTransport (${engine} engine)`, async () => ({ transport: (await volleyPair(engine, nextClientId++)).peer, maxMessageBytes: 1 << 20 })],
  ]),
]

/** The rows: what is sent, and what an open transport does with it ('taken': no throw, a boolean). */
function contractRows(max: number): [what: string, data: () => unknown, open: 'taken' | { code: string; name: string }][] {
  const wrongType = { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' }
  return [
    ['a string', () => 'text', wrongType],
    ['undefined', () => undefined, wrongType],
    ['null', () => null, wrongType],
    ['a number', () => 42, wrongType],
    ['an array of bytes', () => [1, 2, 3], wrongType],
    ['an ArrayBuffer', () => new ArrayBuffer(4), wrongType],
    ['a DataView', () => new DataView(new ArrayBuffer(4)), wrongType],
    ['a Uint16Array', () => new Uint16Array(2), wrongType],
    ['a Uint8ClampedArray', () => new Uint8ClampedArray(2), wrongType],
    ['an object shaped like bytes', () => ({ byteLength: 3, buffer: new ArrayBuffer(3) }), wrongType],
    ['a view whose buffer is detached', goneBytes, { code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' }],
    ['an empty Uint8Array', () => new Uint8Array(0), { code: 'ERR_PAYLOAD_SIZE', name: 'RangeError' }],
    ['an empty Buffer', () => Buffer.alloc(0), { code: 'ERR_PAYLOAD_SIZE', name: 'RangeError' }],
    ['an empty view of a larger buffer', () => new Uint8Array(16).subarray(8, 8), { code: 'ERR_PAYLOAD_SIZE', name: 'RangeError' }],
    ['maxMessageBytes + 1 bytes', () => new Uint8Array(max + 1), { code: 'ERR_MESSAGE_TOO_LARGE', name: 'RangeError' }],
    ['one byte', () => new Uint8Array([1]), 'taken'],
    ['a Buffer', () => Buffer.from([1, 2, 3]), 'taken'],
    ['maxMessageBytes bytes', () => new Uint8Array(max), 'taken'],
  ]
}

describe.each(adapters)('the send contract on %s', (_name, make) => {
  it('open: a typed error for what it cannot take (the transport stays open), a boolean for what it takes', async () => {
    const { transport, maxMessageBytes } = await make()
    for (const [what, data, open] of contractRows(maxMessageBytes)) {
      const send = (): boolean => transport.send(data() as Uint8Array)
      if (open === 'taken') {
        expect(typeof send(), what).toBe('boolean')
        continue
      }
      let thrown: unknown
      try {
        send()
      } catch (error) {
        thrown = error
      }
      expect(thrown, what).toEqual(expect.objectContaining(open))
      expect(transport.closed, what).toBe(false)
    }
    expect(() => transport.send(new Uint8Array(maxMessageBytes + 1))).toThrow(`at most ${maxMessageBytes} bytes`)
    expect(() => transport.send(new Uint8Array(0))).toThrow(`1 to ${maxMessageBytes} bytes`)
  })

  it('closed: false for everything, and nothing thrown', async () => {
    const { transport, maxMessageBytes } = await make()
    const seen = watch(transport)
    transport.close()
    expect(seen.closes).toEqual([undefined])
    for (const [what, data] of contractRows(maxMessageBytes)) expect(transport.send(data() as Uint8Array), what).toBe(false)
    expect(transport.writable).toBe(false)
    expect(seen.closes).toHaveLength(1)
  })
})
