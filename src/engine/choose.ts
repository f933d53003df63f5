// Which engine runs a Server, a Client or a datagram socket: the native one, or the fallback engine
// (engine/fallback/engine.ts, engine/fallback/datagrams.ts) where the addon cannot load, or where VOLLEY_ENGINE=fallback asks
// for it (to compare the two, or to test the fallback).
import { VolleyError } from '../util/errors.ts'
import { loadAddon } from './native/addon.ts'

/** Why the addon could not load, once it failed for good (it will not load later in this process). */
let addonFailure: string | undefined

/**
 * Whether the addon's failure to load will last: no build or prebuild for this platform, one that does not
 * load here, one of another layout. Not so for a process out of file descriptors or memory: the call fails
 * as it did before there was a fallback, and the next one tries the addon again.
 */
export function lastingAddonFailure(error: VolleyError): boolean {
  if (error.code === 'ERR_ADDON_MISMATCH') return true
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined
  const text = `${String(cause?.code ?? '')} ${String(cause?.message ?? '')}`
  return !/EMFILE|ENFILE|ENOMEM|EAGAIN|Too many open files|Cannot allocate memory|Resource temporarily unavailable/i.test(text)
}

/** The VOLLEY_ENGINE value a warning was given for (once per value: a misspelling would run native unsaid). */
let unknownEngineWarned: string | undefined

/** Why Server, Client and datagram sockets run on the fallback engine in this process; undefined when the native one runs them. */
export function fallbackReason(): string | undefined {
  const asked = process.env.VOLLEY_ENGINE
  if (asked === 'fallback') return 'VOLLEY_ENGINE=fallback'
  if (asked !== undefined && asked !== '' && asked !== 'native' && asked !== unknownEngineWarned) {
    unknownEngineWarned = asked
    process.emitWarning(`VOLLEY_ENGINE=${JSON.stringify(asked)} is neither 'native' nor 'fallback': the engine is chosen as without it (the native one where the addon loads)`, {
      type: 'VolleyWarning',
      code: 'VOLLEY_UNKNOWN_ENGINE',
    })
  }
  if (addonFailure !== undefined) return addonFailure
  try {
    loadAddon()
    return undefined
  } catch (error) {
    if (!(error instanceof VolleyError) || (error.code !== 'ERR_ADDON_NOT_FOUND' && error.code !== 'ERR_ADDON_MISMATCH')) throw error
    if (!lastingAddonFailure(error)) throw error
    // A deployment that must run natively says so: the addon's error, not a fallback with a warning.
    if (process.env.VOLLEY_REQUIRE_ADDON === '1') throw error
    // Once: the failure is kept.
    process.emitWarning(
      `${error.message} Server, Client and datagram sockets run on volley's fallback engine meanwhile (node:dgram, with the protocol cores as WebAssembly): ` +
        'the same bytes on the wire, at a fraction of the native engine’s speed.',
      { type: 'VolleyWarning', code: 'VOLLEY_FALLBACK_ENGINE' },
    )
    addonFailure = `the native addon could not load: ${error.code}`
    return addonFailure
  }
}

/**
 * Whether node:dgram shares ports here (its reusePort option, from Node 22.12 and 23.1): the fallback engine
 * binds with SO_REUSEPORT only through it.
 */
export function dgramReusesPorts(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)
}

/** Throws ERR_FALLBACK_UNSUPPORTED when the fallback engine cannot do what the options ask: shared ports on a Node without them in node:dgram. */
export function checkFallbackSupports(needs: { reusePort: boolean }, reason: string): void {
  if (!needs.reusePort || dgramReusesPorts()) return
  throw new VolleyError(
    'ERR_FALLBACK_UNSUPPORTED',
    `The "reusePort" option needs volley's native engine on Node ${process.versions.node}: this process runs the fallback engine (${reason}), ` +
      "whose node:dgram shares ports (SO_REUSEPORT) from Node 22.12 and 23.1 on. Build the native addon (`npx volley build-addon`), use a newer Node, or leave the option out.",
  )
}
