import { addonPath, loadAddon, packageRoot } from './engine/addon.ts'

export interface NativeInfo {
  /** The .node file in use: build/Release for a local build, otherwise the prebuild. */
  path: string
  /** Hash of the native sources the addon was built from. */
  sourceHash: string
  sodiumVersion: string
  packageRoot: string
}

/** Which native build is loaded. */
export function nativeInfo(): NativeInfo {
  const addon = loadAddon()
  return { path: addonPath(), sourceHash: addon.sourceHash, sodiumVersion: addon.sodiumVersion, packageRoot }
}
