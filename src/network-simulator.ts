// The network simulator option of Server and Client (native/network_simulator.h): what the socket sends
// is lost, delayed, duplicated, reordered and held to a bandwidth before it reaches the wire. For tests
// and benchmarks; with a seed, runs repeat.
import { randomInt } from 'node:crypto'
import { VolleyRangeError, describe } from './errors.ts'
import { checkOptions } from './options.ts'

export interface NetworkSimulatorOptions {
  /** Probability (0..1) that a datagram is dropped. */
  loss?: number
  /** One-way delay added to every datagram, ms. */
  latencyMs?: number
  /** Uniform ± variation of that delay, ms, drawn for each datagram: datagrams sent close together overtake each other. */
  jitterMs?: number
  /** Probability that a datagram is sent twice. */
  duplicate?: number
  /** Probability that a datagram is held back one more latency, so that later ones overtake it. */
  reorder?: number
  /** The link's rate; datagrams wait for it in order. Unlimited when absent. */
  bandwidthBytesPerSec?: number
  /** Seeds the random choices: the same seed and traffic give the same run. Random when absent. */
  seed?: number
  /**
   * The clock this socket's delivery layer (channels) reads runs this far ahead of the true one, ms
   * (0 to 86,400,000): a peer with a badly set clock, for tests of clock synchronisation.
   */
  clockOffsetMs?: number
  /** ...and gains this many µs per second on it (-1,000 to 1,000 parts per million). */
  clockDriftPpm?: number
}

export interface NetworkSimulatorOption {
  /** A simulated network for what this socket sends (tests, benchmarks). */
  networkSimulator?: NetworkSimulatorOptions
}

/** What the native protocol options take. */
export interface NativeNetworkSimulator {
  loss: number
  duplicate: number
  reorder: number
  latencyUs: number
  jitterUs: number
  bandwidthBytesPerSec: number
  seed: number
  clockOffsetUs: number
  clockDriftPpm: number
}

const simulatorOptionNames = new Set(['loss', 'latencyMs', 'jitterMs', 'duplicate', 'reorder', 'bandwidthBytesPerSec', 'seed', 'clockOffsetMs', 'clockDriftPpm'])

export function networkSimulatorFields(options: NetworkSimulatorOptions | undefined): { networkSimulator?: NativeNetworkSimulator } {
  if (options === undefined) return {}
  checkOptions('"networkSimulator" option', options, simulatorOptionNames)
  const probability = (name: 'loss' | 'duplicate' | 'reorder'): number => ranged(name, options[name], 0, 1, false)
  return {
    networkSimulator: {
      loss: probability('loss'),
      duplicate: probability('duplicate'),
      reorder: probability('reorder'),
      latencyUs: Math.round(ranged('latencyMs', options.latencyMs, 0, 60_000, false) * 1000),
      jitterUs: Math.round(ranged('jitterMs', options.jitterMs, 0, 60_000, false) * 1000),
      bandwidthBytesPerSec: ranged('bandwidthBytesPerSec', options.bandwidthBytesPerSec, 1, 1e12, true),
      // Absent: one drawn here, so that every seed given, 0 included, repeats its run.
      seed: options.seed === undefined ? randomInt(2 ** 47) : ranged('seed', options.seed, 0, Number.MAX_SAFE_INTEGER, true),
      clockOffsetUs: Math.round(ranged('clockOffsetMs', options.clockOffsetMs, 0, 86_400_000, false) * 1000),
      clockDriftPpm: ranged('clockDriftPpm', options.clockDriftPpm, -1000, 1000, false),
    },
  }
}

function ranged(name: string, value: unknown, min: number, max: number, integer: boolean): number {
  if (value === undefined) return 0
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `networkSimulator.${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}. Received ${describe(value)}`)
  }
  return value
}
