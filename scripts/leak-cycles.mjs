// Leak driver for scripts/leak-check.sh: many open/bind/send/receive/close cycles on shared and dedicated
// engines through the real JavaScript layer (src/index.ts), request/response that JavaScript reads itself,
// plus the awkward endings: close while traffic flows, close and engine shutdown from inside a callback, a
// starved receiver, worker threads that exit or are terminated with sockets open (one while it reads them),
// and sockets still open when the process exits.
//
//   node --expose-gc --import tsx scripts/leak-cycles.mjs [--cycles N] [--exit natural|process-exit] [--no-workers]
//
// Run it in a copy of the package whose build/Release holds the addon to check (leak-check.sh does).
// Prints "leak-cycles: done" at the end. Exit status: 0 ok, 2 a phase hung or failed, 3 engines (fds,
// slab memory) are still alive after every socket closed and the heap was collected: a leak that LSan and
// valgrind cannot see, because everything is freed when the environment is torn down.
import { readdirSync, readlinkSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'

if (!isMainThread) {
  const { register } = await import('tsx/esm/api')
  register()
}
const { createDatagramSocket, nativeInfo, Server, Client, generateConnectToken } = await import(new URL('../src/index.ts', import.meta.url).href)

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const at = args.indexOf(name)
  return at >= 0 ? args[at + 1] : fallback
}
const CYCLES = Number(option('--cycles', 30))
const EXIT = option('--exit', 'natural')
const WORKERS = !args.includes('--no-workers')
const HOST = '127.0.0.1'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const log = (...parts) => console.log(`leak-cycles${isMainThread ? '' : ' [worker]'}:`, ...parts)

