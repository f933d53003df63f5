// The options both MASH roles share, checked once: scheduler, keep-alive, close timeout.
import { VolleyTypeError, describe } from '../../util/errors.ts'
import { integerOption } from '../../util/options.ts'
import { sessionTimers, type Scheduler } from '../timers.ts'
import { keepAliveSettings, type KeepAliveOptions } from './keepalive.ts'
import type { MashLinkSettings } from './link.ts'

export interface MashLinkOptions {
  // Seed 003 §4.
  /** Keep-alive pings (default: keepAliveDefaults); `false` sends none (pings from the peer are still answered). */
  keepAlive?: KeepAliveOptions | false | undefined
  /** How long a close waits for the peer's echo, ms (default 5,000). */
  closeTimeoutMs?: number | undefined
  /** The clock and timers (default: the process's session timers); a FakeClock in tests. */
  scheduler?: Scheduler | undefined
}

export function linkSettings(options: MashLinkOptions): { scheduler: Scheduler; link: MashLinkSettings } {
  const scheduler = options.scheduler ?? sessionTimers()
  if (typeof scheduler !== 'object' || scheduler === null || typeof scheduler.arm !== 'function' || typeof scheduler.now !== 'function') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "scheduler" option must be a Scheduler (now, arm, disarm). Received ${describe(scheduler)}`)
  }
  const keepAlive = options.keepAlive === false ? { ...keepAliveSettings(undefined), intervalMs: 0 } : keepAliveSettings(options.keepAlive)
  const closeTimeoutMs = integerOption('closeTimeoutMs', options.closeTimeoutMs, 5_000, 0, 2 ** 31 - 1)
  return { scheduler, link: { keepAlive, closeTimeoutMs } }
}
