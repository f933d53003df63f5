import { addonPath, loadAddon, packageRoot } from '../engine/native/addon.ts'
import { fallbackReason } from '../engine/choose.ts'

/** The native addon in use: where it was loaded from and what it was built from. */
export interface NativeInfo {
  /** The .node file in use: build/Release for a local build, otherwise the prebuild. */
  path: string
  /** Hash of the native sources the addon was built from. */
  sourceHash: string
  /** The version of libsodium built into it. */
  sodiumVersion: string
  /** The directory of the volley package. */
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

/** The engine a Server, a Client or a datagram socket made now runs on, and why the fallback where it does. */
export type EngineInUse = { engine: 'native'; addon: NativeInfo } | { engine: 'fallback'; reason: string }

/**
 * Which engine this process runs its sockets on: the native one (with its addon, as nativeInfo() gives it), or
 * the fallback (node:dgram with the protocol cores as WebAssembly), and why (VOLLEY_ENGINE=fallback, or the
 * addon's error code). For a health check or a metric: the fallback's warning comes once, in a log that may be
 * gone. Decides as a new socket would, warnings included; throws where that would (VOLLEY_REQUIRE_ADDON=1
 * without an addon, a process out of file descriptors as it loads the addon).
 */
export function engineInUse(): EngineInUse {
  const reason = fallbackReason()
  return reason === undefined ? { engine: 'native', addon: nativeInfo() } : { engine: 'fallback', reason }
}
