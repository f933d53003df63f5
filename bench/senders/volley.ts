// Sender: volley's socket.send in a loop. send() queues into a send slab and returns false when every
// slab is in flight; then the loop waits for 'drain'. The I/O thread writes the slabs with sendmmsg.
import { createDatagramSocket } from '../../src/index.ts'
import { BATCH_SIZE, HOST, SEND_BUFFER_SIZE } from '../lib/constants.ts'
import { failStart } from '../lib/protocol.ts'
import { SendMeter, readPlan } from '../lib/send-meter.ts'

/** How many sends between two looks at the clock. */
const CLOCK_EVERY = 256

try {
  const { port, payload, milliseconds } = readPlan()
  const socket = createDatagramSocket({ type: 'udp4', batchSize: BATCH_SIZE, sendBufferSize: SEND_BUFFER_SIZE })
  socket.on('error', (error) => {
    process.stderr.write(`volley sender: ${error.message}\n`)
  })
  await socket.bind(0, HOST)
  let drains = 0
  const meter = new SendMeter()

  const pump = (): void => {
    for (;;) {
      for (let i = 0; i < CLOCK_EVERY; i++) {
        if (!socket.send(payload, port, HOST)) {
          drains++
          socket.once('drain', pump)
          return
        }
      }
      if (meter.elapsed() >= milliseconds) {
        waitUntilSent()
        return
      }
    }
  }

  // The window closes when the queue is empty: every accepted datagram has been handed to the kernel.
  const waitUntilSent = (): void => {
    const stats = socket.stats()
    if (stats.queue.depth > 0) {
      setTimeout(waitUntilSent, 1)
      return
    }
    meter.finish(stats.packetsOut, stats.bytesOut, { stats, drains })
  }

  pump()
} catch (error) {
  failStart(error)
}
