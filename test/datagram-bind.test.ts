// bind() and the bind a send() makes, on both engines: what is sent while a bind is under way, a bind that
// fails, a close() that comes meanwhile, and when 'listening' comes.
import { afterEach, describe, expect, it } from 'vitest'
import { type DatagramSocket, createDatagramSocket } from '../src/index.ts'
import { type EngineKind, onEngine, waitFor, within } from './helpers.ts'

const opened: DatagramSocket[] = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((each) => each.close()))
})

function socket(): DatagramSocket {
  const made = createDatagramSocket()
  opened.push(made)
  return made
}

async function receiver(engine: EngineKind): Promise<{ port: number; got: { text: string; port: number }[] }> {
  const sock = socket()
  const { port } = await onEngine(engine, () => sock.bind(0, '127.0.0.1'))
  const got: { text: string; port: number }[] = []
  sock.on('message', (data, rinfo) => got.push({ text: String(data), port: rinfo.port }))
  return { port, got }
}

describe.each(['native', 'fallback'] as const)('on the %s engine', (engine) => {
  it('a send() while bind() resolves a host name waits for it: the socket binds where asked, and the datagram leaves from there', async () => {
    const { port, got } = await receiver(engine)
    const sender = socket()
    const binding = onEngine(engine, () => sender.bind(0, 'localhost'))
    expect(sender.send('sent while the name resolves', port, '127.0.0.1')).toBe(true)
    const bound = await binding
    expect(bound.address).toBe('127.0.0.1') // not the wildcard a send() binds
    expect(sender.address()).toEqual(bound)
    await waitFor(() => got.length === 1, 3000, 'the datagram')
    expect(got).toEqual([{ text: 'sent while the name resolves', port: bound.port }])
  })

  it('a bind() that fails rejects with the system error; what send() took meanwhile is counted, not left queued, and the socket can bind again', async () => {
    const taken = await receiver(engine)
    const { port, got } = await receiver(engine)
    const sender = socket()
    const binding = onEngine(engine, () => sender.bind(taken.port, 'localhost'))
    expect([sender.send('a', port, '127.0.0.1'), sender.send('b', port, '127.0.0.1')]).toEqual([true, true])
    await expect(binding).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', port: taken.port })
    expect(sender.stats()).toMatchObject({ packetsOut: 0, drops: { bindFailed: 2, closed: 0 }, queue: { depth: 0 } })
    const again = await onEngine(engine, () => sender.bind(0, '127.0.0.1'))
    expect(sender.send('c', port, '127.0.0.1')).toBe(true)
    await waitFor(() => got.length === 1, 3000, 'the datagram after the second bind')
    expect(got).toEqual([{ text: 'c', port: again.port }])
    expect(sender.stats()).toMatchObject({ packetsOut: 1, drops: { bindFailed: 2 }, queue: { depth: 0 } })
  })

  it('a close() while bind() resolves a host name: bind() resolves (it bound), what was sent before goes out, then the socket closes', async () => {
    const { port, got } = await receiver(engine)
    const sender = socket()
    const events: string[] = []
    sender.on('listening', () => events.push('listening'))
    sender.on('close', () => events.push('close'))
    const binding = onEngine(engine, () => sender.bind(0, 'localhost'))
    sender.send('sent before close()', port, '127.0.0.1')
    const closed = sender.close()
    expect(() => sender.send('after close()', port, '127.0.0.1')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_CLOSED' }))
    expect(await binding).toMatchObject({ address: '127.0.0.1', family: 'IPv4' })
    await within(closed, 3000, 'close()')
    expect(events).toEqual(['close']) // never announced: it was closing when it bound
    await waitFor(() => got.length === 1, 3000, 'the datagram sent before close()')
    expect(got[0]!.text).toBe('sent before close()')
  })

  it("a close() in the 'listening' listener of a bind that resolves a host name: bind() resolves, what was sent before goes out", async () => {
    // The sends held while it bound went out after 'listening', through send(): one threw at the socket that
    // listener had closed, bind() rejected with ERR_SOCKET_CLOSED, and the datagrams were lost uncounted.
    const { port, got } = await receiver(engine)
    const sender = socket()
    const events: string[] = []
    sender.on('listening', () => {
      events.push('listening')
      void sender.close()
    })
    sender.on('close', () => events.push('close'))
    const binding = onEngine(engine, () => sender.bind(0, 'localhost'))
    expect(sender.send('a', port, '127.0.0.1')).toBe(true)
    expect(sender.send('b', port, '127.0.0.1')).toBe(true)
    expect(await binding).toMatchObject({ address: '127.0.0.1', family: 'IPv4' })
    await waitFor(() => events.includes('close'), 3000, 'the close')
    expect(events).toEqual(['listening', 'close'])
    await waitFor(() => got.length === 2, 3000, 'the datagrams sent while it bound')
    expect(got.map((each) => each.text)).toEqual(['a', 'b'])
  })

  it("the bind a send() makes: 'listening' comes once the socket is bound; address() gives its port from then, never a port 0 before", async () => {
    const { port, got } = await receiver(engine)
    const sender = socket()
    const listening = new Promise<number>((resolve) => sender.once('listening', () => resolve(sender.address().port)))
    const atSend = await onEngine(engine, async () => {
      sender.send('binds the socket', port, '127.0.0.1')
      try {
        return sender.address().port
      } catch (error) {
        return (error as { code?: string }).code
      }
    })
    // The native engine binds within send(); the fallback's node:dgram binds after it returns.
    if (engine === 'native') expect(atSend).toBeGreaterThan(0)
    else expect(atSend).toBe('ERR_SOCKET_NOT_BOUND')
    const bound = await within(listening, 3000, "'listening'")
    expect(bound).toBeGreaterThan(0)
    if (engine === 'native') expect(bound).toBe(atSend)
    await waitFor(() => got.length === 1, 3000, 'the datagram')
    expect(got[0]!.port).toBe(bound)
  })
})
