// The key rotation demo (npm run demo:keysync): a development KME (ETSI GS QKD 014 over mutual TLS), a
// token-issuing backend (the master SAE) and a Volley gateway (the slave SAE) on loopback. They sync a key
// over signed JSON datagrams, agree on an instant, switch together and clean up the rolled key; the
// gateway's Server accepts the new key from the agreement and the old one for a grace after the instant.
// Clients connect throughout with fresh tokens minted under whatever key the backend holds: none is refused.
//   npm run demo:keysync -- --rotations 3 --every 30 --clients 20
import { setMaxListeners } from 'node:events'
import { Client, Server, generateConnectToken } from '../index.ts'
import { fallbackReason } from '../engine/choose.ts'
import { DatagramLink } from '../sessions/keysync/datagram-link.ts'
import { DevKme } from '../sessions/keysync/dev-kme.ts'
import { generateSaeKeyPair } from '../sessions/keysync/envelope.ts'
import { KmeClient } from '../sessions/keysync/kme-client.ts'
import { KeySyncMaster, type KeyRotationResult } from '../sessions/keysync/master.ts'
import { KeySyncSlave } from '../sessions/keysync/slave.ts'
import { IssuerKey, netcodeKeyFrom, rotateServerKeys } from '../sessions/keysync/volley-keys.ts'
import { exitOnCommandError, exitWithHelp, interruptedStatus, interruption, numberArgument, parseCommandLine, pause, seeHelp, tolerateClosedOutput } from './arguments.ts'

const usage = 'usage: npm run demo:keysync -- [--rotations 3] [--every 30] [--clients 20]'
const seeUsage = seeHelp('npm run demo:keysync -- --help')
const help = `${usage}

A development KME, a token-issuing backend (master SAE) and a Volley gateway (slave SAE) on loopback. They
take each new key from the KME, agree on an instant over signed datagrams, switch together and delete the
rolled key; clients connect all along with fresh tokens, and none is refused.
  --rotations  how many rotations after the first key (1 to 100; default 3)
  --every      seconds between rotations (2 to 3,600; default 30)
  --clients    clients connecting a second (1 to 200; default 20)
Ctrl-C ends it early, with the summary so far; a second Ctrl-C ends it at once.`

