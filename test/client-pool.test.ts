import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ClientPool, Server, connectTokenFromBase64, generateConnectToken, readConnectToken } from '../src/index.ts'
import { waitFor } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(8)

describe('ClientPool (load generator)', () => {
  it('connects many clients on one engine thread, counts failures, broadcasts, and closes them', async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 150, disconnectIntervalMs: 2, engine: 'dedicated' })
    const { port } = await server.listen()
    let received = 0
    server.on('message', (peer, data) => {
      received++
      peer.send(data)
    })
    const tokens = await Promise.all(
      Array.from({ length: 160 }, (_, i) =>
        generateConnectToken({ protocolId: 5n, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 }),
      ),
    )
    const pool = new ClientPool({ disconnectIntervalMs: 2 })
    const result = await pool.connect(tokens, { concurrency: 40 })
    expect(result).toMatchObject({ connected: 150, failed: 10 })
    expect(pool.stats().failed).toEqual({ ERR_CONNECTION_DENIED: 10 })
    expect(pool.broadcast(new Uint8Array([1, 2, 3]))).toBe(150)
    await waitFor(() => pool.stats().messagesReceived === 150, 5000, 'echoes')
    expect(received).toBe(150)
    expect(pool.stats()).toMatchObject({ clients: 150, connected: 150, ended: {} })
    const closed = pool.close()
    await new Promise((resolve) => setImmediate(resolve)) // the clients are closing
    expect(pool.broadcast(new Uint8Array([4]))).toBe(0) // they send nothing, and it says so (and throws nothing)
    await closed
    await server.close()
  })
})

describe('volley CLI', () => {
  it('prints keys and tokens', () => {
    const run = (...args: string[]): string =>
      execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/volley.ts', ...args], { cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 20_000 }).trim()
    const key = run('key')
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    const token = readConnectToken(connectTokenFromBase64(run('token', '--server', '127.0.0.1:40000', '--key', key, '--protocol-id', '0x99')))
    expect(token.protocolId).toBe(0x99n)
    let failure: { status?: number; stderr?: string } = {}
    try {
      run('serve', '--key', 'nothex')
    } catch (error) {
      failure = error as typeof failure
    }
    expect(failure.status).toBe(2)
    expect(failure.stderr).toMatch(/--address is required/)
  })
})
