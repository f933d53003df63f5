// The load generator of the connections benchmark: a volley ClientPool (one UDP socket per client, all
// on one engine thread in this process) with connect tokens for one server. Commands on stdin
// (bench/lib/connections-child.ts):
//   connect                       connects every client (at most --concurrency handshakes at a time);
//                                 reports a 'connected' mark with the counts and the time it took
//   mark <label>                  a snapshot: CPU time, memory, pool.stats()
//   send <rate> <ms> <tick µs>    sends 64-byte payloads at <rate> per second in total for <ms>: every
//                                 tick, the payloads due by then (rate × elapsed − sent), one per client
//                                 in turn (the schedule of bench/native/paced-sender.c); reports 'sent'
//   With --native-load <binary>, connect, send and leave run the C++ handshake load
//   (bench/native/handshake-load.cc) on the same tokens instead of the ClientPool: it connects faster
//   than the server can accept, and sends its payloads in the bursts node:dgram's C sender makes.
//   leave                         closes every client (each sends its redundant disconnects), then makes a
//                                 new pool with fresh tokens (new client ids) for the next connect; 'left'
//   stop                          closes every client (bounded), a last mark, exit
// Run as: node --import tsx bench/connections/load.ts --server 127.0.0.1:<port> --key <hex>
//         --protocol-id <n> --clients <n> --concurrency <n> --timeout <s> --keep-alive-ms <ms> --max-ms <lifetime>
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { ClientPool, generateConnectToken } from '../../src/index.ts'
import { type MarkCounters, emitMark, numberArg, serveCommands } from '../lib/connections-child.ts'
import { emit, failStart } from '../lib/protocol.ts'

const { values } = parseArgs({
  options: {
    server: { type: 'string' },
    key: { type: 'string' },
    'protocol-id': { type: 'string' },
    clients: { type: 'string' },
    concurrency: { type: 'string' },
    timeout: { type: 'string' },
    'keep-alive-ms': { type: 'string' },
    'max-ms': { type: 'string' },
    'native-load': { type: 'string' },
  },
  strict: true,
})

const PAYLOAD_SIZE = 64
const counters: MarkCounters = { packets: 0, bytes: 0 }

