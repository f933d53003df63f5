// The plaintext counterpart of the connections benchmark's payload case: a node:dgram socket whose
// 'message' handler counts datagrams and their bytes, nothing more (the same work as the volley
// server's handler). It asks for the same 4 MiB receive buffer as the volley server. Commands on stdin
// (bench/lib/connections-child.ts):
//   mark <label>   a snapshot: CPU time, memory, counters
//   stop           closes the socket, a last mark, exit
// Run as: node --import tsx bench/connections/dgram-receiver.ts --max-ms <lifetime>
import { createSocket } from 'node:dgram'
import { parseArgs } from 'node:util'
import { type MarkCounters, emitMark, numberArg, serveCommands } from '../lib/connections-child.ts'
import { HOST, RECV_BUFFER_SIZE } from '../lib/constants.ts'
import { emit, failStart } from '../lib/protocol.ts'

const { values } = parseArgs({ options: { 'max-ms': { type: 'string' } }, strict: true })
const counters: MarkCounters = { packets: 0, bytes: 0 }

try {
  const socket = createSocket({ type: 'udp4', recvBufferSize: RECV_BUFFER_SIZE })
  socket.on('message', (data) => {
    counters.packets++
    counters.bytes += data.byteLength
  })
  let errors = 0
  socket.on('error', (error) => {
    errors++
    process.stderr.write(`dgram receiver: ${error.message}\n`)
  })
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve))
  socket.setRecvBufferSize(RECV_BUFFER_SIZE)
  serveCommands(
    {
      mark: ([label = 'mark']) => emitMark(label, counters, { errors }),
      stop: async () => {
        await new Promise<void>((resolve) => socket.close(() => resolve()))
        emitMark('stopped', counters, { errors })
        process.exit(0)
      },
    },
    numberArg('--max-ms', values['max-ms'], 1_000, 3_600_000),
  )
  emit({ type: 'ready', port: socket.address().port, recvBufferSize: socket.getRecvBufferSize() })
} catch (error) {
  failStart(error)
}
