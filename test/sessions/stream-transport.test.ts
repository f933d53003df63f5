// StreamTransport: 4-byte big-endian length framing over a real loopback TCP connection, a stream.Duplex fed
// by hand (every chunk boundary under the test's control), and TLS with a development CA made here.
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import { Duplex } from 'node:stream'
import tls from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { StreamTransport } from '../../src/sessions/stream-transport.ts'
import { within, waitFor } from '../helpers.ts'
import { makeDevCertificates } from '../../src/sessions/keysync/dev-certificates.ts'
import { watch } from './watch.ts'

/** A frame as the wire carries it: the length (u32 big-endian), then the bytes. */
function frame(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + payload.byteLength)
  out.writeUInt32BE(payload.byteLength, 0)
  out.set(payload, 4)
  return out
}

function prefix(length: number): Buffer {
  const out = Buffer.alloc(4)
  out.writeUInt32BE(length, 0)
  return out
}

/** A payload of `size` bytes whose content depends on `seed` and on each byte's place. */
function payload(size: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed * 7 + 1) & 0xff
  return bytes
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * The transport under test on one end of a link, and raw bytes at the other: what is written there, and what
 * the transport wrote.
 */
interface RawLink {
  transport: StreamTransport
  /** Writes bytes at the raw end; resolves once the transport's stream has read them all (or has closed). */
  writeRaw(bytes: Uint8Array): Promise<void>
  /** The bytes the transport wrote, as the raw end has them. */
  received(): Buffer
  /** Ends the raw end's writing (a FIN; an end of stream). */
  endRaw(): void
  /** Resolves when the transport's stream has been torn down. */
  streamClosed(): Promise<void>
}

const openSockets: net.Socket[] = []
const openServers: net.Server[] = []
afterEach(() => {
  for (const socket of openSockets.splice(0)) socket.destroy()
  for (const server of openServers.splice(0)) server.close()
})

/** Two ends of a TCP connection on loopback. */
async function socketPair(): Promise<[client: net.Socket, accepted: net.Socket]> {
  const server = net.createServer()
  openServers.push(server)
  server.listen(0, '127.0.0.1')
  await within(once(server, 'listening'), 5000, 'the server to listen')
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1')
  openSockets.push(client)
  const [socket] = await within(accepted, 5000, 'the connection')
  openSockets.push(socket)
  if (client.connecting) await within(once(client, 'connect'), 5000, 'the client to connect')
  return [client, socket]
}

/** Polls until the condition holds; fails after 5 s. */
function until(condition: () => boolean, what: string): Promise<void> {
  return waitFor(condition, 5000, what)
}

async function netLink(options?: ConstructorParameters<typeof StreamTransport>[1]): Promise<RawLink> {
  const [raw, socket] = await socketPair()
  raw.setNoDelay(true)
  const transport = new StreamTransport(socket, options)
  const chunks: Buffer[] = []
  raw.on('data', (chunk: Buffer) => chunks.push(chunk))
  raw.on('error', () => {}) // a reset from the transport's side, when it refuses a frame with bytes unread
  let written = 0
  return {
    transport,
    async writeRaw(bytes) {
      written += bytes.byteLength
      raw.write(bytes)
      // Read by the transport's socket (bytesRead counts as it hands a chunk to its 'data' listeners).
      await until(() => socket.bytesRead >= written || socket.destroyed, 'the bytes to be read')
    },
    received: () => Buffer.concat(chunks),
    endRaw: () => raw.end(),
    async streamClosed() {
      if (!socket.closed) await within(once(socket, 'close'), 5000, "the transport's socket to close")
      if (!raw.closed) await within(once(raw, 'close'), 5000, 'the raw socket to close')
    },
  }
}

/**
 * A Duplex fed by hand: what is pushed into it is what the transport reads, in exactly those chunks; what the
 * transport writes is recorded. holdWrites: each write's callback waits for release(), so the stream's
 * buffer fills (its highWaterMark: 16 KiB by default on Node 20, 64 KiB from Node 22).
 */
