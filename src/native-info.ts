import { loadAddon, packageRoot } from './engine/addon.ts'

/** Which native build is loaded: the hash of the sources it was built from and its libsodium. */
export function nativeInfo(): { sourceHash: string; sodiumVersion: string; packageRoot: string } {
  const addon = loadAddon()
  return { sourceHash: addon.sourceHash, sodiumVersion: addon.sodiumVersion, packageRoot }
}
