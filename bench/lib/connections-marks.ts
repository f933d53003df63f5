// The runner side of marks (see connections-child.ts): a child's snapshot, parsed from its 'result'
// message, and the differences between two snapshots of the same process.
import { join } from 'node:path'
import { RECV_BUFFER_SIZE } from './constants.ts'
import { BenchChild } from './processes.ts'
import { type ResultMessage, isRecord } from './protocol.ts'

export interface Memory {
  rss: number
  heapTotal: number
  heapUsed: number
  external: number
  arrayBuffers: number
}

export interface Mark {
  label: string
  /** The child's own clock (performance.now() in seconds): only differences of one child mean anything. */
  seconds: number
  /** CPU time of the whole child process (user + system, all threads) since it started. */
  cpuUs: number
  userUs: number
  systemUs: number
  packets: number
  bytes: number
  memory: Memory | null
  /** Whether a full garbage collection ran right before the memory was read. */
  collected: boolean
  details: Record<string, unknown>
}

export function toMark(message: ResultMessage): Mark {
  const { details } = message
  return {
    label: typeof details.label === 'string' ? details.label : '',
    seconds: message.seconds,
    cpuUs: message.cpuUserUs + message.cpuSystemUs,
    userUs: message.cpuUserUs,
    systemUs: message.cpuSystemUs,
    packets: message.packets,
    bytes: message.bytes,
    memory: memoryOf(details.memory),
    collected: details.collected === true,
    details,
  }
}

function memoryOf(value: unknown): Memory | null {
  if (!isRecord(value)) return null
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = value
  if (typeof rss !== 'number' || typeof heapTotal !== 'number' || typeof heapUsed !== 'number' || typeof external !== 'number' || typeof arrayBuffers !== 'number') {
    return null
  }
  return { rss, heapTotal, heapUsed, external, arrayBuffers }
}

/** A number somewhere inside a mark's details (NaN when it is not there), e.g. at(mark, 'stats', 'packets', 'in'). */
export function at(mark: Mark, ...keys: string[]): number {
  let value: unknown = mark.details
  for (const key of keys) {
    if (!isRecord(value)) return Number.NaN
    value = value[key]
  }
  return typeof value === 'number' ? value : Number.NaN
}

/** A record of counts inside a mark's details ({} when it is not there), e.g. counts(mark, 'pool', 'ended'). */
export function counts(mark: Mark, ...keys: string[]): Record<string, number> {
  let value: unknown = mark.details
  for (const key of keys) {
    if (!isRecord(value)) return {}
    value = value[key]
  }
  const out: Record<string, number> = {}
  if (isRecord(value)) for (const [key, count] of Object.entries(value)) if (typeof count === 'number') out[key] = count
  return out
}

/** b − a for every key of either (keys whose difference is 0 are left out). */
export function countsBetween(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const difference = (b[key] ?? 0) - (a[key] ?? 0)
    if (difference !== 0) out[key] = difference
  }
  return out
}

export function sum(values: Record<string, number>): number {
  return Object.values(values).reduce((total, value) => total + value, 0)
}

export interface Window {
  seconds: number
  cpuUs: number
  /** CPU time ÷ wall time: 1 = one core fully busy. */
  cpuShare: number
  packets: number
  bytes: number
  /** CPU time of the JS (main) thread and of the other threads (volley: mostly the engine's I/O thread); NaN off Linux. */
  jsThreadUs: number
  otherThreadsUs: number
}

export function between(a: Mark, b: Mark): Window {
  const seconds = b.seconds - a.seconds
  const cpuUs = b.cpuUs - a.cpuUs
  return {
    seconds,
    cpuUs,
    cpuShare: seconds > 0 ? cpuUs / 1e6 / seconds : Number.NaN,
    packets: b.packets - a.packets,
    bytes: b.bytes - a.bytes,
    jsThreadUs: at(b, 'threads', 'mainUs') - at(a, 'threads', 'mainUs'),
    otherThreadsUs: at(b, 'threads', 'otherUs') - at(a, 'threads', 'otherUs'),
  }
}

/** Asks a child (connections-child.ts) for a mark and waits for it. */
export async function takeMark(child: BenchChild, label: string, options: { collect?: boolean; timeoutMs?: number } = {}): Promise<Mark> {
  child.tell(`mark ${label}${options.collect === true ? ' gc' : ''}`)
  return expectMark(child, label, options.timeoutMs ?? 30_000)
}

/** The child's next mark, which must carry the given label (marks answer commands in order). */
export async function expectMark(child: BenchChild, label: string, timeoutMs: number): Promise<Mark> {
  const mark = toMark(await child.expect('result', timeoutMs))
  if (mark.label !== label) throw new Error(`${child.name}: expected the mark '${label}', got '${mark.label}'`)
  return mark
}

