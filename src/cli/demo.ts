// The loopback demo (npm run demo): a netcode server, 1,000 clients connecting with connect tokens,
// messages flowing both ways, live counters, and a summary at the end. With --channels the messages go on
// a reliable channel (the delivery layer), and --loss P puts a simulated lossy network under every socket:
//   npm run demo -- --channels --loss 0.05
// Ctrl-C ends it early, with the summary so far (status 130; SIGTERM 143); a second Ctrl-C ends it at once.
import { setMaxListeners } from 'node:events'
import { Client, Server, generateConnectToken, generateKey } from '../index.ts'
import { fallbackReason } from '../engine/choose.ts'
import { nativeInfo } from '../api/native-info.ts'
import { exitOnCommandError, exitWithHelp, interruptedStatus, interruption, maxTimerSeconds, msUntilInterrupted, numberArgument, parseCommandLine, pause, seeHelp, tolerateClosedOutput } from './arguments.ts'

const usage = 'usage: npm run demo -- [--clients 1000] [--seconds 5] [--rate 20] [--channels] [--loss 0.05]'
const seeUsage = seeHelp('npm run demo -- --help')
const help = `${usage}

A netcode server and its clients on loopback: each client connects with a connect token, then sends
messages that the server echoes back; live counters twice a second, and a summary at the end.
  --clients   how many clients (1 to 65,536; default 1,000)
  --seconds   how long the messages flow (default 5)
  --rate      messages a second from each client (default 20)
  --channels  the messages on a reliable channel (the delivery layer) instead of bare netcode payloads
  --loss      every socket sends through a simulated network that loses this share of its datagrams
              (0 to 1; implies --channels, so every message still arrives)
Ctrl-C ends it early, with the summary so far; a second Ctrl-C ends it at once.`

function settings(): { clientCount: number; seconds: number; rate: number; channels: boolean; loss: number | undefined } {
  const { values } = parseCommandLine({
    options: {
      clients: { type: 'string' },
      seconds: { type: 'string' },
      rate: { type: 'string' }, // messages per client per second
      channels: { type: 'boolean', default: false },
      loss: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) exitWithHelp(help)
  return {
    clientCount: numberArgument('clients', values.clients, 1000, { integer: true, min: 1, max: 65_536 }),
    seconds: numberArgument('seconds', values.seconds, 5, { min: 0.1, max: maxTimerSeconds }),
    rate: numberArgument('rate', values.rate, 20, { max: 100_000 }),
    channels: values.channels,
    loss: values.loss === undefined ? undefined : numberArgument('loss', values.loss, 0, { max: 1 }),
  }
}

let demo: ReturnType<typeof settings>
try {
  demo = settings()
} catch (error) {
  exitOnCommandError('volley demo', seeUsage, error)
}
const { clientCount, seconds, rate, loss } = demo
// With channels: a reliable channel for the echoes; with --loss: every socket sends through a lossy network.
const delivery = {
  ...(demo.channels || loss !== undefined ? { channels: [{ mode: 'reliable' as const }] } : {}),
  ...(loss !== undefined ? { networkSimulator: { loss, latencyMs: 1, jitterMs: 0.5 } } : {}),
}
/** Clients that connect at once. */
const connectWave = 100
const protocolId = 0x766f6c6c6579n // "volley"
const privateKey = await generateKey()

const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: clientCount, engine: 'dedicated', ...delivery })
let port: number
try {
  ;({ port } = await server.listen())
} catch (error) {
  exitOnCommandError('volley demo', seeUsage, error) // a port in use; channels on the fallback engine
}
// From here on, Ctrl-C (or SIGTERM) stops the connecting or the messages, and the summary follows.
tolerateClosedOutput()
const interrupted = interruption()
setMaxListeners(connectWave + 1, interrupted) // each attempt of a wave listens to it
const fallback = fallbackReason()
const plural = (count: number, noun: string): string => `${count.toLocaleString('en-US')} ${noun}${count === 1 ? '' : 's'}`
console.log(
  `volley demo: a server on 127.0.0.1:${port}, ${plural(clientCount, 'client')}, ${rate} messages/s each, ${seconds} s` +
    (delivery.channels ? `, reliable channel${loss !== undefined ? `, ${loss * 100} % simulated loss` : ''}` : ''),
)
if (fallback === undefined) {
  const info = nativeInfo()
  console.log(`native addon: ${info.path} (libsodium ${info.sodiumVersion})\n`)
} else {
  console.log(`the fallback engine (${fallback})\n`)
}

let serverReceived = 0
server.on('message', (peer, data) => {
  serverReceived++
  peer.send(data) // echo
})

// Tokens, as a web backend would make them.
const tokens = await Promise.all(
  Array.from({ length: clientCount }, (_, i) =>
    generateConnectToken({ protocolId, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 60, timeoutSeconds: 10 }),
  ),
)