try {
  const server = values.server ?? ''
  const privateKey = Uint8Array.from(Buffer.from(values.key ?? '', 'hex'))
  const protocolId = BigInt(values['protocol-id'] ?? '0x1234')
  const count = numberArg('--clients', values.clients, 1, 60_000)
  const concurrency = numberArg('--concurrency', values.concurrency, 1, 60_000)
  const timeoutSeconds = numberArg('--timeout', values.timeout, 1, 600)
  const maxLifetimeMs = numberArg('--max-ms', values['max-ms'], 1_000, 3_600_000)
  const makeTokens = (firstId: number) =>
    Promise.all(
      Array.from({ length: count }, (_, i) =>
        generateConnectToken({ protocolId, privateKey, clientId: BigInt(firstId + i), serverAddresses: [server], expireSeconds: Math.ceil(maxLifetimeMs / 1000) + 60, timeoutSeconds }),
      ),
    )
  const keepAliveIntervalMs = numberArg('--keep-alive-ms', values['keep-alive-ms'], 1, 60_000)
  let tokens = await makeTokens(1)
  let pool = new ClientPool({ keepAliveIntervalMs })
  let generation = 1
  const payload = new Uint8Array(PAYLOAD_SIZE).fill(1)

  const send = async (rate: number, milliseconds: number, tickUs: number): Promise<void> => {
    const clients = pool.clients
    const total = Math.floor((rate * milliseconds) / 1000)
    const before = process.resourceUsage()
    const start = performance.now()
    let attempted = 0
    let sent = 0
    let refused = 0
    let notConnected = 0
    let next = 0
    let ticks = 0
    const tickMs = tickUs / 1000
    while (attempted < total && clients.length > 0) {
      const elapsed = performance.now() - start
      const due = Math.min(total, Math.floor((rate * elapsed) / 1000))
      while (attempted < due) {
        const client = clients[next]
        next = next + 1 >= clients.length ? 0 : next + 1 // clients whose connection ended leave the pool
        attempted++
        if (client === undefined || client.state !== 'connected') notConnected++
        else if (client.send(payload)) sent++
        else refused++
      }
      ticks++
      if (attempted >= total) break
      // Sleep to the next tick boundary; setTimeout wakes late at times, the count above catches up.
      const wait = (Math.floor(elapsed / tickMs) + 1) * tickMs - (performance.now() - start)
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)))
    }
    const seconds = (performance.now() - start) / 1000
    const used = process.resourceUsage()
    counters.packets += sent
    counters.bytes += sent * PAYLOAD_SIZE
    emitMark('sent', counters, {
      window: { attempted, sent, refused, notConnected, ticks, seconds, cpuUs: used.userCPUTime + used.systemCPUTime - before.userCPUTime - before.systemCPUTime },
    })
  }

  // The C++ handshake load of the current round, from its 'connected' line until 'leave', and its lines.
  let nativeRun: ChildProcess | null = null
  let nativeLines: AsyncIterator<string> | null = null
  const nativeLine = async (): Promise<string> => {
    const next = await (nativeLines as AsyncIterator<string>).next()
    if (next.done === true) throw new Error('the native load ended early')
    return next.value
  }
  const nativeConnect = async (binary: string): Promise<void> => {
    const file = join(tmpdir(), `volley-handshake-tokens-${process.pid}.bin`)
    writeFileSync(file, Buffer.concat(tokens))
    const child = spawn(binary, ['--tokens', file, '--concurrency', String(concurrency), '--keep-alive-ms', String(keepAliveIntervalMs)], { stdio: ['pipe', 'pipe', 'inherit'] })
    nativeRun = child
    nativeLines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    let line: string
    try {
      line = await nativeLine()
    } finally {
      rmSync(file, { force: true }) // read at its start: 60 MB of tokens for 30,000 clients
    }
    const result = JSON.parse(line) as { connected: number; failed: Record<string, number>; ms: number; cpuUs: number; processCpuUs: number }
    const failed = Object.values(result.failed).reduce((total, count) => total + count, 0)
    emitMark('connected', counters, {
      connect: { connected: result.connected, failed, ms: result.ms, cpuUs: result.cpuUs, processCpuUs: result.processCpuUs },
      pool: { failed: result.failed },
    })
  }
  // The native load sends the payloads itself, on the schedule of the ClientPool's send() above.
  const nativeSend = async (rate: number, milliseconds: number, tickUs: number): Promise<void> => {
    ;(nativeRun as ChildProcess).stdin!.write(`send ${rate} ${milliseconds} ${tickUs}\n`)
    const result = JSON.parse(await nativeLine()) as { attempted: number; sent: number; notConnected: number; ticks: number; seconds: number; cpuUs: number }
    counters.packets += result.sent
    counters.bytes += result.sent * PAYLOAD_SIZE
    emitMark('sent', counters, { window: { ...result, refused: 0 } })
  }
  const nativeLeave = async (): Promise<void> => {
    const child = nativeRun
    nativeRun = null
    nativeLines = null
    if (child === null) return
    child.stdin!.write('leave\n')
    if (child.exitCode === null) await once(child, 'exit')
  }

  serveCommands(
    {
      connect: async () => {
        if (values['native-load'] !== undefined) return nativeConnect(values['native-load'])
        const result = await pool.connect(tokens, { concurrency })
        emitMark('connected', counters, { connect: result, pool: pool.stats() })
      },
      leave: async () => {
        await nativeLeave()
        await pool.close()
        tokens = await makeTokens(generation * count + 1)
        generation++
        pool = new ClientPool({ keepAliveIntervalMs })
        emitMark('left', counters, { pool: pool.stats() })
      },
      mark: ([label = 'mark']) => emitMark(label, counters, { pool: pool.stats() }),
      send: async ([rate, milliseconds, tick]) => {
        const args = [numberArg('rate', rate, 1, 10_000_000), numberArg('milliseconds', milliseconds, 1, 600_000), numberArg('tick', tick, 100, 1_000_000)] as const
        await (nativeRun === null ? send(...args) : nativeSend(...args))
      },
      stop: async () => {
        const stats = pool.stats()
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref())
        await Promise.race([pool.close(), deadline])
        emitMark('stopped', counters, { pool: stats })
        process.exit(0)
      },
    },
    maxLifetimeMs,
  )
  emit({ type: 'ready', port: 0, recvBufferSize: 0 })
} catch (error) {
  failStart(error)
}
