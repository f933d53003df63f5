// The ping benchmarks' round trip, for a volley client and for a node:dgram socket, and the loops that
// warm up and time them (bench/delivery/volley-side.ts, dgram-ping.ts, steady-ping.ts).
import type { Socket } from 'node:dgram'
import type { Client } from '../../src/index.ts'

export type RoundTrip = () => Promise<void>

/** The message every ping benchmark sends: 64 bytes. */
export const pingMessage = new Uint8Array(64).fill(1)

/** Sends the message on channel 0; resolves with the next message back (the server's echo). */
export function volleyRoundTrip(client: Client): RoundTrip {
  return () => {
    const echoed = new Promise<void>((resolve) => client.once('message', () => resolve()))
    client.send(pingMessage, { channel: 0 })
    return echoed
  }
}

/** Sends the message to 127.0.0.1:port; resolves with the next datagram back (the echo). */
export function dgramRoundTrip(socket: Socket, port: number): RoundTrip {
  return () => {
    const echoed = new Promise<void>((resolve) => socket.once('message', () => resolve()))
    socket.send(pingMessage, port, '127.0.0.1')
    return echoed
  }
}

/** `count` round trips one after the other, unmeasured (V8 compiles both sides' code meanwhile). */
export async function warmUp(roundTrip: RoundTrip, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await roundTrip()
}

/** `count` round trips one after the other; each one's time, µs. */
export async function timeRoundTrips(roundTrip: RoundTrip, count: number): Promise<number[]> {
  const rtts: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint()
    await roundTrip()
    rtts.push(Number(process.hrtime.bigint() - t0) / 1000)
  }
  return rtts
}
