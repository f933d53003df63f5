// What a transport emits, for the transport tests.
import type { SessionTransport } from '../../src/sessions/transport.ts'

/** Everything a transport emits, messages copied (they are views valid during the callback). */
export function watch(transport: SessionTransport) {
  const seen = { messages: [] as Uint8Array[], closes: [] as (Error | undefined)[], drains: 0 }
  transport.on('message', (data) => seen.messages.push(data.slice()))
  transport.on('close', (error) => seen.closes.push(error))
  transport.on('drain', () => seen.drains++)
  return seen
}