function handFed(options: { highWaterMark?: number; holdWrites?: boolean } = {}) {
  const written: Buffer[] = []
  const held: (() => void)[] = []
  let holding = options.holdWrites ?? false
  const stream = new Duplex({
    ...(options.highWaterMark === undefined ? {} : { highWaterMark: options.highWaterMark }),
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      written.push(Buffer.from(chunk))
      if (holding) held.push(() => callback())
      else callback()
    },
  })
  return {
    stream,
    written,
    /** Lets every held write complete, and the ones after it at once. */
    release() {
      holding = false
      for (const callback of held.splice(0)) callback()
    },
  }
}

function duplexLink(options?: ConstructorParameters<typeof StreamTransport>[1]): RawLink {
  const { stream, written } = handFed()
  const transport = new StreamTransport(stream, options)
  return {
    transport,
    async writeRaw(bytes) {
      stream.push(Buffer.from(bytes))
      await tick()
    },
    received: () => Buffer.concat(written),
    endRaw: () => stream.push(null),
    async streamClosed() {
      if (!stream.destroyed) await within(once(stream, 'close'), 5000, 'the stream to close')
    },
  }
}

const links: [string, (options?: ConstructorParameters<typeof StreamTransport>[1]) => Promise<RawLink> | RawLink][] = [
  ['a net loopback socket', netLink],
  ['a stream.Duplex fed by hand', duplexLink],
]

