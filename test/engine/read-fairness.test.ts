// Sockets on one engine share its receive slabs. While a flooded socket keeps them full (JavaScript is
// slower than its sender), every round of reading ends starved; each round must go on where the last one
// stopped, or the sockets listed after the flooded one are never read: a gateway's netcode socket next to
// a busy raw socket would go deaf, its peers' keep-alives waiting in the kernel.
import { Worker } from 'node:worker_threads'
import dgram from 'node:dgram'
import { describe, expect, it } from 'vitest'
import { createDatagramSocket } from '../../src/index.ts'
import { dedicatedEngine, useDedicatedEngine } from '../../src/engine/engine.ts'
import { waitFor } from '../helpers.ts'

const floodMs = 2000

/** Sends 1,200-byte datagrams to port as fast as node:dgram can, from a thread of its own, for floodMs. */
function flood(port: number): Promise<number> {
  const source = `
    const dgram = require('node:dgram')
    const { parentPort, workerData } = require('node:worker_threads')
    const socket = dgram.createSocket('udp4')
    const data = Buffer.alloc(1200, 7)
    const end = Date.now() + workerData.floodMs
    let sent = 0
    const burst = () => {
      if (Date.now() >= end) { socket.close(() => parentPort.postMessage(sent)); return }
      let pending = 64
      for (let i = 0; i < 64; i++) socket.send(data, workerData.port, '127.0.0.1', () => { sent++; if (--pending === 0) setImmediate(burst) })
    }
    burst()
  `
  const worker = new Worker(source, { eval: true, workerData: { port, floodMs } })
  return new Promise((resolve, reject) => {
    worker.once('message', (sent: number) => resolve(sent))
    worker.once('error', reject)
  })
}

describe('reading the sockets of one engine', () => {
  it('reads a quiet socket while another, flooded, keeps every slab full', async () => {
    const engine = dedicatedEngine({ initialReceiveSlabs: 1, maxReceiveSlabs: 1, maxSendSlabs: 8 })
    const flooded = createDatagramSocket({ engine: 'dedicated', recvBufferSize: 2 << 20 })
    const quiet = createDatagramSocket({ engine: 'dedicated' })
    useDedicatedEngine(flooded, () => engine)
    useDedicatedEngine(quiet, () => engine)
    const sender = dgram.createSocket('udp4')
    try {
      const { port: floodedPort } = await flooded.bind(0, '127.0.0.1')
      const { port: quietPort } = await quiet.bind(0, '127.0.0.1')
      let flooding = true
      let floodedRead = 0
      flooded.on('messages', (batch) => {
        floodedRead += batch.length
        // 40 µs of work a datagram: JavaScript takes ~25,000 a second, fewer than the flood brings.
        const until = performance.now() + batch.length * 0.04
        while (performance.now() < until);
      })
      const quietArrivals: number[] = []
      quiet.on('message', (data) => quietArrivals.push(data[0]!))
      const flooded$ = flood(floodedPort).finally(() => (flooding = false))
      await waitFor(() => floodedRead > 1000, 2000, 'the flood to begin')
      // One datagram to the quiet socket every 20 ms while the flood lasts (a keep-alive's pace).
      let sentQuiet = 0
      while (flooding && sentQuiet < 200) {
        sender.send(Buffer.from([sentQuiet & 0xff]), quietPort, '127.0.0.1')
        sentQuiet++
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      const readDuringFlood = quietArrivals.length
      const floodSent = await flooded$
      // The engine was starved all along: the flood outran JavaScript, and the kernel dropped the rest. (The
      // flooded socket's buffer, 2 MiB asked and doubled by the kernel, holds many slabs' worth: its queue does
      // not empty between rounds.)
      expect(floodSent).toBeGreaterThan(floodedRead)
      expect(flooded.stats().drops.receiveBufferFull).toBeGreaterThan(1000)
      expect(sentQuiet).toBeGreaterThan(20)
      // Before the fix every round began at the flooded socket and starved in it: the quiet one read
      // nothing until the flood ended.
      expect(readDuringFlood).toBeGreaterThan(sentQuiet * 0.8)
      await waitFor(() => quietArrivals.length === sentQuiet, 2000, () => `all ${sentQuiet} datagrams to the quiet socket (${quietArrivals.length})`)
      expect(quietArrivals).toEqual(Array.from({ length: sentQuiet }, (_, i) => i & 0xff))
    } finally {
      sender.close()
      await flooded.close()
      await quiet.close()
    }
  })
})
