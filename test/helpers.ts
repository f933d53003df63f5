import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { fallbackReason } from '../src/engine/choose.ts'
import { type Datagram, type DatagramSocket, createDatagramSocket } from '../src/index.ts'

/** createDatagramSocket for a test file: every socket it makes is closed after each test. */
export function socketsClosedAfterEach(): typeof createDatagramSocket {
  const open: DatagramSocket[] = []
  afterEach(async () => {
    await closeAll(...open.splice(0))
  })
  return (options) => {
    const s = createDatagramSocket(options)
    open.push(s)
    return s
  }
}

/**
 * The process warnings given while the tests of the enclosing describe() (or file) run: listened for, they are
 * the test's to assert and are not printed (test/setup/process-warnings.ts).
 */
export function warningsDuringTests(): Error[] {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => {
    warnings.push(warning)
  }
  beforeAll(() => {
    process.on('warning', onWarning)
  })
  afterAll(() => {
    process.off('warning', onWarning)
  })
  return warnings
}

/**
 * Resolves when predicate() holds, polling each turn; rejects after timeoutMs with what was seen. `what` may
 * be a function, read at the timeout: a count in it is then the count reached, not the one at the call.
 */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what: string | (() => string) = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

/**
 * The promise, or a rejection naming `what` after timeoutMs: an awaited event that never comes fails the test
 * then, and its finally closes what it opened (at vitest's own timeout no finally runs).
 */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * How far clock `b` reads from clock `a` (ms), the time between the reads taken out: `b` is read between two
 * reads of `a`, and the gap is its distance from the span they give (0 within it). A thread descheduled
 * between two reads (this suite runs beside others on two cores) is not a clock error.
 */
export function clockGapMs(a: () => number, b: () => number): number {
  const first = a()
  const reading = b()
  const last = a()
  return Math.max(0, first - reading, reading - last)
}

/**
 * Holds the JavaScript thread (the engines' I/O threads run on) until the condition holds: for what must
 * happen before JavaScript hears of it. False at the deadline.
 */
export function blockUntil(condition: () => boolean, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs
  while (!condition()) if (Date.now() > deadline) return false
  return true
}

export interface Received {
  payloads: Buffer[]
  senders: { address: string; port: number; family: string }[]
  batches: number[]
}

/** Copies everything a socket receives (views are only valid during the callback). */
export function record(socket: DatagramSocket): Received {
  const received: Received = { payloads: [], senders: [], batches: [] }
  socket.on('messages', (batch: Datagram[]) => {
    received.batches.push(batch.length)
    for (const m of batch) {
      received.payloads.push(Buffer.from(m.data))
      received.senders.push({ address: m.address, port: m.port, family: m.family })
    }
  })
  return received
}

export function counterPayload(i: number, size = 64): Buffer {
  const buffer = Buffer.alloc(size)
  buffer.writeUInt32BE(i, 0)
  return buffer
}

export async function closeAll(...sockets: DatagramSocket[]): Promise<void> {
  await Promise.all(sockets.map((s) => s.close()))
}

/** The kernel's PF_EXITING (include/linux/sched.h): set on a task as it enters do_exit(). */
const PF_EXITING = 0x4

/**
 * The engine I/O threads of this process (named volley-io) that are running. Other threads (V8's, libuv's)
 * come and go. A thread that has ended is left out: pthread_join() returns once the kernel has cleared the
 * thread's tid, early in do_exit(), and the thread stays listed in /proc/self/task (same name) until the
 * kernel has finished its exit, 0.1 to 4 ms later in trials, so an engine stopped by close() was counted
 * still in about one close in ten on an idle machine. Such a thread has PF_EXITING in its flags.
 */
export function engineThreadCount(): number {
  let count = 0
  for (const task of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() !== 'volley-io') continue
      // The flags are the 9th field; the name, in parentheses, may hold spaces: count from its end.
      const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8')
      const flags = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6])
      if ((flags & PF_EXITING) === 0) count++
    } catch {
      // the thread ended while we looked
    }
  }
  return count
}

export { once }

/** A reproducible random source in [0, 1) (mulberry32), for randomized tests that must replay exactly. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A UDP port on 127.0.0.1 that no socket holds now: bound by a socket without SO_REUSEPORT, then let go. */
export async function freeUdpPort(): Promise<number> {
  const probe = createDatagramSocket()
  const { port } = await probe.bind(0, '127.0.0.1')
  await probe.close()
  return port
}

export type EngineKind = 'native' | 'fallback'

/**
 * Runs start() with VOLLEY_ENGINE set for `engine`, and puts it back: listen(), connect() and bind() choose
 * their engine as they begin, so start() must call them at once (a token made first, not awaited inside).
 * For 'native' it throws first if the engine chooser would pick the fallback engine (the addon did not load):
 * a native case must not pass on the fallback engine, which the chooser takes with no more than a warning.
 */
export function onEngine<T>(engine: EngineKind, start: () => Promise<T>): Promise<T> {
  const before = process.env.VOLLEY_ENGINE
  if (engine === 'fallback') process.env.VOLLEY_ENGINE = 'fallback'
  else delete process.env.VOLLEY_ENGINE
  try {
    const reason = engine === 'native' ? fallbackReason() : undefined
    if (reason !== undefined) throw new Error(`a test on the native engine would run on the fallback engine: ${reason}`)
    return start()
  } finally {
    if (before === undefined) delete process.env.VOLLEY_ENGINE
    else process.env.VOLLEY_ENGINE = before
  }
}
