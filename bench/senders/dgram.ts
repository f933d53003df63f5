// Sender: node:dgram's send on a connected socket (its fastest path: no address to resolve per send).
// Bursts of BURST sends per event-loop turn (setImmediate), at most MAX_IN_FLIGHT sends whose callback
// has not come yet.
import { createSocket } from 'node:dgram'
import { HOST, SEND_BUFFER_SIZE } from '../lib/constants.ts'
import { failStart } from '../lib/protocol.ts'
import { SendMeter, readPlan } from '../lib/send-meter.ts'

const BURST = 32
const MAX_IN_FLIGHT = 1024

try {
  const { port, payload, milliseconds } = readPlan()
  const data = Buffer.from(payload)
  const socket = createSocket({ type: 'udp4', sendBufferSize: SEND_BUFFER_SIZE })
  socket.on('error', (error) => {
    process.stderr.write(`dgram sender: ${error.message}\n`)
  })
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve))
  await new Promise<void>((resolve) => socket.connect(port, HOST, resolve))
  let inFlight = 0
  let sent = 0
  let failed = 0
  let stopping = false
  const meter = new SendMeter()

  const finishIfDone = (): void => {
    if (stopping && inFlight === 0) meter.finish(sent, sent * data.byteLength, { failed, burst: BURST, maxInFlight: MAX_IN_FLIGHT })
  }

  const onSent = (error: Error | null): void => {
    inFlight--
    if (error) failed++
    else sent++
    finishIfDone()
  }

  const turn = (): void => {
    if (meter.elapsed() >= milliseconds) {
      stopping = true
      finishIfDone()
      return
    }
    for (let i = 0; i < BURST && inFlight < MAX_IN_FLIGHT; i++) {
      inFlight++
      socket.send(data, onSent)
    }
    setImmediate(turn)
  }

  turn()
} catch (error) {
  failStart(error)
}
