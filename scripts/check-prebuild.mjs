// Fails when the committed prebuild was built from other native sources than the ones in the tree.
import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nativeSourceHash, packageRoot } from './source-hash.mjs'

export function prebuildPath(root = packageRoot) {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`)
  if (!existsSync(dir)) return undefined
  const file = readdirSync(dir).find((name) => name.endsWith('.node'))
  return file === undefined ? undefined : join(dir, file)
}

export function checkPrebuild(root = packageRoot) {
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

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = checkPrebuild() ? 0 : 1
}
