import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { afterEach } from 'vitest'
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

/** Resolves when predicate() holds, polling each turn; rejects after timeoutMs with what was seen. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
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

/** The engine I/O threads of this process (named volley-io). Other threads (V8's, libuv's) come and go. */
export function engineThreadCount(): number {
  let count = 0
  for (const task of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'volley-io') count++
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
