// Command lines of the volley CLI and the demos: a mistake is one line and where to find the usage, exit
// status 2, never a stack trace.
import { constants } from 'node:os'
import { type ParseArgsConfig, parseArgs } from 'node:util'

/** A mistake in the command line. */
export class UsageError extends Error {}

/**
 * parseArgs, its mistakes as UsageErrors. flagsFor: of a command line with commands, the flags the one
 * named takes (from the positionals), so that an unknown flag's "did you mean" names one of them.
 */
export function parseCommandLine<T extends ParseArgsConfig>(
  config: T,
  flagsFor?: (positionals: string[]) => readonly string[] | undefined,
): ReturnType<typeof parseArgs<T>> {
  const args = joinNegativeValues(config.args ?? process.argv.slice(2), config.options ?? {})
  let parsed: ReturnType<typeof parseArgs<T>> & { tokens?: readonly { kind: string; name?: string }[] }
  try {
    parsed = parseArgs({ ...config, args, tokens: true }) as typeof parsed
  } catch (error) {
    const unknown = /^Unknown option '([^']+)'/.exec((error as Error).message)?.[1]
    // parseArgs's own text goes on about positionals, which no command here takes.
    if (unknown !== undefined) {
      const known = flagsFor?.(parseArgs({ ...config, args, strict: false }).positionals) ?? Object.keys(config.options ?? {})
      throw new UsageError(unknownFlag(unknown, known))
    }
    // "--server --key k": parseArgs's three lines about an ambiguous argument, for a flag missing its value.
    const ambiguous = /^Option '(?:-\w, )?(--[^ ']+)[^']*' argument is ambiguous/.exec((error as Error).message)?.[1]
    if (ambiguous !== undefined) throw new UsageError(`${ambiguous} needs a value`)
    throw new UsageError((error as Error).message.split('\n')[0])
  }
  // parseArgs takes the last of a flag given twice: "--clients 5 --clients 7" is a mistake, not 7.
  const given = new Set<string>()
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option' || token.name === undefined || config.options?.[token.name]?.multiple === true) continue
    if (given.has(token.name)) throw new UsageError(`--${token.name} is given twice: give it once`)
    given.add(token.name)
  }
  return parsed
}

/** "unknown flag '--adress' (did you mean --address?)", the nearest flag by edit distance, if near. */
function unknownFlag(given: string, known: readonly string[]): string {
  const nearest = nearestName(given.replace(/^-+/, ''), known)
  return `unknown flag '${given}'${nearest === undefined ? '' : ` (did you mean --${nearest}?)`}`
}

/** The name of `known` nearest to `name` by edit distance, if near: at most a third of its letters wrong. */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  let nearest: string | undefined
  let nearestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  for (const candidate of known) {
    const distance = editDistance(name, candidate)
    if (distance < nearestDistance) {
      nearest = candidate
      nearestDistance = distance
    }
  }
  return nearest
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

/**
 * `--timeout -1` as `--timeout=-1`: parseArgs takes a value that starts with a dash for another option,
 * and refuses it as ambiguous. A negative number after an option that takes a value is that value.
 */
function joinNegativeValues(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const joined: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const option = arg.startsWith('--') && !arg.includes('=') ? options[arg.slice(2)] : undefined
    const next = args[i + 1]
    if (option?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      joined.push(`${arg}=${next}`)
      i++
    } else {
      joined.push(arg)
    }
  }
  return joined
}

/** A number's range, as numberArgument() and the config file check it. */
export interface NumberRange {
  integer?: boolean
  min?: number
  max?: number
}

/** What a value in `range` must be, for an error: "an integer from 1 to 10", "a non-negative number up to 1". */
export function rangeText({ integer = false, min = 0, max = Number.MAX_VALUE }: NumberRange): string {
  const kind = integer ? 'integer' : 'number'
  return min === 0 ? `a non-negative ${kind}${max < Number.MAX_VALUE ? ` up to ${max}` : ''}` : `${integer ? 'an' : 'a'} ${kind} from ${min} to ${max}`
}

/** Whether `value` is a number in `range` (-0 is not: it prints as 0 but is a mistake). */
export function inRange(value: number, { integer = false, min = 0, max = Number.MAX_VALUE }: NumberRange): boolean {
  return Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value)) && !Object.is(value, -0)
}

