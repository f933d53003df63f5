// libsodium-wrappers (WebAssembly), loaded once: the crypto of the TypeScript codecs (connect tokens, and the
// packets tests and benchmarks make). The engines' own crypto is libsodium in C++ (the fallback's as WebAssembly).
import sodiumModule from 'libsodium-wrappers'
import { VolleyError } from '../../util/errors.ts'

// The module's named exports, which its default export carries too: named so, not by the default import's
// type, the declarations read the same whatever the reader's module settings (a default import of the
// package's CommonJS types fails without esModuleInterop).
export type Sodium = Omit<typeof import('libsodium-wrappers'), 'default'>

let ready: Promise<Sodium> | undefined
let loaded: Sodium | undefined

// The module starts loading as it is imported, and its promise rejects where WebAssembly is missing (node
// --jitless): left unhandled until something needs the crypto, that rejection ended the process of any
// program that merely imported volley. loadSodium() reports it, as ERR_CRYPTO_UNAVAILABLE, to what needs it.
sodiumModule.ready.catch(() => {})

/** libsodium-wrappers if loadSodium() has finished loading it, else undefined. */
export function loadedSodium(): Sodium | undefined {
  return loaded
}

/** libsodium-wrappers, ready; ERR_CRYPTO_UNAVAILABLE where it cannot load (no WebAssembly: node --jitless). */
export function loadSodium(): Promise<Sodium> {
  ready ??= sodiumModule.ready.then(
    () => (loaded = sodiumModule),
    (cause: unknown) => {
      ready = undefined // a later call tries again
      throw new VolleyError('ERR_CRYPTO_UNAVAILABLE', `libsodium-wrappers could not load (it needs WebAssembly): ${(cause as Error)?.message ?? String(cause)}`, { cause })
    },
  )
  return ready
}

/**
 * Random bytes from the platform's CSPRNG (Web Crypto's getRandomValues, in Node and in browsers), in one
 * call. libsodium-wrappers' randombytes_buf reaches the same generator a few bytes per call, across the
 * WebAssembly boundary each time: 180–200 µs for a connect token's 88 random bytes, 1.5 µs here.
 */
export function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length))
}
