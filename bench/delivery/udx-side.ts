// One side of the bulk transfer on udx-native's reliable stream (no encryption), in its own process:
//   --role sink: counts what arrives, a 'result' at the stream's end (first byte to last)
//   --role source --total N: writes N bytes in 64 KiB chunks as fast as the stream takes them
// Both bind 127.0.0.1, say 'ready' with their port, and connect once told the other's ("peer <port>").
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { RECV_BUFFER_SIZE, SEND_BUFFER_SIZE } from '../lib/constants.ts'
import { emit, failStart } from '../lib/protocol.ts'

interface UdxStream {
  connect(socket: UdxSocket, remoteId: number, port: number, host: string): void
  write(data: Uint8Array): boolean
  end(): void
  on(event: 'data', listener: (data: Uint8Array) => void): UdxStream
  on(event: 'end' | 'drain' | 'finish' | 'close', listener: () => void): UdxStream
  once(event: 'drain', listener: () => void): UdxStream
}
interface UdxSocket {
  bind(port: number, host: string): void
  setRecvBufferSize(size: number): number
  setSendBufferSize(size: number): number
  getRecvBufferSize(): number
  address(): { port: number }
  close(): Promise<void>
}
interface Udx {
  createSocket(): UdxSocket
  createStream(id: number): UdxStream
}

const { values } = parseArgs({ options: { role: { type: 'string' }, total: { type: 'string' } }, strict: true })
const cpu = () => process.resourceUsage()
const hrMs = () => Number(process.hrtime.bigint()) / 1e6

try {
  const UDX = createRequire(import.meta.url)('udx-native') as new () => Udx
  const udx = new UDX()
  const socket = udx.createSocket()
  socket.bind(0, '127.0.0.1')
  // The buffers volley's Server and Client ask for (4 MiB each way, as the datagram benchmark gives every
  // receiver): udx-native kept the kernel's default, a tenth of it.
  socket.setRecvBufferSize(RECV_BUFFER_SIZE)
  socket.setSendBufferSize(SEND_BUFFER_SIZE)
  const sink = values.role === 'sink'
  const stream = udx.createStream(sink ? 2 : 1)
  emit({ type: 'ready', port: socket.address().port, recvBufferSize: socket.getRecvBufferSize() })
  process.stdin.setEncoding('utf8').once('data', (line: string) => {
    const port = Number(/peer (\d+)/.exec(line)?.[1])
    stream.connect(socket, sink ? 1 : 2, port, '127.0.0.1')
    let startCpu = cpu()
    let firstMs = 0
    let bytes = 0
    let chunks = 0
    const finish = (): void => {
      const end = cpu()
      emit({ type: 'result', packets: chunks, bytes, seconds: (hrMs() - firstMs) / 1000, cpuUserUs: end.userCPUTime - startCpu.userCPUTime, cpuSystemUs: end.systemCPUTime - startCpu.systemCPUTime, details: {} })
      setTimeout(() => process.exit(0), 100)
    }
    if (sink) {
      stream.on('data', (data) => {
        if (chunks === 0) {
          firstMs = hrMs()
          startCpu = cpu()
        }
        chunks++
        bytes += data.byteLength
      })
      stream.on('end', finish)
      return
    }
    const total = Number(values.total)
    const chunk = new Uint8Array(64 * 1024).fill(7)
    firstMs = hrMs()
    const pump = (): void => {
      while (bytes < total) {
        bytes += chunk.byteLength
        chunks++
        if (!stream.write(chunk)) {
          stream.once('drain', pump)
          return
        }
      }
      stream.end()
      stream.on('finish', finish)
    }
    pump()
  })
} catch (error) {
  failStart(error)
}
