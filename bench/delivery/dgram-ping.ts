// node:dgram round trips, the baseline of the ping benchmark, in its own process:
//   --role server: echoes every datagram; says 'ready' with its port
//   --role client --port P --count N [--warmup W]: W round trips of 64 B one after the other, then N
//       measured ones; a 'result' with the RTTs of the N
import dgram from 'node:dgram'
import { parseArgs } from 'node:util'
import { emit, failStart } from '../lib/protocol.ts'
import { dgramRoundTrip, pingMessage, timeRoundTrips, warmUp } from './round-trips.ts'

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
    const roundTrip = dgramRoundTrip(socket, port)
    await warmUp(roundTrip, Number(values.warmup ?? 0))
    const start = process.resourceUsage()
    const startMs = performance.now()
    const rtts = await timeRoundTrips(roundTrip, count)
    const end = process.resourceUsage()
    emit({ type: 'result', packets: count, bytes: count * pingMessage.byteLength, seconds: (performance.now() - startMs) / 1000, cpuUserUs: end.userCPUTime - start.userCPUTime, cpuSystemUs: end.systemCPUTime - start.systemCPUTime, details: { rttsUs: rtts } })
    socket.close()
    process.exit(0)
  }
} catch (error) {
  failStart(error)
}