async function within(ms, what, promise) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no progress after ${ms} ms (hang?)`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function waitUntil(predicate, ms) {
  const deadline = Date.now() + ms
  while (!predicate() && Date.now() < deadline) await sleep(2)
  return predicate()
}

function counting(socket) {
  const got = { n: 0 }
  socket.on('messages', (batch) => {
    got.n += batch.length
  })
  return got
}

let shortDeliveries = 0
// a and b send n datagrams to each other and wait for them (loopback can still drop: only counted).
async function exchange(a, b, n, size = 512) {
  const gotA = counting(a)
  const gotB = counting(b)
  const payload = Buffer.alloc(size, 7)
  const pa = a.address().port
  const pb = b.address().port
  for (let i = 0; i < n; i++) {
    a.send(payload, pb, HOST)
    b.send(payload, pa, HOST)
  }
  if (!(await waitUntil(() => gotA.n >= n && gotB.n >= n, 3000))) shortDeliveries++
}

async function pair(engineA, engineB) {
  const a = createDatagramSocket({ engine: engineA, recvBufferSize: 1 << 20 })
  const b = createDatagramSocket({ engine: engineB, recvBufferSize: 1 << 20, batchSize: 256 })
  await a.bind(0, HOST)
  await b.bind(0, HOST)
  return [a, b]
}

// --- phases -----------------------------------------------------------------------------------

async function cycles(engineA, engineB, n) {
  for (let i = 0; i < n; i++) {
    const [a, b] = await pair(engineA, engineB)
    await exchange(a, b, 100)
    await Promise.all([a.close(), b.close()])
  }
}

async function persistentShared(n) {
  const anchor = createDatagramSocket()
  await anchor.bind(0, HOST)
  for (let i = 0; i < n; i++) {
    const s = createDatagramSocket()
    await s.bind(0, HOST)
    await exchange(anchor, s, 50)
    anchor.removeAllListeners('messages')
    await s.close()
  }
  await anchor.close()
}

// The sender fills its whole queue with large datagrams to a receiver with a small buffer, then closes at
// once (queued datagrams are dropped); the receiver closes while datagrams are still arriving.
async function closeWhileFlowing(n, engine) {
  for (let i = 0; i < n; i++) {
    const receiver = createDatagramSocket({ engine, recvBufferSize: 64 << 10 })
    const sender = createDatagramSocket({ engine, sendBufferSize: 16 << 10 })
    const { port } = await receiver.bind(0, HOST)
    await sender.bind(0, HOST)
    counting(receiver)
    const big = Buffer.alloc(60_000, 1)
    let accepted = 0
    while (accepted < 400 && sender.send(big, port, HOST)) accepted++
    sender.flush()
    if (i % 2 === 0) {
      await Promise.all([sender.close(), receiver.close()])
    } else {
      await sleep(1)
      await receiver.close()
      await sender.close()
    }
  }
}

// close() and the engine's shutdown (last socket) from inside the 'messages' / 'message' callbacks,
// and a handler that throws (the error surfaces as an uncaught exception; the engine must go on).
async function closeInsideCallback(n) {
  for (let i = 0; i < n; i++) {
    const engine = i % 2 === 0 ? 'dedicated' : 'shared'
    const receiver = createDatagramSocket({ engine })
    const sender = createDatagramSocket({ engine: 'dedicated' })
    const { port } = await receiver.bind(0, HOST)
    await sender.bind(0, HOST)
    const closed = new Promise((resolve) => {
      const event = i % 3 === 0 ? 'message' : 'messages'
      receiver.on(event, () => {
        // The sender's engine stops from inside the receiver's drain when both share nothing.
        void sender.close()
        resolve(receiver.close())
      })
    })
    for (let k = 0; k < 50; k++) sender.send('close me', port, HOST)
    await closed
    await sender.close()
  }
  // A throwing handler.
  const thrown = []
  const onUncaught = (error) => thrown.push(error)
  process.on('uncaughtException', onUncaught)
  const s = createDatagramSocket({ engine: 'dedicated' })
  const { port } = await s.bind(0, HOST)
  s.on('messages', () => {
    throw new Error('handler failure (expected)')
  })
  for (let k = 0; k < 20; k++) s.send('x', port, HOST)
  await waitUntil(() => thrown.length > 0, 2000)
  await s.close()
  process.off('uncaughtException', onUncaught)
}

// The receiver's JavaScript is busy while a flood arrives: the I/O thread runs out of receive slabs
// (STARVED), JavaScript adds slabs, reading resumes.
async function starve(n) {
  for (let i = 0; i < n; i++) {
    const receiver = createDatagramSocket({ engine: 'dedicated', recvBufferSize: 4 << 20, batchSize: 1024 })
    const sender = createDatagramSocket({ engine: 'dedicated' })
    const { port } = await receiver.bind(0, HOST)
    await sender.bind(0, HOST)
    const got = counting(receiver)
    const payload = Buffer.alloc(1400, 3)
    let queued = 0
    while (queued < 6000 && sender.send(payload, port, HOST)) queued++
    sender.flush()
    const until = Date.now() + 150
    while (Date.now() < until) {
      /* JavaScript busy: nothing is drained */
    }
    await waitUntil(() => got.n >= queued * 0.5, 3000)
    await Promise.all([sender.close(), receiver.close()])
  }
}

// Request/response, one datagram at a time: the engines leave reading to JavaScript between light turns
// (Engine::ReceiveInline), and the sockets close while it reads. keepGoing: the worker's endless version.
async function pingPong(n, engine, keepGoing = false) {
  for (let i = 0; i < n || keepGoing; i++) {
    const [a, b] = await pair(engine, engine)
    b.on('message', (data, rinfo) => b.send(data, rinfo.port, rinfo.address))
    for (let m = 0; m < 30; m++) {
      const back = new Promise((resolve) => a.once('message', resolve))
      a.send(Buffer.alloc(64, m), b.address().port, HOST)
      await within(2000, 'an echo', back)
      if (keepGoing && i === 0 && m === 10) parentPort.postMessage('flowing')
    }
    await Promise.all([a.close(), b.close()])
  }
}

// Sockets left open (unref'd) with traffic in flight: the environment's cleanup hook must stop the engines.
async function leaveOpen() {
  const kept = []
  for (const engine of ['shared', 'dedicated', 'dedicated']) {
    const s = createDatagramSocket({ engine })
    await s.bind(0, HOST)
    counting(s)
    kept.push(s)
  }
  const payload = Buffer.alloc(1000, 5)
  for (let k = 0; k < 300; k++) {
    for (const s of kept) s.send(payload, kept[(kept.indexOf(s) + 1) % kept.length].address().port, HOST)
  }
  for (const s of kept) s.unref()
  return kept
}

function spawnWorker(mode) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { mode },
      argv: ['--cycles', String(Math.max(2, Math.ceil(CYCLES / 10)))],
    })
    worker.on('error', reject)
    if (mode !== 'exit') {
      worker.on('message', async () => {
        await sleep(20) // traffic flowing in the worker
        await worker.terminate()
      })
    }
    worker.on('exit', resolve)
  })
}

async function workerMain() {
  const mode = workerData.mode
  if (mode === 'terminate-inline') return pingPong(0, 'shared', true) // until terminated
  await cycles('shared', 'dedicated', Math.max(2, Math.ceil(CYCLES / 10)))
  const kept = await leaveOpen()
  if (mode === 'terminate') {
    // Keep traffic going until the parent terminates this thread.
    const payload = Buffer.alloc(800)
    const timer = setInterval(() => {
      for (let k = 0; k < 50; k++) kept[0].send(payload, kept[1].address().port, HOST)
    }, 1)
    parentPort.postMessage('flowing')
    void timer
  }
  // 'exit': the worker's loop empties with the sockets still open; its environment is torn down.
}

// --- retained engines ----------------------------------------------------------------------------

function engineFds() {
  let count = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventpoll]') count++
    } catch {}
  }
  return count
}

async function collect() {
  for (let i = 0; i < 4; i++) {
    await sleep(20)
    globalThis.gc?.()
  }
}

// Netcode server and clients on the engine: connect, exchange payloads, disconnect from either side, stop.
async function protocolCycles(n) {
  const privateKey = new Uint8Array(32).fill(5)
  for (let i = 0; i < n; i++) {
    // Every other cycle with channels, a lossy simulated network and a message too large for a slab.
    const delivery = i % 2 === 1 ? { channels: [{ mode: 'reliable' }, { mode: 'unreliable' }], networkSimulator: { loss: 0.1, latencyMs: 1, seed: i } } : {}
    const server = new Server({ protocolId: 7n, privateKey, address: '127.0.0.1:0', maxClients: 4, disconnectIntervalMs: 2, engine: i % 2 ? 'dedicated' : 'shared', ...delivery })
    const { port } = await server.listen()
    server.on('message', (peer, data) => peer.send(data))
    const clients = []
    for (let c = 0; c < 3; c++) {
      const client = new Client({ disconnectIntervalMs: 2, ...delivery })
      const token = await generateConnectToken({ protocolId: 7n, privateKey, clientId: BigInt(c + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
      await client.connect(token)
      let echoes = 0
      client.on('message', () => echoes++)
      for (let m = 0; m < 20; m++) client.send(new Uint8Array(100).fill(m))
      if (delivery.channels) client.send(new Uint8Array(200_000).fill(c))
      await waitUntil(() => echoes === (delivery.channels ? 21 : 20), 5000)
      clients.push(client)
    }
    await clients[0].close()
    ;[...server.peers.values()][0]?.disconnect()
    await server.close()
    await Promise.all(clients.map((client) => client.close()))
  }
}

// The delivery layer's core (native/protocol/delivery/), two of them over a lossy in-process link, plus hostile
// packets: buffers of every kind (queues, reassembly, fragments of a large message) made and freed.
async function deliveryCycles(n) {
  // The test bindings' addon, built beside the addon under test (leak-check.sh builds with --volley_testing=1).
  const { createRequire } = await import('node:module')
  const { DeliveryCore } = createRequire(import.meta.url)(fileURLToPath(new URL('../build/Release/volley_testing.node', import.meta.url)))
  let seed = 1
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32)
  for (let i = 0; i < n; i++) {
    const options = { channels: ['reliable', 'unreliable', 'sequenced'], maxMessageBytes: 1 << 20 }
    // A client's core and its server's: the two roles (each side's settings say which it takes).
    const a = new DeliveryCore(options)
    const b = new DeliveryCore({ ...options, followsPings: true })
    a.send(0, new Uint8Array(300_000).fill(i), 0)
    for (let m = 0; m < 50; m++) a.send(m % 3, new Uint8Array(m * 97 + 1).fill(m), 0)
    // The reliable ones must all arrive (the 300 kB one and 17 small ones); unreliable ones may be lost.
    let delivered = 0
    for (let now = 0; now < 20_000_000 && delivered < 18; now += 1000) {
      a.update(now)
      b.update(now)
      for (const packet of a.take().packets) if (random() > 0.1) b.receive(packet, now + 1)
      const fromB = b.take()
      for (const packet of fromB.packets) if (random() > 0.1) a.receive(packet, now + 1)
      delivered += fromB.messages.filter((message) => message.channel === 0).length
    }
    if (delivered < 18) throw new Error(`delivery cycle ${i}: ${delivered} of 18 reliable messages arrived`)
    for (let h = 0; h < 200; h++) b.receive(Uint8Array.from({ length: 1 + Math.floor(random() * 300) }, (_, k) => (k === 0 ? 0xd1 : Math.floor(random() * 256))), 0)
  }
}

// --- main ------------------------------------------------------------------------------------------

async function main() {
  if (!isMainThread) return workerMain()
  const started = Date.now()
  log(`addon: ${nativeInfo().path}, ${CYCLES} cycles, exit: ${EXIT}`)
  await collect()
  const baseFds = engineFds()
  const baseBuffers = process.memoryUsage().arrayBuffers
  const phases = [
    ['shared cycles', () => cycles('shared', 'shared', CYCLES)],
    ['dedicated cycles', () => cycles('dedicated', 'dedicated', CYCLES)],
    ['mixed cycles', () => cycles('shared', 'dedicated', CYCLES)],
    ['persistent shared engine', () => persistentShared(CYCLES)],
    ['close while traffic flows (shared)', () => closeWhileFlowing(Math.ceil(CYCLES / 3), 'shared')],
    ['close while traffic flows (dedicated)', () => closeWhileFlowing(Math.ceil(CYCLES / 3), 'dedicated')],
    ['close/shutdown inside callbacks', () => closeInsideCallback(Math.ceil(CYCLES / 2))],
    ['starved receiver', () => starve(Math.max(1, Math.ceil(CYCLES / 10)))],
    ['request/response read by JavaScript (shared)', () => pingPong(Math.ceil(CYCLES / 3), 'shared')],
    ['request/response read by JavaScript (dedicated)', () => pingPong(Math.ceil(CYCLES / 3), 'dedicated')],
    ['netcode server and clients', () => protocolCycles(Math.max(1, Math.ceil(CYCLES / 10)))],
    ['delivery cores over a lossy link', () => deliveryCycles(Math.max(1, Math.ceil(CYCLES / 10)))],
  ]
  if (WORKERS) {
    phases.push(['worker exits with sockets open', () => spawnWorker('exit')])
    phases.push(['worker terminated with traffic flowing', () => spawnWorker('terminate')])
    phases.push(['worker terminated while JavaScript reads its sockets', () => spawnWorker('terminate-inline')])
  }
  for (const [name, run] of phases) {
    const t = Date.now()
    try {
      await within(60_000, name, run())
    } catch (error) {
      log(`FAILED in "${name}":`, error)
      process.exit(2)
    }
    log(`${name}: ok (${Date.now() - t} ms)`)
  }
  if (shortDeliveries > 0) log(`note: ${shortDeliveries} exchanges lost datagrams on loopback (not an error)`)

  // Every socket is closed now: every engine should be gone once the heap is collected.
  await collect()
  const retainedFds = engineFds() - baseFds
  const retainedBuffers = process.memoryUsage().arrayBuffers - baseBuffers
  log(`after all sockets closed + GC: ${retainedFds} engine epoll fds still open, ${(retainedBuffers / 2 ** 20).toFixed(1)} MiB of ArrayBuffers still alive`)
  const retained = retainedFds > 2

  const kept = await leaveOpen()
  log(`leaving ${kept.length} sockets open at exit (${EXIT}) after ${Date.now() - started} ms`)
  if (retained) {
    log('RETAINED ENGINES: stopped engines are never collected (fds and slabs stay until the environment ends)')
    process.exitCode = 3
  }
  console.log('leak-cycles: done')
  if (EXIT === 'process-exit') process.exit()
}

await main()
