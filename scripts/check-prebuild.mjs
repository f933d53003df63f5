// Fails when the committed prebuild was built from other native sources than the ones in the tree, or (Linux
// x64) needs a newer C library than Node's own binaries do (native/napi/glibc_baseline.cc); or when the
// committed WebAssembly cores (prebuilds/wasm/, scripts/build-wasm.sh) were built from other sources.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nativeSourceHash, packageRoot, wasmSourceHash } from './source-hash.mjs'

export function prebuildPath(root = packageRoot) {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`)
  if (!existsSync(dir)) return undefined
  const file = readdirSync(dir).find((name) => name.endsWith('.node'))
  return file === undefined ? undefined : join(dir, file)
}

/** The committed prebuild was built from native/ as it is now, and (on Linux x64) needs no newer libraries than Node's own (objdump). */
export function checkPrebuild(root = packageRoot) {
  if (!wasmMatchesSources(root) | !prebuildMatchesSources(root)) return false
  return process.platform === 'linux' && process.arch === 'x64' ? checkLibraryBaseline(prebuildPath(root)) : true
}

/** The committed prebuild was built from native/ as it is now (its embedded hash of the sources). */
export function prebuildMatchesSources(root = packageRoot) {
  const path = prebuildPath(root)
  if (path === undefined) {
    console.error(`prebuild check: no prebuild in prebuilds/${process.platform}-${process.arch}: run \`npm run prebuild\` and commit it`)
    return false
  }
  const expected = nativeSourceHash(root)
  const actual = createRequire(import.meta.url)(path).sourceHash
  if (actual !== expected) {
    console.error(
      `prebuild check: ${path} was built from native sources ${actual}, but native/ is now ${expected}.\n` +
        'The committed prebuild is older than native/: run `npm run prebuild` and commit prebuilds/.',
    )
    return false
  }
  console.log(`prebuild check: ${path} matches the native sources (${expected})`)
  return true
}

/** The committed WebAssembly cores were built from native/ and scripts/build-wasm.sh as they are now. */
export function wasmMatchesSources(root = packageRoot) {
  const path = join(root, 'prebuilds', 'wasm', 'volley-protocols.cjs')
  if (!existsSync(path)) {
    console.error('prebuild check: no prebuilds/wasm/volley-protocols.cjs: run `npm run build:wasm` and commit it')
    return false
  }
  const cores = createRequire(import.meta.url)(path)({ getRandomValue: () => 0 })
  const at = cores._vp_source_hash()
  const actual = new TextDecoder().decode(cores.HEAPU8.subarray(at, cores.HEAPU8.indexOf(0, at)))
  const expected = wasmSourceHash(root)
  if (actual !== expected) {
    console.error(
      `prebuild check: ${path} was built from sources ${actual}, but native/ and scripts/build-wasm.sh are now ${expected}.\n` +
        'The committed WebAssembly cores are older than their sources: run `npm run build:wasm` and commit prebuilds/wasm/.',
    )
    return false
  }
  console.log(`prebuild check: ${path} matches its sources (${expected})`)
  return true
}

// What Node's Linux x64 binaries need (glibc 2.28, RHEL 8's libgcc_s), and the shared libraries they load.
const baseline = { GLIBC: [2, 28], GCC: [7, 0, 0] }
const allowedLibraries = ['libc.so.6', 'libm.so.6', 'libpthread.so.0', 'libdl.so.2', 'librt.so.1', 'libgcc_s.so.1', 'ld-linux-x86-64.so.2']

function newerThan(version, limit) {
  for (let i = 0; i < Math.max(version.length, limit.length); i++) {
    if ((version[i] ?? 0) !== (limit[i] ?? 0)) return (version[i] ?? 0) > (limit[i] ?? 0)
  }
  return false
}

/** The shared libraries and symbol versions the addon needs (objdump -p), held to Node's own. */
export function checkLibraryBaseline(path) {
  let dump
  try {
    dump = execFileSync('objdump', ['-p', path], { encoding: 'utf8' })
  } catch (error) {
    console.error(`prebuild check: cannot read ${path} with objdump (binutils): ${error.message}`)
    return false
  }
  const problems = []
  for (const [, library] of dump.matchAll(/^\s+NEEDED\s+(\S+)$/gm)) {
    if (!allowedLibraries.includes(library)) problems.push(`it needs ${library}`)
  }
  for (const [, family, version] of dump.matchAll(/^\s+0x[0-9a-f]+ 0x[0-9a-f]+ \d+ ([A-Z]+)_([0-9.]+)$/gm)) {
    const limit = baseline[family]
    if (limit === undefined) problems.push(`it needs ${family}_${version}`)
    else if (newerThan(version.split('.').map(Number), limit)) problems.push(`it needs ${family}_${version} (Node's binaries: ${family}_${limit.join('.')})`)
  }
  if (problems.length > 0) {
    console.error(`prebuild check: ${path} would not load where Node does: ${[...new Set(problems)].join('; ')}`)
    return false
  }
  console.log(`prebuild check: ${path} needs no newer libraries than Node's own (glibc ${baseline.GLIBC.join('.')})`)
  return true
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = checkPrebuild() ? 0 : 1
}
