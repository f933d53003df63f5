// What the results depend on: the machine, the kernel, node, the libraries; and whether taskset can pin.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'

export interface SystemInfo {
  date: string
  node: string
  v8: string
  libuv: string
  cpuModel: string
  cpus: number
  kernel: string
  platform: string
  rmemMax: number | null
  wmemMax: number | null
  taskset: boolean
  volley: { version: string; addon: { path: string; sourceHash: string } | null }
  udxNative: string | null
}

export function systemInfo(root: string): SystemInfo {
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    libuv: process.versions.uv ?? '',
    cpuModel: cpuModel(),
    cpus: os.availableParallelism(),
    kernel: os.release(),
    platform: `${process.platform}-${process.arch}`,
    rmemMax: readNumber('/proc/sys/net/core/rmem_max'),
    wmemMax: readNumber('/proc/sys/net/core/wmem_max'),
    taskset: canPin(),
    volley: { version: packageVersion(`${root}/package.json`) ?? '?', addon: volleyNative(root) },
    udxNative: packageVersion(`${root}/node_modules/udx-native/package.json`),
  }
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith('model name'))
    if (line !== undefined) return line.slice(line.indexOf(':') + 1).trim()
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown'
}

function readNumber(path: string): number | null {
  try {
    const value = Number(readFileSync(path, 'utf8').trim())
    return Number.isFinite(value) ? value : null
  } catch {
    return null
  }
}

function packageVersion(path: string): string | null {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'))
    if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string') return parsed.version
  } catch {
    // not installed
  }
  return null
}

/** taskset exists and may pin to CPUs 0 and 1 (the machine needs two CPUs for the split). */
function canPin(): boolean {
  if (os.availableParallelism() < 2) return false
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    execFileSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Which build of volley's addon the receivers load, asked of a child so that the runner loads no addon. */
export function volleyNative(root: string): { path: string; sourceHash: string } | null {
  try {
    const output = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        "import('./src/index.ts').then(({ nativeInfo }) => { const { path, sourceHash } = nativeInfo(); console.log(JSON.stringify({ path, sourceHash })) })",
      ],
      { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 30_000 },
    )
    const parsed: unknown = JSON.parse(output.trim())
    if (typeof parsed === 'object' && parsed !== null && 'path' in parsed && 'sourceHash' in parsed) {
      return { path: String(parsed.path), sourceHash: String(parsed.sourceHash) }
    }
  } catch {
    // reported as null: the receivers will say what is wrong
  }
  return null
}

/** The kernel's UDP counters (/proc/net/snmp), for drops the receivers cannot see themselves. */
export interface UdpCounters {
  InDatagrams: number
  RcvbufErrors: number
  InErrors: number
  SndbufErrors: number
  NoPorts: number
}

export function readUdpCounters(): UdpCounters | null {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('Udp: '))
    const [names, values] = lines.map((line) => line.split(/\s+/).slice(1))
    if (names === undefined || values === undefined) return null
    const get = (name: string): number => Number(values[names.indexOf(name)] ?? Number.NaN)
    return {
      InDatagrams: get('InDatagrams'),
      RcvbufErrors: get('RcvbufErrors'),
      InErrors: get('InErrors'),
      SndbufErrors: get('SndbufErrors'),
      NoPorts: get('NoPorts'),
    }
  } catch {
    return null
  }
}

export function diffUdpCounters(before: UdpCounters | null, after: UdpCounters | null): UdpCounters | null {
  if (before === null || after === null) return null
  return {
    InDatagrams: after.InDatagrams - before.InDatagrams,
    RcvbufErrors: after.RcvbufErrors - before.RcvbufErrors,
    InErrors: after.InErrors - before.InErrors,
    SndbufErrors: after.SndbufErrors - before.SndbufErrors,
    NoPorts: after.NoPorts - before.NoPorts,
  }
}

/** Time each CPU spent per state over a run (/proc/stat), in seconds: shows steal (a noisy VM) and
 * softirq work that the kernel does not charge to any process (on loopback, delivery into the
 * receiving socket runs as softirq on the sender's core). */
export interface CoreTimes {
  user: number
  system: number
  softirq: number
  irq: number
  steal: number
  idle: number
}

const clockTicks = ((): number => {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isFinite(value) && value > 0 ? value : 100
  } catch {
    return 100
  }
})()

export function readCoreTimes(): CoreTimes[] | null {
  try {
    const cores: CoreTimes[] = []
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const match = /^cpu(\d+) (.*)$/.exec(line)
      if (match === null) continue
      const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = (match[2] ?? '')
        .trim()
        .split(/\s+/)
        .map((field) => Number(field) / clockTicks)
      cores[Number(match[1])] = { user: user + nice, system, softirq, irq, steal, idle: idle + iowait }
    }
    return cores
  } catch {
    return null
  }
}

export function diffCoreTimes(before: CoreTimes[] | null, after: CoreTimes[] | null): CoreTimes[] | null {
  if (before === null || after === null) return null
  const round = (value: number): number => Math.round(value * 1000) / 1000
  return after.map((end, cpu) => {
    const start = before[cpu] ?? end
    return {
      user: round(end.user - start.user),
      system: round(end.system - start.system),
      softirq: round(end.softirq - start.softirq),
      irq: round(end.irq - start.irq),
      steal: round(end.steal - start.steal),
      idle: round(end.idle - start.idle),
    }
  })
}

/**
 * CPU time that processes other than the bench's used on each pinned core during a run: the core's busy
 * time (user + system + irq + softirq, /proc/stat, 10 ms ticks) minus the CPU time of the bench's own
 * process on it. A shared machine runs other work at times; a run where this is large is disturbed.
 */
export interface Disturbance {
  testedCpuSeconds: number
  counterpartCpuSeconds: number
  stealSeconds: number
}

export function disturbance(
  cores: CoreTimes[] | null,
  cpus: { tested: number; counterpart: number } | null,
  testedProcessSeconds: number,
  counterpartProcessSeconds: number,
): Disturbance | null {
  const tested = cpus ? cores?.[cpus.tested] : undefined
  const counterpart = cpus ? cores?.[cpus.counterpart] : undefined
  if (tested === undefined || counterpart === undefined) return null
  const busy = (core: CoreTimes): number => core.user + core.system + core.irq + core.softirq
  const round = (value: number): number => Math.round(Math.max(0, value) * 1000) / 1000
  return {
    testedCpuSeconds: round(busy(tested) - testedProcessSeconds),
    counterpartCpuSeconds: round(busy(counterpart) - counterpartProcessSeconds),
    stealSeconds: round(tested.steal + counterpart.steal),
  }
}

/** A run counts as disturbed when other work took more than this share of its window on either core
 * (or 0.1 s, whichever is more: /proc/stat counts in 10 ms ticks). */
export function isDisturbed(value: Disturbance | null, windowSeconds: number): boolean {
  if (value === null) return false
  const limit = Math.max(0.1, 0.1 * windowSeconds)
  return value.testedCpuSeconds > limit || value.counterpartCpuSeconds > limit || value.stealSeconds > limit
}
