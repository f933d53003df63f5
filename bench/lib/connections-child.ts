// The child side of the connections benchmark (bench/connections/*.ts): a command loop on stdin and
// "marks" on stdout. A mark is a snapshot of the process: its CPU time since it started (all threads,
// getrusage), its memory, its message counters and whatever the child adds. The runner takes marks at
// the edges of each phase and subtracts them, so that every figure is measured by the process itself.
// Marks travel as the bench's 'result' messages (bench/lib/protocol.ts), with the mark in `details`.
import { readFileSync, readdirSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { emit } from './protocol.ts'

export interface MarkCounters {
  /** Messages (payloads or datagrams) the process has handled so far, and their bytes. */
  packets: number
  bytes: number
}

const gc = (globalThis as { gc?: () => void }).gc

/**
 * Emits one mark. CPU time is read first, then (when asked and the process runs with --expose-gc) a
 * full garbage collection runs before memory is read: the collection's own CPU time falls after the
 * mark, and the memory figures are live data rather than garbage that happens not to be collected yet.
 */
export function emitMark(label: string, counters: MarkCounters, extra: Record<string, unknown>, collect = false): void {
  const usage = process.resourceUsage()
  const seconds = performance.now() / 1000
  const memory = memoryNow(collect)
  emit({
    type: 'result',
    packets: counters.packets,
    bytes: counters.bytes,
    seconds,
    cpuUserUs: usage.userCPUTime,
    cpuSystemUs: usage.systemCPUTime,
    details: {
      label,
      collected: collect && gc !== undefined,
      memory,
      maxRssKiB: usage.maxRSS,
      contextSwitches: { voluntary: usage.voluntaryContextSwitches, involuntary: usage.involuntaryContextSwitches },
      pageFaults: { minor: usage.minorPageFault, major: usage.majorPageFault },
      threads: threadTimes(),
      ...extra,
    },
  })
}

/** The process's memory, after a full garbage collection when asked (and run with --expose-gc). */
export function memoryNow(collect: boolean): { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number } {
  if (collect && gc !== undefined) gc()
  const memory = process.memoryUsage()
  return { rss: memory.rss, heapTotal: memory.heapTotal, heapUsed: memory.heapUsed, external: memory.external, arrayBuffers: memory.arrayBuffers }
}

/**
 * CPU time of the JS thread (the main thread) and of all other threads together (the engine's I/O
 * thread, V8's and libuv's helpers), µs, from /proc/self/task/<tid>/schedstat (Linux; null elsewhere).
 * Threads that have ended are not counted, so only differences over a window of live threads mean much.
 */
function threadTimes(): { mainUs: number; otherUs: number } | null {
  try {
    let mainUs = 0
    let otherUs = 0
    for (const tid of readdirSync('/proc/self/task')) {
      let text: string
      try {
        text = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8')
      } catch {
        continue // the thread has just ended
      }
      const microseconds = Number(text.split(' ')[0]) / 1000
      if (!Number.isFinite(microseconds)) continue
      if (Number(tid) === process.pid) mainUs += microseconds
      else otherUs += microseconds
    }
    return { mainUs, otherUs }
  } catch {
    return null
  }
}

export type CommandHandler = (args: string[]) => void | Promise<void>

/**
 * Runs commands from stdin, one line each ("<name> <args...>"), one at a time in order. A failing
 * command reports an 'error' message and ends the process; so does a closed stdin (the runner is gone:
 * `stop` runs first when there is one) and the end of the process's lifetime, however busy it is.
 */
export function serveCommands(handlers: Record<string, CommandHandler>, maxLifetimeMs: number): void {
  setTimeout(() => {
    process.stderr.write(`lifetime of ${maxLifetimeMs} ms exceeded: exiting\n`)
    process.exit(3)
  }, maxLifetimeMs).unref()
  let queue: Promise<void> = Promise.resolve()
  const run = (line: string): void => {
    const [name = '', ...args] = line.trim().split(/\s+/)
    if (name === '') return
    queue = queue.then(async () => {
      const handler = handlers[name]
      if (handler === undefined) throw new Error(`unknown command '${name}'`)
      await handler(args)
    })
    queue.catch((error: unknown) => {
      const text = error instanceof Error ? error.message : String(error)
      emit({ type: 'error', message: `${name}: ${text}` })
      process.exit(1)
    })
  }
  const commands = createInterface({ input: process.stdin })
  commands.on('line', run)
  commands.on('close', () => {
    if (handlers.stop !== undefined) run('stop')
    // Whatever stop does, do not linger without a parent.
    setTimeout(() => process.exit(0), 10_000).unref()
  })
}

/** A required numeric command-line value. */
export function numberArg(name: string, text: string | undefined, min: number, max: number): number {
  const value = Number(text)
  if (text === undefined || text === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new Error(`${name} must be a number from ${min} to ${max}, got ${String(text)}`)
  }
  return value
}
