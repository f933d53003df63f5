// The values the volley commands take, checked alike whether a flag or serve's config file gives them. Each
// check takes the name to blame (`--max-clients`, or `"maxClients"` of a config file) and how the value reads
// there ('100' for a flag's text, "100" for a JSON string).
import type { ChannelOptions } from '../index.ts'
import { maxClientsLimit } from '../engine/layout.ts'
import { deliveryDefaults } from '../protocol/delivery/config.ts'
import { netcodeDefaults } from '../protocol/netcode/constants.ts'
import { type NumberRange, UsageError, maxTimerSeconds } from './arguments.ts'

/** serve's, load's and token's --protocol-id when none is given. */
export const defaultProtocolId = 0x1234n

// The ranges the library takes (and a few of the CLI's own), checked here so that a mistake names the flag or field.
export const keepAliveRange: NumberRange = { min: 1, max: 60_000 }
export const maxClientsRange: NumberRange = { integer: true, min: 1, max: maxClientsLimit }
export const maxMessageBytesRange: NumberRange = { integer: true, min: 1, max: 1 << 30 }
export const secondsRange: NumberRange = { max: maxTimerSeconds }
/** Worker threads of one serve: each a server with its own sockets, and its own engine thread on the native engine. */
export const workersRange: NumberRange = { integer: true, min: 1, max: 256 }

/** serve's settings where neither a flag nor the config file gives them. */
export const serveDefaults = {
  maxClients: 10_000,
  keepAliveMs: netcodeDefaults.keepAliveIntervalMs,
  maxMessageBytes: deliveryDefaults.maxMessageBytes,
  /** 0: until SIGINT or SIGTERM. */
  seconds: 0,
  /** A status line every 10 s; 0: none. */
  statusIntervalSeconds: 10,
  workers: 1,
} as const

export type ChannelMode = ChannelOptions['mode']
export const channelModes: readonly ChannelMode[] = ['reliable', 'unreliable', 'sequenced']

/** Said when no key is given: where one goes, and how to make one. */
export const keyRequired = '--key is required (64 hex digits; `volley key` makes one), or VOLLEY_KEY in the environment'

/** A private key in hex, from `source` (--key, VOLLEY_KEY, a key file): 64 hex digits, not all zeros. */
export function keyFromHex(hex: string, source: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new UsageError(`${source} must be 64 hex digits`)
  // The library refuses it too, but in the words of its options: say it in the CLI's.
  if (/^0+$/.test(hex)) throw new UsageError(`${source} is all zeros, which is no secret (\`volley key\` makes a random one)`)
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

/** An integer from 0 to 2^64 - 1, in decimal or 0x hex: a protocol id, a client id. */
export function uint64(text: string, name: string, shown: string): bigint {
  // Decimal or 0x hex, nothing else: BigInt() alone took '' (as 0) and ' 0x10 '.
  if (/^(0x[0-9a-f]+|\d+)$/i.test(text)) {
    const value = BigInt(text)
    if (value < 1n << 64n) return value
  }
  throw new UsageError(`${name} must be an integer from 0 to 2^64 - 1 (decimal or 0x hex), not ${shown}`)
}

/** The channels a list of modes names: 1 to 255 of them, each reliable, unreliable or sequenced. */
export function channelsOf(modes: readonly ChannelMode[], name: string): ChannelOptions[] {
  if (modes.length === 0 || modes.length > 255) throw new UsageError(`${name} takes 1 to 255 modes`)
  return modes.map((mode) => ({ mode }))
}

export function isChannelMode(value: unknown): value is ChannelMode {
  return channelModes.includes(value as ChannelMode)
}
