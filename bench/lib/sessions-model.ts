// What both sides of the sessions benchmark agree on: the devices' model, how a connect token names its
// device, and the Volley settings of the gateway and its controllers.
import type { MashEndpointDefinition } from '../../src/sessions/mash/index.ts'

/** Every feature the controllers follow is on this endpoint. */
export const ENDPOINT = 1

/** The reliable channel MASH runs on (channel 0), and in the pair runs a second one for the bare echo. */
export const MASH_CHANNEL = 0
export const ECHO_CHANNEL = 1

/**
 * A device of the fan-out scenario: `features` features (ids 1…) of `attributes` float attributes (ids 1…)
 * each, on endpoint 1. A controller follows each feature with one subscription.
 */
export function fanOutModel(features: number, attributes: number): MashEndpointDefinition[] {
  return [
    {
      id: ENDPOINT,
      features: Array.from({ length: features }, (_, f) => ({
        id: f + 1,
        attributes: Array.from({ length: attributes }, (_, a) => ({ id: a + 1, type: 'float' as const, value: 0 })),
      })),
    },
  ]
}

/** The pair scenario's device: one feature with the one attribute the controller reads, as a meter's voltage. */
export function pairModel(): MashEndpointDefinition[] {
  return [{ id: ENDPOINT, features: [{ id: 1, attributes: [{ id: 1, type: 'float', value: 230.5 }] }] }]
}

/** The 256 bytes of user data that name device `index`: its index, u32 big-endian, in the first 4. */
export function deviceUserData(index: number): Uint8Array {
  const userData = new Uint8Array(256)
  new DataView(userData.buffer).setUint32(0, index)
  return userData
}

export function deviceIndexOf(userData: Uint8Array): number {
  return new DataView(userData.buffer, userData.byteOffset, userData.byteLength).getUint32(0)
}

/**
 * Volley's options on both sides: reliable channels, and keep-alives and RTT pings every keepAliveMs. At the
 * library's 10 Hz, 10,000 connections would be 100,000 keep-alive packets a second each way, twice the
 * notifications measured; a gateway with many quiet peers lengthens both (docs of pingIntervalMs).
 */
export function volleyOptions(channels: number, keepAliveMs: number): {
  channels: { mode: 'reliable' }[]
  keepAliveIntervalMs: number
  pingIntervalMs: number
} {
  return {
    channels: Array.from({ length: channels }, () => ({ mode: 'reliable' as const })),
    keepAliveIntervalMs: keepAliveMs,
    pingIntervalMs: Math.max(50, keepAliveMs),
  }
}