describe.each(links)('over %s', (_name, makeLink) => {
  it('carries messages both ways, each a frame of 4-byte big-endian length and bytes', async () => {
    const link = await makeLink()
    const seen = watch(link.transport)
    const out = [payload(1, 1), payload(300, 2), payload(8192, 3)]
    for (const message of out) expect(link.transport.send(message)).toBe(true)
    await until(() => link.received().byteLength === 4 + 1 + 4 + 300 + 4 + 8192, 'the frames sent')
    expect(link.received()).toEqual(Buffer.concat(out.map(frame)))
    await link.writeRaw(Buffer.concat([frame(payload(5, 4)), frame(payload(1000, 5))]))
    expect(seen.messages).toEqual([payload(5, 4), payload(1000, 5)])
    expect(seen.closes).toEqual([])
  })

  it('takes a frame split at every byte, the length prefix included (fed one byte at a time)', async () => {
    const link = await makeLink()
    const seen = watch(link.transport)
    const messages = [payload(1, 6), payload(3, 7), payload(260, 8)]
    const wire = Buffer.concat(messages.map(frame))
    for (let i = 0; i < wire.byteLength; i++) {
      await link.writeRaw(wire.subarray(i, i + 1))
      // A message comes with its last byte, not before.
      const whole = messages.filter((_, index) => Buffer.concat(messages.slice(0, index + 1).map(frame)).byteLength <= i + 1).length
      expect(seen.messages.length).toBe(whole)
    }
    expect(seen.messages).toEqual(messages)
    expect(seen.closes).toEqual([])
  })

  it('takes many frames in one chunk, in order', async () => {
    const link = await makeLink()
    const seen = watch(link.transport)
    const messages = Array.from({ length: 100 }, (_, i) => payload(1 + ((i * 37) % 200), i))
    await link.writeRaw(Buffer.concat(messages.map(frame)))
    expect(seen.messages).toEqual(messages)
  })

  it('takes a frame of exactly maxMessageBytes (8192 by default)', async () => {
    const link = await makeLink()
    const seen = watch(link.transport)
    await link.writeRaw(frame(payload(8192, 9)))
    expect(seen.messages).toEqual([payload(8192, 9)])
    expect(seen.closes).toEqual([])
  })

  it.each([
    [8193, 'a frame of 8193 bytes'],
    [0, 'an empty frame'],
    [0xffff_ffff, 'a frame of 4294967295 bytes'],
  ])('ends the connection at a frame of length %i: ERR_FRAME_SIZE, nothing written back, the payload not read', async (length, said) => {
    const link = await makeLink()
    const seen = watch(link.transport)
    // The frame's bytes follow (some of them), then a good frame that must never be read.
    await link.writeRaw(Buffer.concat([prefix(length), payload(Math.min(length, 100), 1), frame(payload(4, 2))]))
    await link.streamClosed()
    expect(seen.messages).toEqual([])
    expect(seen.closes).toHaveLength(1)
    const error = seen.closes[0] as Error & { code: string }
    expect(error.code).toBe('ERR_FRAME_SIZE')
    expect(error.message).toContain(said)
    expect(error.message).toContain('1 to 8192 bytes')
    expect(link.transport.closed).toBe(true)
    expect(link.received().byteLength).toBe(0)
  })

  it('applies its own maxMessageBytes to frames in and messages out', async () => {
    const link = await makeLink({ maxMessageBytes: 16 })
    const seen = watch(link.transport)
    expect(() => link.transport.send(new Uint8Array(17))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE', name: 'RangeError' }))
    expect(link.transport.send(payload(16))).toBe(true)
    await link.writeRaw(frame(payload(16, 3)))
    expect(seen.messages).toEqual([payload(16, 3)])
    await link.writeRaw(frame(payload(17, 3)))
    await link.streamClosed()
    expect(seen.closes).toEqual([expect.objectContaining({ code: 'ERR_FRAME_SIZE', message: expect.stringContaining('1 to 16 bytes') })])
  })

  it('waits on a partial frame: no message and no close until the rest comes', async () => {
    const link = await makeLink()
    const seen = watch(link.transport)
    const whole = frame(payload(500, 4))
    await link.writeRaw(whole.subarray(0, 200))
    await tick()
    expect(seen.messages).toEqual([])
    expect(seen.closes).toEqual([])
    expect(link.transport.closed).toBe(false)
    await link.writeRaw(whole.subarray(200))
    expect(seen.messages).toEqual([payload(500, 4)])
  })

  it("closes once, without an error, when the other side ends between frames; and ends its own side", async () => {
    const link = await makeLink()
    const seen = watch(link.transport)
    await link.writeRaw(frame(payload(10)))
    link.endRaw()
    await link.streamClosed()
    expect(seen.messages).toEqual([payload(10)])
    expect(seen.closes).toEqual([undefined])
    expect(link.transport.send(payload(3))).toBe(false) // dropped after the close
  })

  it('closes with ERR_CONNECTION_CLOSED when the other side ends inside a frame', async () => {
    const link = await makeLink()
    const seen = watch(link.transport)
    await link.writeRaw(frame(payload(100)).subarray(0, 50))
    link.endRaw()
    await link.streamClosed()
    expect(seen.closes).toEqual([expect.objectContaining({ code: 'ERR_CONNECTION_CLOSED', message: expect.stringContaining('46 of its 100 bytes') })])
  })

  it('close() sends what was written, then ends the stream; close once, and later sends are dropped', async () => {
    const link = await makeLink()
    const seen = watch(link.transport)
    const messages = [payload(7, 1), payload(8000, 2)]
    for (const message of messages) link.transport.send(message)
    link.transport.close()
    link.transport.close()
    expect(seen.closes).toEqual([undefined])
    expect(link.transport.closed).toBe(true)
    expect(link.transport.writable).toBe(false)
    expect(link.transport.send(payload(5))).toBe(false)
    await link.streamClosed()
    expect(link.received()).toEqual(Buffer.concat(messages.map(frame)))
  })
})

describe('StreamTransport', () => {
  it('delivers a view of the chunk for a frame inside one chunk, and a plain Uint8Array (its slice() copies)', async () => {
    const { stream } = handFed()
    const transport = new StreamTransport(stream)
    const views: Uint8Array[] = []
    transport.on('message', (data) => views.push(data))
    const chunk = Buffer.concat([frame(payload(10, 1)), frame(payload(20, 2))])
    stream.push(chunk)
    await tick()
    expect(views).toHaveLength(2)
    for (const view of views) {
      expect(Buffer.isBuffer(view)).toBe(false)
      expect(view.buffer).toBe(chunk.buffer) // no copy
    }
    expect(views[1]!.byteOffset).toBe(chunk.byteOffset + 4 + 10 + 4)
    // A frame that spans chunks is joined: its own bytes.
    const spanning = frame(payload(30, 3))
    stream.push(spanning.subarray(0, 12))
    await tick()
    stream.push(spanning.subarray(12))
    await tick()
    expect(views[2]).toEqual(payload(30, 3))
    expect(views[2]!.buffer).not.toBe(spanning.buffer)
  })

  it('takes two frames split at every boundary between two chunks', async () => {
    const messages = [payload(6, 1), payload(9, 2)]
    const wire = Buffer.concat(messages.map(frame))
    for (let cut = 0; cut <= wire.byteLength; cut++) {
      const { stream } = handFed()
      const seen = watch(new StreamTransport(stream))
      stream.push(wire.subarray(0, cut))
      await tick()
      stream.push(wire.subarray(cut))
      await tick()
      expect(seen.messages, `cut at ${cut}`).toEqual(messages)
    }
  })

  it("writes its own copy of the caller's bytes: a view reused after send() does not change the frame", async () => {
    const fed = handFed({ holdWrites: true })
    const transport = new StreamTransport(fed.stream)
    const reused = payload(64, 1)
    transport.send(reused)
    transport.send(reused) // buffered by the stream while the first write is held
    reused.fill(0)
    fed.release()
    await tick()
    expect(Buffer.concat(fed.written)).toEqual(Buffer.concat([frame(payload(64, 1)), frame(payload(64, 1))]))
  })

  it("returns false once the stream's buffer passes its high-water mark, and drains when the stream does (hand-fed)", async () => {
    const fed = handFed({ holdWrites: true, highWaterMark: 16 << 10 })
    const transport = new StreamTransport(fed.stream)
    const seen = watch(transport)
    const message = payload(8192)
    expect(transport.send(message)).toBe(true) // 8196 bytes buffered
    expect(transport.writable).toBe(true)
    expect(transport.send(message)).toBe(false) // 16392: past 16384
    expect(transport.writable).toBe(false)
    expect(transport.send(message)).toBe(false) // still taken
    expect(seen.drains).toBe(0)
    fed.release()
    await tick()
    expect(seen.drains).toBe(1)
    expect(transport.writable).toBe(true)
    expect(Buffer.concat(fed.written)).toEqual(Buffer.concat([frame(message), frame(message), frame(message)]))
  })

  it('returns false when the socket is full (the other side not reading), then drains, and nothing is lost (net)', async () => {
    const [client, accepted] = await socketPair()
    const sender = new StreamTransport(client)
    const receiver = new StreamTransport(accepted)
    const received: number[] = []
    receiver.on('message', (data) => received.push(new DataView(data.buffer, data.byteOffset).getUint32(0)))
    accepted.pause() // the kernel's buffers fill, then the socket's own
    const seen = watch(sender)
    let sent = 0
    const message = payload(8192)
    const view = new DataView(message.buffer)
    for (; sent < 20_000; ) {
      view.setUint32(0, sent)
      if (!sender.send(message)) {
        sent++
        break
      }
      sent++
    }
    expect(sender.writable).toBe(false)
    expect(sent).toBeLessThan(20_000)
    const drained = once(sender, 'drain')
    accepted.resume()
    await within(drained, 5000, "the sender's drain")
    expect(seen.drains).toBe(1)
    expect(sender.writable).toBe(true)
    await until(() => received.length === sent, 'every message')
    expect(received).toEqual(Array.from({ length: sent }, (_, i) => i))
    sender.close()
    await within(once(receiver, 'close'), 5000, "the receiver's close")
  })

  it('ends the connection with ERR_SEND_BACKLOG_FULL once the stream holds more than maxHeldBytes (hand-fed, exact)', async () => {
    const message = payload(8192)
    // Each frame is 8196 bytes; the stream's write callbacks never come, so every byte stays in its buffer.
    // The high-water mark named: Node 22 raised its default from 16 KiB to 64 KiB.
    const under = handFed({ holdWrites: true, highWaterMark: 16_384 })
    const bounded = new StreamTransport(under.stream, { maxHeldBytes: 20_000 })
    expect(bounded.maxHeldBytes).toBe(20_000)
    const seen = watch(bounded)
    expect(bounded.send(message)).toBe(true) // 8196
    expect(bounded.send(message)).toBe(false) // 16392: past the high-water mark, within the bound
    expect(bounded.closed).toBe(false)
    expect(bounded.send(message)).toBe(false) // 24588: past the bound
    expect(bounded.closed).toBe(true)
    expect(under.stream.destroyed).toBe(true)
    expect(seen.closes).toEqual([
      expect.objectContaining({
        code: 'ERR_SEND_BACKLOG_FULL',
        message: expect.stringContaining("24588 bytes were waiting in the stream's write buffer, past the bound of 20000 bytes (the maxHeldBytes option)"),
      }),
    ])
    expect(bounded.send(message)).toBe(false)
    expect(bounded.writable).toBe(false)
    await tick()
    expect(seen.closes).toHaveLength(1)
    expect(seen.drains).toBe(0)

    // The bound itself is held.
    const exact = new StreamTransport(handFed({ holdWrites: true }).stream, { maxHeldBytes: 3 * 8196 })
    for (let i = 0; i < 3; i++) exact.send(message)
    expect(exact.closed).toBe(false)
    exact.send(payload(1))
    expect(exact.closed).toBe(true)
  })

  it('ends the connection with ERR_SEND_BACKLOG_FULL when the other side stops reading (net loopback)', async () => {
    const [client, accepted] = await socketPair()
    const maxHeldBytes = 256 << 10
    const sender = new StreamTransport(client, { maxHeldBytes })
    const receiver = new StreamTransport(accepted)
    const atReceiver = watch(receiver)
    accepted.pause() // the kernel's buffers fill, then the socket's own
    const seen = watch(sender)
    const message = payload(8192)
    let sent = 0
    let refused = 0
    // 100,000 frames are 820 MB: far beyond any loopback socket's kernel buffers, so the bound is reached first.
    while (sent < 100_000 && !sender.closed) {
      if (!sender.send(message)) refused++
      sent++
    }
    expect(sender.closed).toBe(true)
    expect(refused).toBeGreaterThan(0)
    expect(seen.closes).toHaveLength(1)
    const error = seen.closes[0] as Error & { code: string }
    expect(error.code).toBe('ERR_SEND_BACKLOG_FULL')
    // The frame that passed the bound is the last one: what waited was more than the bound by at most one frame.
    const waiting = Number(/^(\d+) bytes were waiting/.exec(error.message)?.[1])
    expect(waiting).toBeGreaterThan(maxHeldBytes)
    expect(waiting).toBeLessThanOrEqual(maxHeldBytes + 8196)
    expect(error.message).toContain(`the bound of ${maxHeldBytes} bytes`)
    expect(client.destroyed).toBe(true)
    // The other side sees the connection go (a reset, or an end inside a frame), once it reads again.
    accepted.resume()
    await within(once(receiver, 'close'), 5000, "the receiver's close")
    expect(atReceiver.closes).toHaveLength(1)
  })

  it('a message handler that throws: its error surfaces, and the frames after it in the chunk still come', async () => {
    const { stream } = handFed()
    const transport = new StreamTransport(stream)
    const heard: number[] = []
    transport.on('message', (data) => {
      heard.push(data[0]!)
      if (data[0] === 1) throw new Error('handler')
    })
    const errors: unknown[] = []
    const swallow = (error: unknown) => errors.push(error)
    process.on('uncaughtException', swallow)
    try {
      stream.push(Buffer.concat([1, 2, 3].map((n) => frame(new Uint8Array([n, n])))))
      await until(() => errors.length === 1, 'the error to surface')
      stream.push(frame(new Uint8Array([4])))
      await tick()
    } finally {
      process.off('uncaughtException', swallow)
    }
    expect(heard).toEqual([1, 2, 3, 4])
    expect(errors).toEqual([expect.objectContaining({ message: 'handler' })])
  })

  it("closes with the stream's error, once", async () => {
    const { stream } = handFed()
    const transport = new StreamTransport(stream)
    const seen = watch(transport)
    const boom = new Error('boom')
    const closed = once(transport, 'close')
    stream.destroy(boom)
    await within(closed, 5000, 'the close')
    expect(seen.closes).toEqual([boom])
  })

  it('close(error) destroys the stream at once, and says the error', async () => {
    const fed = handFed({ holdWrites: true })
    const transport = new StreamTransport(fed.stream)
    const seen = watch(transport)
    transport.send(payload(10))
    const why = new Error('session over')
    transport.close(why)
    expect(fed.stream.destroyed).toBe(true)
    expect(seen.closes).toEqual([why])
    await tick()
    expect(seen.closes).toEqual([why])
  })

  it('refuses bad arguments with typed errors', () => {
    const { stream } = handFed()
    for (const bad of [0, 2 ** 31, 1.5, -1]) {
      expect(() => new StreamTransport(stream, { maxMessageBytes: bad })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }))
    }
    expect(new StreamTransport(handFed().stream, { maxMessageBytes: 2 ** 31 - 1 }).maxMessageBytes).toBe(2 ** 31 - 1)
    expect(() => new StreamTransport(stream, { maxMessageBytes: '8192' as unknown as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new StreamTransport(stream, { maxMesageBytes: 10 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(new StreamTransport(handFed().stream).maxHeldBytes).toBe(1 << 20)
    for (const bad of [0, -1, 1.5, 2 ** 53]) {
      expect(() => new StreamTransport(stream, { maxHeldBytes: bad })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }))
    }
    expect(() => new StreamTransport(stream, { maxHeldBytes: '1' as unknown as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new StreamTransport({} as Duplex)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' }))
    const destroyed = handFed().stream
    destroyed.destroy()
    expect(() => new StreamTransport(destroyed)).toThrow(expect.objectContaining({ code: 'ERR_CONNECTION_CLOSED' }))
    const transport = new StreamTransport(stream)
    expect(() => transport.send(new Uint8Array(8193))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE', message: expect.stringContaining('at most 8192 bytes') }))
    expect(() => transport.send(new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'ERR_PAYLOAD_SIZE' }))
    expect(() => transport.send('text' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})

describe('StreamTransport over TLS', () => {
  it('carries framed messages both ways over a TLS connection whose client pins a development CA', async () => {
    const certificates = await makeDevCertificates('127.0.0.1')
    const server = tls.createServer({ key: certificates.serverKey, cert: certificates.serverCert })
    openServers.push(server)
    server.on('secureConnection', (socket) => {
      openSockets.push(socket)
      // An echo, each message reversed, through a transport of its own.
      const transport = new StreamTransport(socket)
      transport.on('message', (data) => transport.send(data.slice().reverse()))
    })
    server.listen(0, '127.0.0.1')
    await within(once(server, 'listening'), 5000, 'the TLS server to listen')
    const { port } = server.address() as AddressInfo

    const socket = tls.connect({ host: '127.0.0.1', port, ca: [certificates.caCert] })
    openSockets.push(socket)
    await within(once(socket, 'secureConnect'), 5000, 'the TLS handshake')
    expect(socket.authorized).toBe(true)
    const transport = new StreamTransport(socket)
    const seen = watch(transport)
    const messages = [payload(1, 1), payload(5000, 2), payload(8192, 3), ...Array.from({ length: 50 }, (_, i) => payload(1 + i * 13, i))]
    for (const message of messages) transport.send(message)
    await until(() => seen.messages.length === messages.length, 'the echoes')
    expect(seen.messages).toEqual(messages.map((message) => message.slice().reverse()))
    transport.close()
    await within(once(socket, 'close'), 5000, 'the TLS socket to close')
    expect(seen.closes).toEqual([undefined])

    // Without the CA pinned the server is a stranger: the handshake fails, and the transport closes with why.
    const unpinned = tls.connect({ host: '127.0.0.1', port })
    openSockets.push(unpinned)
    const stranger = new StreamTransport(unpinned)
    const refused = watch(stranger)
    await within(once(stranger, 'close'), 5000, 'the refused handshake')
    expect(refused.closes).toEqual([expect.objectContaining({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })])
  })
})
