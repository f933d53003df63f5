// The request/response scenario of the sessions benchmark (a child process, in one of three roles):
//   --role server   a Volley Server on 127.0.0.1 with two reliable channels: MASH on channel 0 (a MashDevice
//                   behind serveSessions), and a bare echo on channel 1 (each message sent straight back)
//   --role client   a Client of that server: `run mash` keeps --window reads of one attribute outstanding
//                   (a MashController), `run echo` keeps --window messages of the same size as the read
//                   request outstanding on channel 1; each for <ms>
//   --role memory   a MashController and a MashDevice on an in-memory transport pair, in this process: the
//                   pure protocol cost (encode, decode and dispatch on both sides); `run echo` is the same
//                   pair echoing bare messages, what the transport alone costs
// Commands on stdin (bench/lib/connections-child.ts):
//   mark <label>                 (every role) a snapshot: CPU time, memory; packets = pairs completed
//   run <mash|echo> <ms> <window> (client, memory) marks 'run-start', runs the closed loop, marks 'run-end'
//   stop                         a last mark, exit
// Run as: node --import tsx bench/lib/sessions-pairs.ts --role <role> --key <hex> --protocol-id <n>
//         [--port <server's>] --max-ms <lifetime>
import { parseArgs } from 'node:util'
import { Client, Server, generateConnectToken } from '../../src/index.ts'
import { ClientTransport, MemoryTransport, serveSessions } from '../../src/sessions/index.ts'
import { MashController, MashDevice, MashOperation, encodeMessage } from '../../src/sessions/mash/index.ts'
import { type MarkCounters, emitMark, numberArg, serveCommands } from './connections-child.ts'
import { HOST } from './constants.ts'
import { emit, failStart } from './protocol.ts'
import { ECHO_CHANNEL, ENDPOINT, MASH_CHANNEL, pairModel, volleyOptions } from './sessions-model.ts'

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    key: { type: 'string' },
    'protocol-id': { type: 'string' },
    port: { type: 'string' },
    'max-ms': { type: 'string' },
  },
  strict: true,
})

/** The Volley keep-alive of the pair runs: the library's default (the pair's own traffic stands in for it). */
const KEEP_ALIVE_MS = 100
const FEATURE = 1
const ATTRIBUTE_IDS = [1] as const
/** Keep-alive pings off on both MASH sides: nothing but the pairs in the windows. */
const mashOptions = { keepAlive: false } as const

const counters: MarkCounters = { packets: 0, bytes: 0 }
const echoSend = { channel: ECHO_CHANNEL }

/**
 * A bare message as long as the MASH read request it stands beside (a message id of this size: 3 bytes of
 * CBOR), so that the echo moves the same bytes out.
 */
const echoMessage = new Uint8Array(
  encodeMessage({ kind: 'request', messageId: 100_000, operation: MashOperation.read, endpointId: ENDPOINT, featureId: FEATURE, payload: [...ATTRIBUTE_IDS] }).byteLength,
).fill(0x2a)

/** `window` reads outstanding until `ms` has passed; resolves with the pairs completed. */
async function mashLoop(controller: MashController, ms: number, window: number): Promise<number> {
  const until = performance.now() + ms
  let pairs = 0
  let stopping = false
  const lane = async (): Promise<void> => {
    while (!stopping) {
      await controller.read(ENDPOINT, FEATURE, ATTRIBUTE_IDS)
      pairs++
      // The clock read every 64 pairs: often enough for the window, rarely enough to cost nothing.
      if ((pairs & 63) === 0 && performance.now() >= until) stopping = true
    }
  }
  await Promise.all(Array.from({ length: window }, lane))
  return pairs
}

/** What an echo loop sends on and hears from: a Client's channel 1, or one side of a MemoryTransport pair. */
interface EchoLink {
  send(data: Uint8Array): void
  listen(onEcho: () => void): () => void
}

/** `window` messages outstanding, each echo answered by the next, until `ms` has passed; resolves with the pairs. */
function echoLoop(link: EchoLink, ms: number, window: number): Promise<number> {
  return new Promise((resolve) => {
    const until = performance.now() + ms
    let pairs = 0
    let outstanding = 0
    let stopping = false
    const unlisten = link.listen(() => {
      pairs++
      outstanding--
      if ((pairs & 63) === 0 && performance.now() >= until) stopping = true
      if (!stopping) {
        outstanding++
        link.send(echoMessage)
      } else if (outstanding === 0) {
        unlisten()
        resolve(pairs)
      }
    })
    for (let i = 0; i < window; i++) {
      outstanding++
      link.send(echoMessage)
    }
  })
}

