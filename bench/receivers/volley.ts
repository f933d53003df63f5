// Receiver: volley's datagram socket. One 'messages' event per recvmmsg batch; the handler looks at
// every datagram (its length) as an application would.
import { createDatagramSocket } from '../../src/index.ts'
import { BATCH_SIZE, HOST, RECV_BUFFER_SIZE } from '../lib/constants.ts'
import { failStart } from '../lib/protocol.ts'
import { ReceiveMeter } from '../lib/receive-meter.ts'

const meter = new ReceiveMeter()
const counters = meter.counters

try {
  const socket = createDatagramSocket({ type: 'udp4', batchSize: BATCH_SIZE, recvBufferSize: RECV_BUFFER_SIZE })
  socket.on('messages', (batch) => {
    if (counters.packets === 0) meter.first()
    let bytes = 0
    for (const message of batch) bytes += message.data.byteLength
    counters.packets += batch.length
    counters.bytes += bytes
  })
  socket.on('error', (error) => {
    process.stderr.write(`volley receiver: ${error.message}\n`)
  })
  const { port } = await socket.bind(0, HOST)
  meter.run(port, socket.stats().recvBufferSize, async () => {
    const stats = socket.stats()
    await socket.close()
    return { stats }
  })
} catch (error) {
  failStart(error)
}