function settings() {
  const { values } = parseCommandLine({
    options: { rotations: { type: 'string' }, every: { type: 'string' }, clients: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  })
  if (values.help === true) exitWithHelp(help)
  return {
    rotations: numberArgument('rotations', values.rotations, 3, { integer: true, min: 1, max: 100 }),
    everySeconds: numberArgument('every', values.every, 30, { min: 2, max: 3600 }),
    clientsPerSecond: numberArgument('clients', values.clients, 20, { min: 1, max: 200 }),
  }
}

let demo: ReturnType<typeof settings>
try {
  demo = settings()
} catch (error) {
  exitOnCommandError('volley demo:keysync', seeUsage, error)
}
const { rotations, everySeconds, clientsPerSecond } = demo
const protocolId = 0x5e0000n
const BACKEND = 'backend'
const GATEWAY = 'gateway'
/** A connect token's life: long enough for a connect, short enough that an old key's tokens die soon after it. */
const tokenSeconds = 10
/** How long the gateway still accepts the key a rotation replaced: the life of a token minted just before. */
const graceMs = tokenSeconds * 1000

tolerateClosedOutput()
const interrupted = interruption()
setMaxListeners(1000, interrupted)

const kme = await DevKme.start({ saeIds: [BACKEND, GATEWAY] })
const backendKme = new KmeClient(kme.credentialsFor(BACKEND))
const gatewayKme = new KmeClient(kme.credentialsFor(GATEWAY))
const backendIdentity = generateSaeKeyPair()
const gatewayIdentity = generateSaeKeyPair()
const backendLink = await DatagramLink.open({
  signer: { saeId: BACKEND, ...backendIdentity },
  peer: { saeId: GATEWAY, publicKey: gatewayIdentity.publicKeyPem, address: '127.0.0.1', port: 1 },
  address: '127.0.0.1',
  port: 0,
})
const gatewayLink = await DatagramLink.open({
  signer: { saeId: GATEWAY, ...gatewayIdentity },
  peer: { saeId: BACKEND, publicKey: backendIdentity.publicKeyPem, address: '127.0.0.1', port: backendLink.address().port },
  address: '127.0.0.1',
  port: 0,
})
backendLink.setPeerAddress('127.0.0.1', gatewayLink.address().port)
// The instant is half a period after each Get key; the gateway needs a second to be ready.
const rotationDelayMs = Math.round((everySeconds * 1000) / 2)
const master = new KeySyncMaster({ saeId: BACKEND, peerSaeId: GATEWAY, link: backendLink, kme: backendKme, rotationDelayMs, responseTimeoutMs: 2_000 })
const slave = new KeySyncSlave({ saeId: GATEWAY, peerSaeId: BACKEND, link: gatewayLink, kme: gatewayKme, prepareMs: 1_000, responseTimeoutMs: 2_000 })
const fallback = fallbackReason()
console.log(
  `volley demo:keysync: a development KME on ${kme.url}, a backend (master SAE) and a gateway (slave SAE) on loopback; ` +
    `a rotation every ${everySeconds} s, ${clientsPerSecond} clients a second; ${fallback === undefined ? 'native engine' : `fallback engine (${fallback})`}`,
)

const results: KeyRotationResult[] = []
let server: Server | undefined
let issuer: IssuerKey | undefined
let failure: Error | undefined
let stopClients = false
const counts = { connected: 0, refused: 0, slaveRotations: 0, slaveCleanups: 0 }
slave.on('rotated', () => counts.slaveRotations++)
slave.on('cleanup', () => counts.slaveCleanups++)
const started = performance.now()
const elapsed = () => ((performance.now() - started) / 1000).toFixed(1).padStart(5)

try {
  // The first key: synced before the gateway serves (with nothing to roll, its cleanup deletes nothing).
  results.push(await master.rotate({ rotationDelayMs: 2_000, signal: interrupted }))
  const first = (await slave.currentKey())!
  const gatewayKey = netcodeKeyFrom(first.key)
  server = new Server({ protocolId, privateKey: gatewayKey, address: '127.0.0.1:0', maxClients: 1024 })
  gatewayKey.fill(0)
  const { port } = await server.listen()
  rotateServerKeys(server, slave, { graceMs })
  issuer = new IssuerKey(master, results[0]!.key)
  console.log(`${elapsed()} s  key ${results[0]!.keyId} in production on both sides; the gateway listens on 127.0.0.1:${port}`)
  master.on('rotated', (rotation) => console.log(`${elapsed()} s  rotated to ${rotation.keyId} (the gateway accepts ${server!.privateKeyCount} keys)`))
  master.on('cleanup', (result) => console.log(`${elapsed()} s  cleanup ${result.status}: deleted [${result.deletedKeyIds.join(', ')}], failed [${result.failedKeyIds.join(', ')}]`))

  const connecting = connectClients(port)
  for (let i = 0; i < rotations && !interrupted.aborted; i++) {
    const rotation = master.rotate({ signal: interrupted })
    results.push(await rotation)
    await pause(Math.max(0, everySeconds * 1000 - rotationDelayMs), interrupted)
  }
  stopClients = true
  await connecting
} catch (error) {
  if (!interrupted.aborted) failure = error as Error
}

async function connectClients(port: number): Promise<void> {
  const inFlight = new Set<Promise<void>>()
  let clientId = 0n
  while (!stopClients && !interrupted.aborted) {
    const key = issuer!.current!
    const token = await generateConnectToken({ protocolId, privateKey: key, clientId: ++clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: tokenSeconds, timeoutSeconds: 5 })
    const attempt = connectOnce(token).finally(() => inFlight.delete(attempt))
    inFlight.add(attempt)
    await pause(1000 / clientsPerSecond, interrupted)
  }
  await Promise.all(inFlight)
}

async function connectOnce(token: Uint8Array): Promise<void> {
  const client = new Client()
  try {
    await client.connect(token)
    counts.connected++
  } catch {
    counts.refused++
  } finally {
    await client.close()
  }
}

const masterKey = await master.currentKey()
const slaveKey = await slave.currentKey()
const sameKey = masterKey !== undefined && slaveKey !== undefined && masterKey.keyId === slaveKey.keyId && Buffer.from(masterKey.key).equals(Buffer.from(slaveKey.key))
const cleanups = results.filter((result) => result.cleanup !== undefined)
const deleted = cleanups.reduce((sum, result) => sum + result.cleanup!.deletedKeyIds.length, 0)
const failedKeys = cleanups.reduce((sum, result) => sum + result.cleanup!.failedKeyIds.length, 0)
const linkStats = [backendLink.stats(), gatewayLink.stats()]
const drops = linkStats.reduce((sum, stats) => sum + Object.values(stats.drops).reduce((a, b) => a + b, 0), 0)
console.log('summary')
console.log(`  rotations   ${results.length} on the backend, ${counts.slaveRotations} on the gateway (the first key included)`)
console.log(`  in production  ${sameKey ? `the same key on both sides (${masterKey!.keyId})` : 'DIFFERENT keys on the two sides'}`)
console.log(`  clients     ${counts.connected} connected, ${counts.refused} refused`)
console.log(`  cleanups    ${cleanups.length} (${counts.slaveCleanups} acknowledged on the gateway): ${deleted} rolled keys deleted, ${failedKeys} failed`)
console.log(`  messages    ${linkStats[0]!.sent + linkStats[1]!.sent} signed datagrams, ${drops} dropped; KME ${kme.stats.keysDelivered} keys delivered, ${kme.stats.keysRetrieved} retrieved`)
if (failure !== undefined) console.error(`volley demo:keysync: ${failure.message}`)

issuer?.close()
master.close()
slave.close()
backendLink.close()
gatewayLink.close()
backendKme.close()
gatewayKme.close()
await server?.close()
await kme.close()
if (interrupted.aborted) process.exitCode = interruptedStatus(interrupted)
else if (failure !== undefined || counts.refused > 0 || !sameKey) process.exitCode = 1
process.exit()
