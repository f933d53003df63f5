// The controllers of the sessions benchmark's fan-out scenario (a child process): a ClientPool (one UDP
// socket per client, all on one engine thread, as bench/connections/load.ts holds 10,000 clients), each
// client with a MashController on its reliable channel, its token naming device --first + i. Commands on
// stdin (bench/lib/connections-child.ts):
//   connect                 connects every client, then a controller on each; a 'connected' mark
//   warm <in flight>        each controller reads every attribute of each feature of its device once, so that
//                           the connections have carried messages both ways before the memory baseline;
//                           a 'warmed' mark
//   subscribe <in flight>   each controller subscribes to each feature of its device (at most <in flight>
//                           controllers at a time); a 'subscribed' mark with the counts and the time taken
//   mark <label> [gc]       a snapshot: packets = notifications received (primings not counted),
//                           bytes = the values they carried
//   stop                    closes every client (bounded), a last mark, exit
// Run as: node --import tsx bench/lib/sessions-controllers.ts --server 127.0.0.1:<port> --key <hex>
//         --protocol-id <n> --first <n> --count <n> --concurrency <n> --features <n> --min-interval-ms <ms>
//         --max-interval-ms <ms> --keep-alive-ms <ms> --max-ms <lifetime>
import { parseArgs } from 'node:util'
import { ClientPool, generateConnectToken } from '../../src/index.ts'
import { ClientTransport } from '../../src/sessions/index.ts'
import { MashController } from '../../src/sessions/mash/index.ts'
import { type MarkCounters, emitMark, numberArg, serveCommands } from './connections-child.ts'
import { emit, failStart } from './protocol.ts'
import { ENDPOINT, deviceUserData, volleyOptions } from './sessions-model.ts'

const { values } = parseArgs({
  options: {
    server: { type: 'string' },
    key: { type: 'string' },
    'protocol-id': { type: 'string' },
    first: { type: 'string' },
    count: { type: 'string' },
    concurrency: { type: 'string' },
    features: { type: 'string' },
    'min-interval-ms': { type: 'string' },
    'max-interval-ms': { type: 'string' },
    'keep-alive-ms': { type: 'string' },
    'max-ms': { type: 'string' },
  },
  strict: true,
})

const counters: MarkCounters = { packets: 0, bytes: 0 }

try {
  const server = values.server ?? ''
  const privateKey = Uint8Array.from(Buffer.from(values.key ?? '', 'hex'))
  const protocolId = BigInt(values['protocol-id'] ?? '0x1234')
  const first = numberArg('--first', values.first, 0, 1 << 20)
  const count = numberArg('--count', values.count, 1, 60_000)
  const concurrency = numberArg('--concurrency', values.concurrency, 1, 60_000)
  const features = numberArg('--features', values.features, 1, 50)
  const minIntervalMs = numberArg('--min-interval-ms', values['min-interval-ms'], 0, 3_600_000)
  const maxIntervalMs = numberArg('--max-interval-ms', values['max-interval-ms'], 1, 3_600_000)
  const keepAliveMs = numberArg('--keep-alive-ms', values['keep-alive-ms'], 1, 60_000)
  const maxLifetimeMs = numberArg('--max-ms', values['max-ms'], 1_000, 3_600_000)
  const pool = new ClientPool(volleyOptions(1, keepAliveMs))
  const controllers: MashController[] = []
  const events = { primings: 0, disconnects: 0, lastDisconnect: '' }

  const linkTotals = (): Record<string, number> => {
    let pendingRequests = 0
    const sum: Record<string, number> = {}
    for (const controller of controllers) {
      pendingRequests += controller.pendingRequests
      const stats = controller.stats()
      if (stats === null) continue
      for (const [what, n] of Object.entries(stats.dropped)) sum[what] = (sum[what] ?? 0) + n
    }
    return { ...sum, pendingRequests }
  }
  const snapshot = (withLinks = false): Record<string, unknown> => ({
    controllers: controllers.length,
    events: { ...events },
    pool: pool.stats(),
    ...(withLinks ? { links: linkTotals() } : {}),
  })

  /**
   * Runs a request for each feature of each controller's device, at most `inFlight` controllers at a time
   * (each worker takes the next controller, its features at once); failures are counted by code.
   */
  const eachFeature = async (
    inFlight: number,
    request: (controller: MashController, featureId: number) => Promise<unknown>,
  ): Promise<{ ok: number; failed: Record<string, number>; ms: number }> => {
    const started = performance.now()
    let ok = 0
    const failed: Record<string, number> = {}
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < controllers.length) {
        const controller = controllers[next++]!
        await Promise.all(
          Array.from({ length: features }, async (_, f) => {
            try {
              await request(controller, f + 1)
              ok++
            } catch (error) {
              const code = String((error as { code?: unknown }).code ?? 'unknown')
              failed[code] = (failed[code] ?? 0) + 1
            }
          }),
        )
      }
    }
    await Promise.all(Array.from({ length: Math.min(inFlight, controllers.length) }, worker))
    return { ok, failed, ms: performance.now() - started }
  }

  serveCommands(
    {
      connect: async () => {
        const result = await pool.connect(
          {
            count,
            make: (index) =>
              generateConnectToken({
                protocolId,
                privateKey,
                clientId: BigInt(first + index + 1),
                serverAddresses: [server],
                expireSeconds: Math.ceil(maxLifetimeMs / 1000) + 60,
                timeoutSeconds: 10,
                userData: deviceUserData(first + index),
              }),
          },
          { concurrency },
        )
        for (const client of [...pool.clients]) {
          if (client.state !== 'connected') continue
          const controller = new MashController(new ClientTransport(client))
          controller.on('notification', (_subscription, changes, priming) => {
            if (priming) {
              events.primings++
              return
            }
            counters.packets++
            counters.bytes += changes.size
          })
          controller.on('disconnect', (error) => {
            events.disconnects++
            events.lastDisconnect = error?.message ?? 'closed'
          })
          controllers.push(controller)
        }
        emitMark('connected', counters, { connect: result, ...snapshot() })
      },
      warm: async ([inFlight]) => {
        const result = await eachFeature(numberArg('in flight', inFlight, 1, 60_000), (controller, featureId) => controller.read(ENDPOINT, featureId))
        emitMark('warmed', counters, { warm: result, ...snapshot(true) })
      },
      subscribe: async ([inFlight]) => {
        const result = await eachFeature(numberArg('in flight', inFlight, 1, 60_000), (controller, featureId) =>
          controller.subscribe(ENDPOINT, featureId, { minIntervalMs, maxIntervalMs }),
        )
        emitMark('subscribed', counters, { subscribe: result, ...snapshot(true) })
      },
      mark: ([label = 'mark', links]) => emitMark(label, counters, snapshot(links === 'links')),
      stop: async () => {
        const final = snapshot(true)
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref())
        await Promise.race([pool.close(), deadline])
        emitMark('stopped', counters, final)
        process.exit(0)
      },
    },
    maxLifetimeMs,
  )
  emit({ type: 'ready', port: 0, recvBufferSize: 0 })
} catch (error) {
  failStart(error)
}
