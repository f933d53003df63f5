// node:dgram round trips, the baseline of the ping benchmark, in its own process:
//   --role server: echoes every datagram; says 'ready' with its port
//   --role client --port P --count N [--warmup W]: W round trips of 64 B one after the other, then N
//       measured ones; a 'result' with the RTTs of the N
import dgram from 'node:dgram'
import { parseArgs } from 'node:util'
import { emit, failStart } from '../lib/protocol.ts'

const { values } = parseArgs({ options: { role: { type: 'string' }, port: { type: 'string' }, count: { type: 'string' }, warmup: { type: 'string' } }, strict: true })

try {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  if (values.role === 'server') {
    socket.on('message', (data, from) => socket.send(data, from.port, from.address))
    emit({ type: 'ready', port: socket.address().port, recvBufferSize: 0 })
  } else {
    const port = Number(values.port)
    const count = Number(values.count)
    const message = new Uint8Array(64).fill(1)
    const roundTrip = (): Promise<void> => {
      const echoed = new Promise<void>((resolve) => socket.once('message', () => resolve()))
      socket.send(message, port, '127.0.0.1')
      return echoed
    }
    for (let i = 0; i < Number(values.warmup ?? 0); i++) await roundTrip()
    const rtts: number[] = []
    const start = process.resourceUsage()
    const startMs = performance.now()
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint()
      await roundTrip()
      rtts.push(Number(process.hrtime.bigint() - t0) / 1000)
    }
    const end = process.resourceUsage()
    emit({ type: 'result', packets: count, bytes: count * 64, seconds: (performance.now() - startMs) / 1000, cpuUserUs: end.userCPUTime - start.userCPUTime, cpuSystemUs: end.systemCPUTime - start.systemCPUTime, details: { rttsUs: rtts } })
    socket.close()
    process.exit(0)
  }
} catch (error) {
  failStart(error)
}
