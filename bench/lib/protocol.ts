// The line protocol between the bench runner and its child processes (JS and C alike): each child
// writes JSON objects, one per line, on stdout; the runner writes commands ("stop") on the child's stdin.
//   ready   a receiver is bound and counting: where to send
//   started a sender has opened its window (it sends from now on)
//   result  what the child measured over its window (from its first packet to its last)
//   error   the child could not run (for example a library that failed to load)

export interface ReadyMessage {
  type: 'ready'
  port: number
  /** The receive buffer as the kernel reports it (it doubles the request, capped at rmem_max). */
  recvBufferSize: number
}

export interface StartedMessage {
  type: 'started'
}

export interface ResultMessage {
  type: 'result'
  /** Datagrams received (receivers) or sent (senders) in the window. */
  packets: number
  bytes: number
  /** Length of the window: first datagram to last (receivers), first send to last completion (senders). */
  seconds: number
  /** CPU time of the whole process (all threads) over the window. */
  cpuUserUs: number
  cpuSystemUs: number
  details: Record<string, unknown>
}

export interface ErrorMessage {
  type: 'error'
  message: string
}

export type ChildMessage = ReadyMessage | StartedMessage | ResultMessage | ErrorMessage

/** Writes one message (children only). Pipes are synchronous on Linux, so nothing is lost on exit. */
export function emit(message: ChildMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

/** Reports a failure to start (for example a library that does not load) and exits (children only). */
export function failStart(error: unknown): never {
  const text = error instanceof Error ? error.message : String(error)
  emit({ type: 'error', message: text.split('\n')[0] ?? text })
  process.exit(1)
}

/** Reads one stdout line of a child; undefined for a line that is not a message (stray output). */
export function parseMessage(line: string): ChildMessage | undefined {
  if (!line.startsWith('{')) return undefined
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined
  }
  if (!isRecord(value)) return undefined
  switch (value.type) {
    case 'ready':
      if (isCount(value.port) && isCount(value.recvBufferSize)) {
        return { type: 'ready', port: value.port, recvBufferSize: value.recvBufferSize }
      }
      return undefined
    case 'started':
      return { type: 'started' }
    case 'result': {
      const { packets, bytes, seconds, cpuUserUs, cpuSystemUs, details } = value
      if (isCount(packets) && isCount(bytes) && isCount(seconds) && isCount(cpuUserUs) && isCount(cpuSystemUs)) {
        return { type: 'result', packets, bytes, seconds, cpuUserUs, cpuSystemUs, details: isRecord(details) ? details : {} }
      }
      return undefined
    }
    case 'error':
      return { type: 'error', message: typeof value.message === 'string' ? value.message : 'unknown error' }
    default:
      return undefined
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}
