// What the diagnostics tests share: a Server and Clients on loopback, and a channel's messages while a test
// runs (subscribed by name, as an application subscribes; unsubscribed whatever happens).
import diagnosticsChannel from 'node:diagnostics_channel'
import { Client, type ClientOptions, Server, type ServerOptions, generateConnectToken } from '../../src/index.ts'

export const privateKey = new Uint8Array(32).fill(63)
export const protocolId = 0x63n
/** Redundant disconnects 5 ms apart, and buffers the kernel grants without a cap (no process warning). */
export const fast = { disconnectIntervalMs: 5, recvBufferSize: 64 << 10, sendBufferSize: 64 << 10 } as const

export async function startServer(options: Partial<ServerOptions> = {}): Promise<{ server: Server; address: string }> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 8, ...fast, ...options })
  const { port } = await server.listen()
  return { server, address: `127.0.0.1:${port}` }
}

export function token(address: string, clientId: bigint, timeoutSeconds = 5): Promise<Uint8Array> {
  return generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [address], expireSeconds: 30, timeoutSeconds })
}

export async function connectClient(address: string, clientId: bigint, options: ClientOptions = {}, timeoutSeconds = 5): Promise<Client> {
  const client = new Client({ ...fast, ...options })
  await client.connect(await token(address, clientId, timeoutSeconds))
  return client
}

/** Runs `body` with the messages published on `name` gathered in an array; unsubscribes after. */
export async function whileSubscribed<T>(name: string, body: (messages: T[]) => Promise<void>): Promise<void> {
  const messages: T[] = []
  const onMessage = (message: unknown): void => {
    messages.push(message as T)
  }
  diagnosticsChannel.subscribe(name, onMessage)
  try {
    await body(messages)
  } finally {
    diagnosticsChannel.unsubscribe(name, onMessage)
  }
}
