// The network simulator option of Server and Client (native/sockets/network_simulator.h): what the socket sends
// is lost, delayed, duplicated, reordered and held to a bandwidth before it reaches the wire. For tests
// and benchmarks; with a seed, runs repeat.
import { randomInt } from 'node:crypto'
import { VolleyRangeError, VolleyTypeError } from '../util/errors.ts'
import { checkOptions, integerOption, numberOption } from '../util/options.ts'
import { ProtocolStat } from '../engine/layout.ts'
import type { NativeNetworkSimulator } from '../engine/native/addon.ts'

/**
 * A simulated network between a socket and the wire, for tests and benchmarks: what the socket sends is lost,
 * delayed, duplicated, reordered or held to a bandwidth. With a seed, runs repeat.
 */
export interface NetworkSimulatorOptions {
  /** Probability (0..1) that a datagram is dropped. */
  loss?: number | undefined
  /** One-way delay added to every datagram, ms. */
  latencyMs?: number | undefined
  /**
   * Uniform ± variation of that delay, ms, drawn for each datagram: datagrams sent close together overtake
   * each other. A delay that would fall below 0 is 0 (jitter above the latency piles datagrams up there).
   */
  jitterMs?: number | undefined
  /** Probability that a datagram is sent twice. */
  duplicate?: number | undefined
  /** Probability that a datagram is held back a further latency + jitter + 1 ms, so that later ones overtake it. */
  reorder?: number | undefined
  /**
   * The link's rate, counting 28 bytes of IP and UDP headers per datagram (and each duplicate); datagrams
   * wait for it in order. Unlimited when absent.
   */
  bandwidthBytesPerSec?: number | undefined
  /**
   * The link's queue, bytes (default: one second of bandwidthBytesPerSec): a datagram that would wait
   * behind more is dropped, as a router's full queue drops it. Needs bandwidthBytesPerSec.
   */
  queueBytes?: number | undefined
  /** Seeds the random choices: the same seed and traffic give the same run. Random when absent. */
  seed?: number | undefined
  /**
   * The clock this socket's delivery layer (channels) reads runs this far ahead of the true one, ms
   * (0 to 86,400,000): a peer with a badly set clock, for tests of clock synchronisation.
   */
  clockOffsetMs?: number | undefined
  /** How fast that clock drifts: it gains this many µs per second on the true one (-1,000 to 1,000 ppm). */
  clockDriftPpm?: number | undefined
}

/** What a socket's network simulator did to its datagrams (null without one). */
export interface SimulatedNetworkStats {
  /** The seed of its random choices: the one given, or the one drawn (give it back to repeat a run). */
  seed: number
  /** Dropped as `loss` says. */
  lost: number
  /** Sent twice, as `duplicate` says. */
  duplicated: number
  /** Held back, as `reorder` says (each copy counts). */
  reordered: number
  /** Dropped because the link's queue (queueBytes) or the simulator (65,536 datagrams) was full. */
  overflowed: number
}

export interface NetworkSimulatorOption {
  /** A simulated network for what this socket sends (tests, benchmarks). */
  networkSimulator?: NetworkSimulatorOptions | undefined
}

const simulatorOptionNames = new Set(['loss', 'latencyMs', 'jitterMs', 'duplicate', 'reorder', 'bandwidthBytesPerSec', 'queueBytes', 'seed', 'clockOffsetMs', 'clockDriftPpm'])

/** The longest a full simulated queue may hold a datagram, s. */
const maxQueueSeconds = 60

/** The queueBytes option, checked; 0 (one second of the bandwidth) when absent. */
function queueBytes(options: NetworkSimulatorOptions): number {
  const bytes = integerOption('networkSimulator.queueBytes', options.queueBytes, 0, 1, 1e12)
  if (options.queueBytes !== undefined && options.bandwidthBytesPerSec === undefined) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'The "networkSimulator.queueBytes" option needs the "networkSimulator.bandwidthBytesPerSec" option (the queue waits for the link)')
  }
  // A full queue holds a datagram queueBytes / bandwidth seconds: at most a minute, as latencyMs (a close()
  // waits for what the simulator holds: 3 MB at 1 byte a second held it, and the process, for 35 days).
  const rate = options.bandwidthBytesPerSec
  if (options.queueBytes !== undefined && typeof rate === 'number' && rate > 0 && bytes / rate > maxQueueSeconds) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "networkSimulator.queueBytes" option must hold at most ${maxQueueSeconds} s of the bandwidth (${rate * maxQueueSeconds} bytes at ${rate} bytes a second). Received ${bytes}`)
  }
  return bytes
}

export function networkSimulatorFields(options: NetworkSimulatorOptions | undefined): { networkSimulator?: NativeNetworkSimulator } {
  if (options === undefined) return {}
  checkOptions('"networkSimulator" option', options, simulatorOptionNames)
  // Absent: 0 (no loss, no latency, no bandwidth limit, ...).
  const number = (name: keyof NetworkSimulatorOptions, min: number, max: number): number => numberOption(`networkSimulator.${name}`, options[name], 0, min, max)
  const integer = (name: keyof NetworkSimulatorOptions, min: number, max: number): number => integerOption(`networkSimulator.${name}`, options[name], 0, min, max)
  const probability = (name: 'loss' | 'duplicate' | 'reorder'): number => number(name, 0, 1)
  return {
    networkSimulator: {
      loss: probability('loss'),
      duplicate: probability('duplicate'),
      reorder: probability('reorder'),
      latencyUs: Math.round(number('latencyMs', 0, 60_000) * 1000),
      jitterUs: Math.round(number('jitterMs', 0, 60_000) * 1000),
      bandwidthBytesPerSec: integer('bandwidthBytesPerSec', 1, 1e12),
      queueBytes: queueBytes(options),
      // Absent: one drawn here, so that every seed given, 0 included, repeats its run.
      seed: options.seed === undefined ? randomInt(2 ** 47) : integer('seed', 0, Number.MAX_SAFE_INTEGER),
      clockOffsetUs: Math.round(number('clockOffsetMs', 0, 86_400_000) * 1000),
      clockDriftPpm: number('clockDriftPpm', -1000, 1000),
    },
  }
}

/** The network simulator's counters among readProtocolStats' (null when the socket has none). */
export function simulatedNetworkStats(c: Float64Array, seed: number | undefined): SimulatedNetworkStats | null {
  if (seed === undefined) return null
  const at = ProtocolStat.simulatorLost
  return { seed, lost: c[at]!, duplicated: c[at + 1]!, reordered: c[at + 2]!, overflowed: c[at + 3]! }
}