/** --name's value as a number from min (default 0) to max, or the fallback when it is absent. */
export function numberArgument(name: string, text: string | undefined, fallback: number, range: NumberRange = {}): number {
  if (text === undefined) return fallback
  // Decimal digits only: Number() alone took '', ' 0x3 ', '0b11' and '1e3'.
  const value = /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN
  if (!inRange(value, range)) throw new UsageError(`--${name} must be ${rangeText(range)}, not '${text}'`)
  return value
}

/** The longest a timer waits (2^31 - 1 ms, in whole seconds): a longer delay would fire at once. */
export const maxTimerSeconds = 2_147_483

/** The line after a mistake's: where the usage is, for a program whose `command` prints it ('volley --help'). */
export function seeHelp(command: string): string {
  return `Run '${command}' for the usage.`
}

/**
 * Ends the process for a mistake in the command line (status 2) or a typed error of the library (an address
 * that does not parse, a port in use: status 2 for bad values, 1 otherwise), with one line each; a mistake's
 * is followed by `seeUsage` (seeHelp(): the usage itself buried the mistake above it). Anything else is a
 * bug: thrown on.
 */
export function exitOnCommandError(program: string, seeUsage: string, error: unknown): never {
  if (error instanceof UsageError) {
    console.error(`${program}: ${error.message}\n${seeUsage}`)
    process.exit(2)
  }
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') {
    console.error(`${program}: ${(error as Error).message} (${code})`)
    process.exit(code.startsWith('ERR_INVALID') || code === 'ERR_OUT_OF_RANGE' ? 2 : 1)
  }
  throw error
}

/** Prints a command's help on stdout and ends the process with status 0, as --help asks. */
export function exitWithHelp(help: string): never {
  console.log(help)
  process.exit(0)
}

/** A signal this soon after the first is the same Ctrl-C, relayed (by npm, a shell, tsx) as well as sent. */
const relayedSignalMs = 250

/**
 * Aborts at the first SIGINT or SIGTERM, so that a command can end what it does, report and disconnect. Its
 * listeners go a moment later: a second Ctrl-C then ends the process at once, as it does by default; one
 * that comes within relayedSignalMs is the first one again (a terminal signals the whole process group, and
 * npm relays it to the child as well) and must not cut the report short.
 */
export function interruption(): AbortSignal {
  const controller = new AbortController()
  const interrupt = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) return
    setTimeout(() => {
      process.off('SIGINT', interrupt)
      process.off('SIGTERM', interrupt)
    }, relayedSignalMs).unref()
    interruptedAt.set(controller.signal, performance.now())
    controller.abort(signal) // the reason: which signal, for interruptedStatus()
  }
  process.on('SIGINT', interrupt)
  process.on('SIGTERM', interrupt)
  return controller.signal
}

/** When each signal of interruption() aborted (performance.now()). */
const interruptedAt = new WeakMap<AbortSignal, number>()

/**
 * How long after startedMs (performance.now()) the interruption came, for a summary: not when the summary
 * is printed, after the clients and sockets closed, which takes a while more. 0 for one that came before.
 */
export function msUntilInterrupted(interrupted: AbortSignal, startedMs: number): number {
  return Math.max(0, (interruptedAt.get(interrupted) ?? performance.now()) - startedMs)
}

/** The status a shell reports for a command a signal ended, 128 + its number: 130 for SIGINT, 143 for SIGTERM. */
export function interruptedStatus(interrupted: AbortSignal): number {
  return 128 + (constants.signals[interrupted.reason as NodeJS.Signals] ?? constants.signals.SIGINT)
}

/**
 * Output to a reader that has gone (`volley load | head -1`, a closed terminal) is dropped, not thrown as
 * an uncaught EPIPE: the command still ends what it does (its clients disconnect) and exits with its status.
 */
export function tolerateClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error
    })
  }
}

/** Waits ms, or until the signal aborts (resolving, not rejecting: the caller reads signal.aborted). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const end = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', end)
      resolve()
    }
    const timer = setTimeout(end, ms)
    signal.addEventListener('abort', end, { once: true })
  })
}