const connectStarted = performance.now()
const clients: Client[] = []
const failures = new Map<string, number>() // connect() rejections by code: the demo goes on with the others
let echoes = 0
for (let first = 0; first < clientCount && !interrupted.aborted; first += connectWave) {
  const wave = tokens.slice(first, first + connectWave).map(async (token) => {
    const client = new Client(delivery)
    client.on('message', () => echoes++)
    try {
      await client.connect(token, { signal: interrupted })
      clients.push(client)
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? (error as Error).message)
      // Ctrl-C ended the attempt: not a failure (the summary says it was interrupted).
      if (!(interrupted.aborted && code === 'ABORT_ERR')) failures.set(code, (failures.get(code) ?? 0) + 1)
      await client.close()
    }
  })
  await Promise.all(wave)
}
const connectMs = performance.now() - connectStarted
const failed = [...failures].map(([code, count]) => `${count} ${code}`).join(', ')
console.log(`  ${plural(clients.length, 'client')} connected in ${connectMs.toFixed(0)} ms (${((clients.length / connectMs) * 1000).toFixed(0)} handshakes/s)${failed === '' ? '' : `; failed: ${failed}`}\n`)

const payload = new Uint8Array(64).fill(0x2a)
let sent = 0
// What is due by now at `rate` a second from each client, however late the 50 ms timer fires (and 0 at
// --rate 0); a client whose connection has ended is passed over.
let attempts = 0
// For budgetMs at most: a rate beyond reach must not hold up the event loop (and the window's end).
const sendDue = (elapsedSeconds: number, budgetMs = 40): void => {
  const until = performance.now() + budgetMs
  for (const due = Math.floor(elapsedSeconds * rate * clients.length); attempts < due && performance.now() < until; attempts++) {
    const client = clients[attempts % clients.length] as Client
    if (client.state === 'connected' && client.send(payload)) sent++
  }
}
const sendingFrom = performance.now()
const sender = setInterval(() => sendDue((performance.now() - sendingFrom) / 1000), 50)

const cpuStart = process.cpuUsage()
const started = performance.now()
let last = { sent: 0, echoes: 0 }
const ticker = setInterval(() => {
  const stats = server.stats()
  console.log(
    `  connected ${String(stats.connectedClients).padStart(5)}   sent ${String((sent - last.sent) * 2).padStart(6)}/s   echoed ${String((echoes - last.echoes) * 2).padStart(6)}/s   dropped ${Object.values(stats.drops).reduce((sum, count) => sum + count, 0)}`,
  )
  last = { sent, echoes }
}, 500)
await pause(seconds * 1000, interrupted)
clearInterval(sender)
clearInterval(ticker)
if (!interrupted.aborted) sendDue(seconds, 250) // the window's last sends: its timer may not have fired at its very end
// The last echoes (resent ones too, over a lossy network); after a Ctrl-C, for a second at most.
for (let waited = 0; echoes < sent && waited < (interrupted.aborted ? 1000 : 5000); waited += 50) await new Promise((resolve) => setTimeout(resolve, 50))
const elapsed = (performance.now() - started) / 1000
const cpu = process.cpuUsage(cpuStart)
const stats = server.stats()

await Promise.all(clients.map((client) => client.close()))
await server.close()

console.log(interrupted.aborted ? `\nsummary (interrupted after ${(msUntilInterrupted(interrupted, connectStarted) / 1000).toFixed(1)} s)` : '\nsummary')
console.log(`  handshakes  ${clients.length} in ${connectMs.toFixed(0)} ms${failed === '' ? '' : `; ${failed} failed`}`)
console.log(`  messages    ${sent} sent by clients, ${serverReceived} received by the server, ${echoes} echoes back (${((echoes / elapsed) | 0).toLocaleString('en-US')}/s)`)
console.log(`  server      ${stats.packets.in.toLocaleString('en-US')} packets in, ${stats.packets.out.toLocaleString('en-US')} out (keep-alives included), ${stats.denied} denied`)
console.log(`  drops       malformed ${stats.drops.malformed}, replayed ${stats.drops.replayed}, too old ${stats.drops.tooOld}, decryption ${stats.drops.decryptionFailed}, unknown address ${stats.drops.unknownAddress}, token refused ${stats.drops.tokenRefused}, expired ${stats.drops.tokenExpired}, wrong protocol ${stats.drops.wrongProtocol}, requests throttled ${stats.drops.requestsThrottled}, receive buffer full ${stats.drops.receiveBufferFull}, send buffer full ${stats.drops.sendBufferFull}`)
if (stats.link !== null && clients.length > 0) {
  const { rtt, lossPercent, resends } = stats.link
  console.log(`  link        RTT ${rtt.smoothedMs.toFixed(2)} ms (min ${rtt.minMs.toFixed(2)}, max ${rtt.maxMs.toFixed(2)}), ${lossPercent.toFixed(1)} % of packets lost, ${resends} resends`)
}
// Over the message window: none when Ctrl-C came while the clients connected.
if (elapsed >= 0.1) console.log(`  CPU         ${(((cpu.user + cpu.system) / 1000 / elapsed) / 10).toFixed(0)} % of one core (server, ${plural(clients.length, 'client')}${fallback === undefined ? ' and both I/O threads' : ', all on the JavaScript thread'})`)
// Cut short by a signal: the status signals give (130 for SIGINT).
if (interrupted.aborted) process.exitCode = interruptedStatus(interrupted)
else if (echoes < sent * 0.99 || clients.length !== clientCount) process.exitCode = 1
