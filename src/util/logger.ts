// The `logger` option of Server and Client: a pino-compatible logger (pino's own, or anything with its four
// methods and their (object, message) call shape) that volley writes its lifecycle and warnings to.
import { VolleyTypeError, describe, surfaceLater } from './errors.ts'

/**
 * What the `logger` option takes: pino's shape, each method called with a small object of fields
 * (address, clientId, reason, code) and a message. A pino logger, a child of one, or `console` serves.
 */
export interface VolleyLogger {
  debug(fields: object, message?: string): void
  info(fields: object, message?: string): void
  warn(fields: object, message?: string): void
  error(fields: object, message?: string): void
}

const levels = ['debug', 'info', 'warn', 'error'] as const
type LogLevel = (typeof levels)[number]

/**
 * The logger a Server or Client writes to: a logger that throws (a transport that failed) must not stop the
 * step that logs (a close() would never resolve), so its error surfaces as an uncaught exception afterwards,
 * as a throwing event handler's does.
 */
export class GuardedLogger {
  readonly #logger: VolleyLogger

  constructor(logger: VolleyLogger) {
    this.#logger = logger
  }

  /** The logger given, as given: what a warning sent once per logger is keyed by. */
  get logger(): VolleyLogger {
    return this.#logger
  }

  debug(fields: object, message: string): void {
    this.#write('debug', fields, message)
  }

  info(fields: object, message: string): void {
    this.#write('info', fields, message)
  }

  warn(fields: object, message: string): void {
    this.#write('warn', fields, message)
  }

  error(fields: object, message: string): void {
    this.#write('error', fields, message)
  }

  #write(level: LogLevel, fields: object, message: string): void {
    try {
      this.#logger[level](fields, message) // called as a method: pino's read `this`
    } catch (error) {
      surfaceLater(error)
    }
  }
}

/**
 * The `logger` option, checked (ERR_INVALID_ARG_TYPE unless it has the four methods); undefined when absent,
 * so that call sites (`this.#log?.debug(...)`) build no fields without one.
 */
export function loggerOption(value: unknown): GuardedLogger | undefined {
  if (value === undefined) return undefined
  const candidate = typeof value === 'object' && value !== null ? (value as Partial<Record<LogLevel, unknown>>) : undefined
  const missing = levels.filter((level) => typeof candidate?.[level] !== 'function')
  if (missing.length > 0) {
    const lacks = candidate === undefined ? '' : ` (it has no ${missing.join(', ')} method${missing.length === 1 ? '' : 's'})`
    throw new VolleyTypeError(
      'ERR_INVALID_ARG_TYPE',
      `The "logger" option must be a pino-compatible logger: an object with debug, info, warn and error methods${lacks}. Received ${describe(value)}`,
    )
  }
  return new GuardedLogger(value as VolleyLogger)
}
