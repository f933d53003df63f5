// Receiver: node:dgram. One 'message' event (a new Buffer and rinfo) per datagram.
import { createSocket } from 'node:dgram'
import { HOST, RECV_BUFFER_SIZE } from '../lib/constants.ts'
import { failStart } from '../lib/protocol.ts'
import { ReceiveMeter } from '../lib/receive-meter.ts'

const meter = new ReceiveMeter()
const counters = meter.counters

try {
  const socket = createSocket({ type: 'udp4', recvBufferSize: RECV_BUFFER_SIZE })
  socket.on('message', (data) => {
    if (counters.packets === 0) meter.first()
    counters.packets++
    counters.bytes += data.byteLength
  })
  socket.on('error', (error) => {
    process.stderr.write(`dgram receiver: ${error.message}\n`)
  })
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve))
  socket.setRecvBufferSize(RECV_BUFFER_SIZE)
  meter.run(socket.address().port, socket.getRecvBufferSize(), async () => {
    await new Promise<void>((resolve) => socket.close(() => resolve()))
    return {}
  })
} catch (error) {
  failStart(error)
}
