import { addonPath, loadAddon, packageRoot } from './engine/addon.ts'

export interface NativeInfo {
  /** The .node file in use: build/Release for a local build, otherwise the prebuild. */
  path: string
  /** Hash of the native sources the addon was built from. */
  sourceHash: string
  sodiumVersion: string
  packageRoot: string
}

/**
 * Which native build is loaded. Throws ERR_ADDON_NOT_FOUND or ERR_ADDON_MISMATCH, with how to build it, where
 * none loads (a Server, a Client or a datagram socket then runs on the fallback engine instead).
 */
export function nativeInfo(): NativeInfo {
  const addon = loadAddon()
  return { path: addonPath(), sourceHash: addon.sourceHash, sodiumVersion: addon.sodiumVersion, packageRoot }
}