/**
 * Marks a receiver until its message count stops moving (two marks pollMs apart with the same count),
 * for at most maxMs; returns the first mark of the still pair: the end of its receiving.
 */
export async function drained(child: BenchChild, pollMs = 50, maxMs = 5_000): Promise<Mark> {
  const deadline = Date.now() + maxMs
  let last = await takeMark(child, 'drain')
  while (Date.now() < deadline) {
    await sleep(pollMs)
    const next = await takeMark(child, 'drain')
    if (next.packets === last.packets) return last
    last = next
  }
  return last
}

export function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds))
}

/** The children of the connections benchmark, pinned: the measured process on CPU 1, the load on CPU 0. */
export interface ConnectionsLauncher {
  cpus: { tested: number; counterpart: number } | null
  /** engine 'fallback': the server on volley's fallback engine (VOLLEY_ENGINE=fallback). */
  server(key: string, protocolId: string, maxClients: number, keepAliveMs: number, maxMs: number, engine?: 'native' | 'fallback'): BenchChild
  /** nativeLoad: the C++ handshake load (bench/native/handshake-load.cc) that connects in place of the ClientPool. */
  load(port: number, key: string, protocolId: string, clients: number, concurrency: number, timeoutSeconds: number, keepAliveMs: number, maxMs: number, nativeLoad?: string): BenchChild
  dgramReceiver(maxMs: number): BenchChild
  floorReceiver(maxMs: number): BenchChild
  pacedSender(port: number, size: number, rate: number, milliseconds: number, sockets: number, tickUs: number): BenchChild
}

export function connectionsLauncher(root: string, tools: { pacedSender: string; floorReceiver: string }, pinned: boolean): ConnectionsLauncher {
  const cpu = (side: 'tested' | 'counterpart'): number | undefined => (pinned ? (side === 'tested' ? 1 : 0) : undefined)
  // `node --import tsx <file>`: one process, no tsx wrapper process to pin or kill.
  // Each child chooses volley's engine as VOLLEY_ENGINE says: the native one unless told otherwise here.
  const node = (name: string, file: string, side: 'tested' | 'counterpart', args: readonly string[], flags: readonly string[] = [], engine: 'native' | 'fallback' = 'native'): BenchChild =>
    new BenchChild({
      name,
      command: process.execPath,
      args: [...flags, '--import', 'tsx', join('bench', 'connections', file), ...args],
      cpu: cpu(side),
      cwd: root,
      env: { VOLLEY_ENGINE: engine },
    })
  return {
    cpus: pinned ? { tested: 1, counterpart: 0 } : null,
    server: (key, protocolId, maxClients, keepAliveMs, maxMs, engine = 'native') =>
      node(
        engine === 'fallback' ? 'volley server (fallback engine)' : 'volley server',
        'server.ts',
        'tested',
        ['--key', key, '--protocol-id', protocolId, '--max-clients', String(maxClients), '--keep-alive-ms', String(keepAliveMs), '--max-ms', String(maxMs)],
        ['--expose-gc'],
        engine,
      ),
    load: (port, key, protocolId, clients, concurrency, timeoutSeconds, keepAliveMs, maxMs, nativeLoad) =>
      node('volley load', 'load.ts', 'counterpart', [
        '--server',
        `127.0.0.1:${port}`,
        '--key',
        key,
        '--protocol-id',
        protocolId,
        '--clients',
        String(clients),
        '--concurrency',
        String(concurrency),
        '--timeout',
        String(timeoutSeconds),
        '--keep-alive-ms',
        String(keepAliveMs),
        '--max-ms',
        String(maxMs),
        ...(nativeLoad === undefined ? [] : ['--native-load', nativeLoad]),
      ]),
    dgramReceiver: (maxMs) => node('node:dgram receiver', 'dgram-receiver.ts', 'tested', ['--max-ms', String(maxMs)]),
    floorReceiver: (maxMs) =>
      new BenchChild({ name: 'C floor receiver', command: tools.floorReceiver, args: [String(maxMs), String(RECV_BUFFER_SIZE)], cpu: cpu('tested'), cwd: root }),
    pacedSender: (port, size, rate, milliseconds, sockets, tickUs) =>
      new BenchChild({
        name: 'C paced sender',
        command: tools.pacedSender,
        args: [String(port), String(size), String(rate), String(Math.round(milliseconds)), String(sockets), String(tickUs)],
        cpu: cpu('counterpart'),
        cwd: root,
      }),
  }
}
