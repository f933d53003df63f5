// The `logger` option of Server and Client: checked at construction, and written to with small structured
// objects (never bytes): the lifecycle, and the warnings that would otherwise be the process's.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Client, ClientPool, Server, type VolleyLogger } from '../../src/index.ts'
import { waitFor } from '../helpers.ts'
import { connectClient, privateKey, protocolId, startServer } from './loopback.ts'

type Level = 'debug' | 'info' | 'warn' | 'error'
interface Entry {
  level: Level
  fields: Record<string, unknown>
  message: string | undefined
}

/** A fake logger whose methods read `this`, as pino's do: the runs show that volley calls them as methods. */
class RecordingLogger implements VolleyLogger {
  readonly entries: Entry[] = []
  debug(fields: object, message?: string): void {
    this.#record('debug', fields, message)
  }
  info(fields: object, message?: string): void {
    this.#record('info', fields, message)
  }
  warn(fields: object, message?: string): void {
    this.#record('warn', fields, message)
  }
  error(fields: object, message?: string): void {
    this.#record('error', fields, message)
  }
  #record(level: Level, fields: object, message: string | undefined): void {
    this.entries.push({ level, fields: fields as Record<string, unknown>, message })
  }
  /** The entries as [level, message, fields]. */
  get lines(): [Level, string | undefined, Record<string, unknown>][] {
    return this.entries.map(({ level, message, fields }) => [level, message, fields])
  }
}

/** pino's LogFn, by its overloads (pino is no dependency): a logger of these is a VolleyLogger, as the type-check shows. */
interface PinoLikeLogFn {
  <T extends object>(fields: T, message?: string, ...args: unknown[]): void
  (fields: unknown, message?: string, ...args: unknown[]): void
  (message: string, ...args: unknown[]): void
}
interface PinoLikeLogger extends Record<Level | 'fatal' | 'trace', PinoLikeLogFn> {
  level: string
  child(bindings: Record<string, unknown>): PinoLikeLogger
}
const pinoLoggerIsAVolleyLogger = (logger: PinoLikeLogger): VolleyLogger => logger
void pinoLoggerIsAVolleyLogger

/** Process warnings seen while a test runs: with a logger, there must be none. */
let processWarnings: Error[] = []
const onWarning = (warning: Error): void => {
  processWarnings.push(warning)
}
beforeEach(() => {
  processWarnings = []
  process.on('warning', onWarning)
})
afterEach(() => {
  process.off('warning', onWarning)
})

/** Every field volley logs is text, a number or absent: no bytes, no keys, nothing a serializer chokes on (bigint). */
function expectPlainFields(entries: Entry[]): void {
  for (const { fields } of entries) {
    for (const [name, value] of Object.entries(fields)) {
      if (name === 'err') continue
      expect(['string', 'number', 'undefined'], `${name}: ${String(value)}`).toContain(typeof value)
    }
  }
}

describe('the logger option', () => {
  it('is refused unless it has debug, info, warn and error methods, naming the option and what it lacks', () => {
    const server = { protocolId, privateKey, address: '127.0.0.1:0' }
    const noError = { debug() {}, info() {}, warn() {} }
    for (const make of [(logger: unknown) => new Server({ ...server, logger } as never), (logger: unknown) => new Client({ logger } as never), (logger: unknown) => new ClientPool({ logger } as never)]) {
      expect(() => make(noError)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('The "logger" option must be a pino-compatible logger') }))
      expect(() => make(noError)).toThrow('(it has no error method)')
      expect(() => make({ info: 'yes' })).toThrow('(it has no debug, info, warn, error methods)')
      expect(() => make(console.log)).toThrow('Received a function')
      expect(() => make(null)).toThrow('Received null')
    }
    // Absent, or undefined: no logger.
    expect(new Server({ ...server, logger: undefined }).state).toBe('stopped')
    expect(new Client({ logger: undefined }).state).toBe('disconnected')
    expect(new Client({ logger: console }).state).toBe('disconnected')
  })

  it('gets info as the server listens and closes, and debug as a peer connects and disconnects, with the reason', async () => {
    const logger = new RecordingLogger()
    const { server, address } = await startServer({ logger })
    try {
      expect(logger.lines).toEqual([['info', 'volley server listening', { address, publicAddress: address }]])
      const client = await connectClient(address, 42n)
      await waitFor(() => logger.entries.length === 2, 3000, 'the peer connected')
      const port = [...server.peers.values()][0]!.port
      expect(logger.lines[1]).toEqual(['debug', 'volley peer connected', { clientId: '42', address: `127.0.0.1:${port}` }])
      await client.close()
      await waitFor(() => logger.entries.length === 3, 3000, 'the peer disconnected')
      expect(logger.lines[2]).toEqual(['debug', 'volley peer disconnected', { clientId: '42', address: `127.0.0.1:${port}`, reason: 'disconnected' }])
      await server.close()
      expect(logger.lines[3]).toEqual(['info', 'volley server closed', { address }])
      expect(logger.entries).toHaveLength(4)
      expectPlainFields(logger.entries)
    } finally {
      await server.close()
    }
    expect(processWarnings).toEqual([])
  })

  it("gets debug as a client connects and as its connection ends, with the reason", async () => {
    const { server, address } = await startServer()
    const logger = new RecordingLogger()
    try {
      const client = await connectClient(address, 7n, { logger })
      expect(logger.lines).toEqual([['debug', 'volley client connected', { serverAddress: address }]])
      await waitFor(() => server.peers.size === 1, 3000, 'the peer')
      const ended = new Promise((resolve) => client.once('disconnect', resolve))
      ;[...server.peers.values()][0]!.disconnect()
      await ended
      expect(logger.lines[1]).toEqual(['debug', 'volley client disconnected', { serverAddress: address, reason: 'disconnected' }])
      await client.close()
      expect(logger.entries).toHaveLength(2)
      expectPlainFields(logger.entries)
    } finally {
      await server.close()
    }
    expect(processWarnings).toEqual([])
  })

  it("takes the warning about a server's channels instead of the process, once per logger", async () => {
    const channels = [{ mode: 'reliable' as const }, { mode: 'unreliable' as const }]
    const { server, address } = await startServer({ channels, maxMessageBytes: 65536 })
    const logger = new RecordingLogger()
    const clients: Client[] = []
    try {
      for (const clientId of [1n, 2n]) {
        // Without channels: the server's delivery packets come as messages, and the first says what it runs.
        const client = await connectClient(address, clientId, { logger })
        clients.push(client)
        let messages = 0
        client.on('message', () => messages++)
        await waitFor(() => messages > 0, 3000, "the server's first delivery packet")
      }
      await new Promise((resolve) => setImmediate(resolve)) // a process warning is emitted on the next tick
      const warnings = logger.entries.filter(({ level }) => level === 'warn')
      expect(warnings).toHaveLength(1)
      expect(warnings[0]!.fields).toEqual({ code: 'VOLLEY_SERVER_HAS_CHANNELS', serverAddress: address, serverChannels: 'reliable, unreliable' })
      expect(warnings[0]!.message).toContain(`The server at ${address} runs channels (reliable, unreliable; messages up to 65536 bytes) and this client has none`)
      expect(processWarnings).toEqual([])
      expectPlainFields(logger.entries)
    } finally {
      await Promise.all(clients.map((client) => client.close()))
      await server.close()
    }
  })
})
