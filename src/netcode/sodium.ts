// libsodium-wrappers (WebAssembly), loaded once: the crypto of the pure-TypeScript side.
import sodiumModule from 'libsodium-wrappers'

export type Sodium = typeof sodiumModule

let ready: Promise<Sodium> | undefined

export function loadSodium(): Promise<Sodium> {
  ready ??= sodiumModule.ready.then(() => sodiumModule)
  return ready
}
