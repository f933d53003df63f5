// Receiver: udx-native's raw socket messages. One 'message' event per datagram, as a view into the
// library's shared read buffer. udx-native has no type declarations: the part used here is typed below.
import { createRequire } from 'node:module'
import { HOST, RECV_BUFFER_SIZE } from '../lib/constants.ts'
import { failStart } from '../lib/protocol.ts'
import { ReceiveMeter } from '../lib/receive-meter.ts'

interface UdxSocket {
  bind(port: number, host: string): void
  address(): { host: string; family: number; port: number } | null
  on(event: 'message', listener: (data: Uint8Array, from: { host: string; family: number; port: number }) => void): UdxSocket
  on(event: 'error', listener: (error: Error) => void): UdxSocket
  setRecvBufferSize(size: number): number
  getRecvBufferSize(): number
  close(): Promise<void>
  readonly packetsReceived: number
}

interface Udx {
  createSocket(): UdxSocket
}

const meter = new ReceiveMeter()
const counters = meter.counters

try {
  const require = createRequire(import.meta.url)
  const UDX = require('udx-native') as new () => Udx
  const socket = new UDX().createSocket()
  socket.on('message', (data) => {
    if (counters.packets === 0) meter.first()
    counters.packets++
    counters.bytes += data.byteLength
  })
  socket.on('error', (error) => {
    process.stderr.write(`udx-native receiver: ${error.message}\n`)
  })
  socket.bind(0, HOST)
  socket.setRecvBufferSize(RECV_BUFFER_SIZE)
  const bound = socket.address()
  if (bound === null) throw new Error('udx-native: the socket did not bind')
  meter.run(bound.port, socket.getRecvBufferSize(), async () => {
    const details = { packetsReceived: socket.packetsReceived }
    await socket.close()
    return details
  })
} catch (error) {
  failStart(error)
}
