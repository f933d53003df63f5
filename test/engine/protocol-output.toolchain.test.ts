// A protocol's outbox is bounded: what a server sends in one update (its keep-alives to every peer after a
// stall, its redundant disconnects to 10,000 peers) goes out in runs of kOutboxDrainAt datagrams, in order,
// instead of growing the outbox to megabytes that it would keep. The outbox alone, driven by a small C++
// program (test/engine/harness/protocol_output_check.cc) built here with ASan and UBSan; over loopback, a
// server closing with 600 peers sends them all their disconnects.
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ClientPool, Server, generateConnectToken, generateKey } from '../../src/index.ts'
import { waitFor } from '../helpers.ts'

const root = join(import.meta.dirname, '../..')

describe("a protocol's outbox", () => {
  it('is sent on every 256 datagrams, in order, and never grows past them', () => {
    const binary = join(mkdtempSync(join(tmpdir(), 'volley-outbox-')), 'check')
    const sources = ['test/engine/harness/protocol_output_check.cc', 'native/sockets/socket_protocol.cc', 'native/sockets/network_simulator.cc', 'native/util/address.cc']
    execFileSync('g++', ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-Inative', ...sources, '-l:libsodium.a', '-o', binary], { cwd: root })
    const result = JSON.parse(execFileSync(binary, { encoding: 'utf8' })) as Record<string, number | boolean>
    // 10,000 datagrams: 39 runs of 256 went out as they filled, 16 wait for the engine's flush.
    expect(result).toEqual({ drains: 39, drained: 9984, left: 16, largestDrain: 256, largestOutbox: 256, inOrder: true })
  }, 60_000)

  it('lets a server closing with 600 peers send each of them its disconnects', async () => {
    const privateKey = await generateKey()
    const protocolId = 0x0b0c5n
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 600 })
    const { port } = await server.listen()
    const pool = new ClientPool({ engine: 'dedicated' })
    try {
      const tokens = await Promise.all(
        Array.from({ length: 600 }, (_, i) =>
          generateConnectToken({ protocolId, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 60, timeoutSeconds: 10 }),
        ),
      )
      // On a loaded machine a few may miss the handshake: more than two runs of 256 are what counts.
      const { connected } = await pool.connect(tokens, { concurrency: 200 })
      expect(connected, JSON.stringify(pool.stats().failed)).toBeGreaterThan(512)
      // A client is connected once the server's keep-alive reached it; the server's JavaScript hears of the
      // connection in its next batch of records.
      await waitFor(() => server.peers.size === connected, 5_000, () => `the server's 'connect' events (${server.peers.size} of ${connected})`)
      await server.close()
      // Every client hears a disconnect (each Update of the closing server sends one to each, in runs of
      // 256), long before its 10 s timeout.
      const deadline = Date.now() + 5_000
      while (pool.stats().connected > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
      expect(pool.stats().ended).toEqual({ disconnected: connected })
    } finally {
      await pool.close()
    }
  }, 60_000)
})
