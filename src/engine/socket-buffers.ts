// The socket buffer sizes the kernel granted, against those asked. Linux caps SO_RCVBUF and SO_SNDBUF at
// net.core.rmem_max and wmem_max (208 KiB on most distributions); the addon goes past the cap where the
// process may (CAP_NET_ADMIN, native/engine/udp_socket.cc). Where it may not, a server that asked for 4 MiB holds a
// few milliseconds of its datagrams and drops the rest of any burst: the application is told once, with the
// fix, rather than left to find receiveBufferFull in its drop counters.

/** The sizes asked (0: the kernel's default, nothing asked) and, as the kernel reads them back, granted. */
export interface BufferSizes {
  receive: number
  send: number
}

let cappedWarned = false // per thread: each worker has its own

/** Each buffer: its socket option, the sysctl that caps it, and what a socket capped below its need loses. */
const buffers = [
  { size: 'receive', option: 'SO_RCVBUF', cap: 'rmem_max', loss: { native: 'datagrams past what it holds are dropped (counted as receiveBufferFull)', fallback: 'datagrams past what it holds are dropped' } },
  { size: 'send', option: 'SO_SNDBUF', cap: 'wmem_max', loss: { native: "a burst of sends past what it holds is dropped (sendBufferFull; a datagram socket's wait instead)", fallback: 'a burst of sends past what it holds waits' } },
] as const

/**
 * Warns once per thread when the kernel granted a socket less than half the buffer asked (a little less
 * is common and harmless: the default cap is just under a client's 256 KiB). Linux reads back twice what it
 * grants, its own bookkeeping included; other kernels (the fallback engine's, elsewhere) what they grant.
 */
export function reportCappedBuffers(asked: BufferSizes, readBack: BufferSizes, engine: 'native' | 'fallback' = 'native', platform: string = process.platform): void {
  if (cappedWarned) return
  const linux = platform === 'linux'
  const granted = (size: 'receive' | 'send'): number => (linux ? readBack[size] / 2 : readBack[size])
  const raise = (cap: string, bytes: number): string => (linux ? `; raise the cap with sysctl -w net.core.${cap}=${bytes}` : '')
  const findings = buffers
    .filter(({ size }) => asked[size] > 0 && granted(size) < asked[size] / 2)
    .map(({ size, option, cap, loss }) => `its ${size} buffer (${option}) at ${formatBytes(granted(size))}, not the ${formatBytes(asked[size])} asked: ${loss[engine]}${raise(cap, asked[size])}`)
  if (findings.length === 0) return
  cappedWarned = true
  process.emitWarning(
    `The kernel capped a socket's buffers: ${findings.join('; and ')}. ` +
      (engine === 'native'
        ? 'A process with CAP_NET_ADMIN gets the size asked past the cap'
        : 'The fallback engine cannot go past the cap (node:dgram has no SO_RCVBUFFORCE), nor count the datagrams the kernel drops') +
      '; the option recvBufferSize / sendBufferSize asks for another size.',
    { type: 'VolleyWarning', code: 'VOLLEY_SOCKET_BUFFER_CAPPED' },
  )
}

function formatBytes(bytes: number): string {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes / (1 << 20)} MiB`
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`
  return `${bytes} B`
}