/** The client and memory roles' command: marks around one closed-loop run. */
function runCommand(loops: Record<'mash' | 'echo', (ms: number, window: number) => Promise<number>>): (args: string[]) => Promise<void> {
  return async ([kind, ms, window]) => {
    if (kind !== 'mash' && kind !== 'echo') throw new Error(`run mash or run echo, not run ${String(kind)}`)
    const runMs = numberArg('ms', ms, 1, 600_000)
    const runWindow = numberArg('window', window, 1, 10_000)
    emitMark('run-start', counters, { kind })
    const pairs = await loops[kind](runMs, runWindow)
    counters.packets += pairs
    emitMark('run-end', counters, { kind, pairs })
  }
}

try {
  const role = values.role
  const privateKey = Uint8Array.from(Buffer.from(values.key ?? '', 'hex'))
  const protocolId = BigInt(values['protocol-id'] ?? '0x1234')
  const maxLifetimeMs = numberArg('--max-ms', values['max-ms'], 1_000, 3_600_000)
  const stop = async (close: () => Promise<unknown>): Promise<void> => {
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref())
    await Promise.race([close(), deadline])
    emitMark('stopped', counters, {})
    process.exit(0)
  }

  if (role === 'server') {
    const server = new Server({ protocolId, privateKey, address: `${HOST}:0`, maxClients: 4, engine: 'dedicated', ...volleyOptions(2, KEEP_ALIVE_MS) })
    const device = new MashDevice({ endpoints: pairModel(), ...mashOptions })
    serveSessions(server, { channel: MASH_CHANNEL }, (transport) => device.serve(transport))
    server.on('message', (peer, data, channel) => {
      if (channel !== ECHO_CHANNEL) return
      counters.packets++
      peer.send(data, echoSend)
    })
    const { port } = await server.listen()
    serveCommands(
      {
        mark: ([label = 'mark']) => emitMark(label, counters, { sessions: device.stats().sessions }),
        stop: () => stop(() => server.close()),
      },
      maxLifetimeMs,
    )
    emit({ type: 'ready', port, recvBufferSize: 0 })
  } else if (role === 'client') {
    const port = numberArg('--port', values.port, 1, 65_535)
    const token = await generateConnectToken({ protocolId, privateKey, clientId: 1n, serverAddresses: [`${HOST}:${port}`], expireSeconds: Math.ceil(maxLifetimeMs / 1000) + 60, timeoutSeconds: 10 })
    const client = new Client(volleyOptions(2, KEEP_ALIVE_MS))
    await client.connect(token)
    const controller = new MashController(new ClientTransport(client, { channel: MASH_CHANNEL }), mashOptions)
    const link: EchoLink = {
      send: (data) => {
        client.send(data, echoSend)
      },
      listen: (onEcho) => {
        const listener = (_data: Uint8Array, channel: number): void => {
          if (channel === ECHO_CHANNEL) onEcho()
        }
        client.on('message', listener)
        return () => client.off('message', listener)
      },
    }
    serveCommands(
      {
        mark: ([label = 'mark']) => emitMark(label, counters, {}),
        run: runCommand({ mash: (ms, window) => mashLoop(controller, ms, window), echo: (ms, window) => echoLoop(link, ms, window) }),
        stop: () => stop(() => client.close()),
      },
      maxLifetimeMs,
    )
    emit({ type: 'ready', port: 0, recvBufferSize: 0 })
  } else if (role === 'memory') {
    const device = new MashDevice({ endpoints: pairModel(), ...mashOptions })
    const [controllerSide, deviceSide] = MemoryTransport.pair()
    device.serve(deviceSide)
    const controller = new MashController(controllerSide, mashOptions)
    // The echo: a second pair, its far side sending back what comes.
    const [near, far] = MemoryTransport.pair()
    far.on('message', (data) => far.send(data))
    const link: EchoLink = {
      send: (data) => {
        near.send(data)
      },
      listen: (onEcho) => {
        // A memory transport delivers at once, inside send(): the next send waits for a microtask, as an
        // answer over a socket waits for the event loop, so that the loop does not recurse.
        const listener = (): void => queueMicrotask(onEcho)
        near.on('message', listener)
        return () => near.off('message', listener)
      },
    }
    serveCommands(
      {
        mark: ([label = 'mark']) => emitMark(label, counters, {}),
        run: runCommand({ mash: (ms, window) => mashLoop(controller, ms, window), echo: (ms, window) => echoLoop(link, ms, window) }),
        stop: () => stop(() => controller.close()),
      },
      maxLifetimeMs,
    )
    emit({ type: 'ready', port: 0, recvBufferSize: 0 })
  } else {
    throw new Error(`--role must be server, client or memory, not ${String(role)}`)
  }
} catch (error) {
  failStart(error)
}
