// Writes the TypeScript files that carry native constants (scripts/emit-constants.cc says which), each value
// taken from its C++ header: a constant is written once, in C++. Needs g++ and libsodium's headers.
//   node scripts/generate-constants.mjs          write the files
//   node scripts/generate-constants.mjs --check  write nothing; exit 1 naming each file that differs
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const generatedFiles = {
  netcode: 'src/protocol/netcode/constants.ts',
  delivery: 'src/protocol/delivery/config.ts',
  layout: 'src/engine/native-layout.ts',
}

/** What each generated file should hold, by its path from the repository's root. */
export function emitConstants() {
  const build = mkdtempSync(join(tmpdir(), 'volley-constants-'))
  try {
    const program = join(build, 'emit-constants')
    execFileSync('g++', ['-std=c++17', '-Wall', '-Wextra', '-Werror', `-I${join(root, 'native')}`, '-o', program, join(root, 'scripts', 'emit-constants.cc')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    })
    return Object.fromEntries(Object.entries(generatedFiles).map(([which, path]) => [path, execFileSync(program, [which], { encoding: 'utf8' })]))
  } finally {
    rmSync(build, { recursive: true, force: true })
  }
}

/** The generated files under `base` whose text is not what `emitted` says they should hold. */
export function staleFiles(emitted, base = root) {
  return Object.entries(emitted)
    .filter(([path, text]) => {
      try {
        return readFileSync(join(base, path), 'utf8') !== text
      } catch {
        return true
      }
    })
    .map(([path]) => path)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const emitted = emitConstants()
  const stale = staleFiles(emitted)
  if (process.argv.includes('--check')) {
    if (stale.length > 0) {
      process.stderr.write(`generated constants out of date: ${stale.join(', ')} (run node scripts/generate-constants.mjs)\n`)
      process.exit(1)
    }
  } else {
    for (const path of stale) writeFileSync(join(root, path), emitted[path])
  }
}
