// One side of a delivery benchmark run on volley (Server or Client with channels), in its own process.
//   --role server --scenario bulk|messages|ping [--total N]
//       listens on 127.0.0.1 (any port), says 'ready' with the port; bulk: a 'result' once N bytes have
//       arrived on the reliable channel (first byte to last), or with what had arrived when the client
//       disconnects short of N; messages: a 'result' on the stdin line "report" (first message to last);
//       ping: echoes every message on its channel.
//   --role client --scenario ... --port P [--total N] [--seconds S] [--count N] [--warmup W]
//       connects, then bulk: sends N bytes in 64 KiB messages as fast as back-pressure allows; messages:
//       100-byte reliable messages for S seconds; ping: W round trips one after the other, then N measured
//       ones. A 'result' each.
import { parseArgs } from 'node:util'
import { Client, Server } from '../../src/index.ts'
import { emit, failStart } from '../lib/protocol.ts'
import { pingMessage, timeRoundTrips, volleyRoundTrip, warmUp } from './round-trips.ts'
import { benchToken, channelOptions, privateKey, protocolId } from './volley-setup.ts'

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    scenario: { type: 'string' },
    port: { type: 'string' },
    total: { type: 'string' },
    seconds: { type: 'string' },
    count: { type: 'string' },
    warmup: { type: 'string' },
  },
  strict: true,
})
const cpu = () => process.resourceUsage()
const hrMs = () => Number(process.hrtime.bigint()) / 1e6

async function server(): Promise<void> {
  const scenario = values.scenario
  const total = Number(values.total ?? 0)
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, ...channelOptions })
  let bytes = 0
  let messages = 0
  let firstMs = 0
  let lastMs = 0
  let startCpu = cpu()
  let reported = false
  // The window ends at the last message handled. The clock is read once per batch the engine delivers
  // (the microtask runs after the batch's last message), not per message: a read (~0.1 µs) for each 100 B
  // message, handled in ~1.3 µs, would cost the receiver up to a tenth of its rate.
  let stamping = false
  const stamp = (): void => {
    lastMs = hrMs()
    stamping = false
  }
  server.on('message', (peer, data, channel) => {
    if (scenario === 'ping') {
      peer.send(data, { channel })
      return
    }
    if (messages === 0) {
      firstMs = hrMs()
      startCpu = cpu()
    }
    messages++
    bytes += data.byteLength
    if (scenario === 'bulk' && bytes >= total) {
      lastMs = hrMs()
      report()
    } else if (!stamping) {
      stamping = true
      queueMicrotask(stamp)
    }
  })
  // A client that leaves before all of its bulk arrived: the runner sees the shortfall now, not at its timeout.
  server.on('disconnect', () => {
    if (scenario === 'bulk') report()
  })
  const report = (): void => {
    if (reported) return
    reported = true
    const end = cpu()
    emit({ type: 'result', packets: messages, bytes, seconds: (lastMs - firstMs) / 1000, cpuUserUs: end.userCPUTime - startCpu.userCPUTime, cpuSystemUs: end.systemCPUTime - startCpu.systemCPUTime, details: {} })
  }
  process.stdin.setEncoding('utf8').on('data', (text: string) => {
    if (text.includes('report')) report()
    if (text.includes('stop')) void server.close().then(() => process.exit(0))
  })
  const { port } = await server.listen()
  emit({ type: 'ready', port, recvBufferSize: 0 })
}

async function client(): Promise<void> {
  const scenario = values.scenario
  const client = new Client(channelOptions)
  const token = await benchToken(values.port ?? '')
  await client.connect(token)
  await new Promise((resolve) => setTimeout(resolve, 200)) // the first pings: an RTT estimate before the run
  const roundTrip = volleyRoundTrip(client)
  if (scenario === 'ping') await warmUp(roundTrip, Number(values.warmup ?? 0))
  const drained = () => new Promise<void>((resolve) => client.once('drain', () => resolve()))
  const startCpu = cpu()
  const startMs = hrMs()
  const finish = (packets: number, bytes: number, details: Record<string, unknown>): void => {
    const end = cpu()
    emit({ type: 'result', packets, bytes, seconds: (hrMs() - startMs) / 1000, cpuUserUs: end.userCPUTime - startCpu.userCPUTime, cpuSystemUs: end.systemCPUTime - startCpu.systemCPUTime, details: { ...details, stats: client.stats() } })
  }
  if (scenario === 'bulk') {
    const total = Number(values.total)
    const chunk = new Uint8Array(64 * 1024).fill(7)
    let sent = 0
    while (sent < total) {
      if (client.send(chunk)) sent += chunk.byteLength
      else await drained()
    }
    finish(Math.ceil(total / chunk.byteLength), sent, {})
  } else if (scenario === 'messages') {
    const message = new Uint8Array(100).fill(3)
    const endMs = startMs + Number(values.seconds) * 1000
    let sent = 0
    while (hrMs() < endMs) {
      for (let i = 0; i < 1000; i++) {
        if (!client.send(message)) {
          await drained()
          break
        }
        sent++
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
    finish(sent, sent * 100, {})
  } else {
    const count = Number(values.count)
    const rtts = await timeRoundTrips(roundTrip, count)
    finish(count, count * pingMessage.byteLength, { rttsUs: rtts })
  }
  // Everything queued is delivered (acknowledged) before the client says goodbye.
  while (client.bufferedAmount > 0) await new Promise((resolve) => setTimeout(resolve, 5))
  await client.close()
  process.exit(0)
}

try {
  await (values.role === 'server' ? server() : client())
} catch (error) {
  failStart(error)
}
