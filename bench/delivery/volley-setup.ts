// What both ends of a volley delivery benchmark share: the key their tokens are made with (a benchmark's
// fixed key, not a deployment's), the protocol id and the channel options.
import { generateConnectToken } from '../../src/index.ts'

export const privateKey = new Uint8Array(32).fill(0x42)
export const protocolId = 0xbe7cn
export const channelOptions = {
  channels: [{ mode: 'reliable' as const }, { mode: 'unreliable' as const }],
  maxMessageBytes: 1 << 20,
  sendQueueBytes: 16 << 20,
  engine: 'dedicated' as const,
}

/** A connect token for the benchmark server on 127.0.0.1:port. */
export function benchToken(port: number | string, clientId = 1n): Promise<Uint8Array> {
  return generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 600, timeoutSeconds: 10 })
}
