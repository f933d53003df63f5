// Prints the SHA-256 of the native sources (native/ but native/testing/, binding.gyp, CMakeLists.txt): the build
// embeds it in the addon, and CI compares it with the committed prebuild to catch one older than its sources.
// With --wasm, of the sources of the WebAssembly build (native/ and scripts/build-wasm.sh), for the same check.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..')

export function nativeSourceHash(root = packageRoot) {
  return hashFiles(root, nativeSources(root).concat([join(root, 'binding.gyp'), join(root, 'CMakeLists.txt')]))
}

export function wasmSourceHash(root = packageRoot) {
  return hashFiles(root, nativeSources(root).concat([join(root, 'scripts', 'build-wasm.sh')]))
}

/** native/ but its test bindings (native/testing/), which neither the addon nor the WebAssembly build holds. */
function nativeSources(root) {
  return readdirSync(join(root, 'native'), { recursive: true })
    .map(String)
    .filter((name) => /\.(h|cc)$/.test(name) && !name.startsWith('testing/'))
    .map((name) => join(root, 'native', name))
}

function hashFiles(root, list) {
  const files = list.sort()
  const hash = createHash('sha256')
  for (const file of files) {
    hash.update(relative(root, file).replaceAll('\\', '/'))
    hash.update('\0')
    hash.update(readFileSync(file))
    hash.update('\0')
  }
  return hash.digest('hex').slice(0, 32)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(process.argv.includes('--wasm') ? wasmSourceHash() : nativeSourceHash())
}
