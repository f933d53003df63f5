// Compiles the paced sender of the connections benchmark into bench/.build/ (gitignored) at every
// start, as native-build.ts does for the blaster and the sink.
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

export function buildPacedSender(benchDir: string): string {
  const out = join(benchDir, '.build')
  mkdirSync(out, { recursive: true })
  const compiler = process.env.CC ?? 'cc'
  const binary = join(out, 'paced-sender')
  const source = join(benchDir, 'native', 'paced-sender.c')
  try {
    execFileSync(compiler, ['-O2', '-Wall', '-Wextra', '-o', binary, source], { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (error) {
    const stderr = error instanceof Error && 'stderr' in error ? String(error.stderr) : ''
    throw new Error(`could not compile ${source} with '${compiler} -O2' (a C compiler is required): ${stderr || String(error)}`)
  }
  return binary
}
