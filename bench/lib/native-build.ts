// Compiles the benchmarks' C tools into bench/.build/ (gitignored) at every start, so they always
// match their sources: here the blaster and the sink; connections-native.ts builds the others with
// compileCTool too.
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

export interface NativeTools {
  blaster: string
  sink: string
  compiler: string
}

/** Compiles bench/native/<name>.c into bench/.build/<name>; `needs` names what a failure suggests is missing. */
export function compileCTool(benchDir: string, name: string, flags: readonly string[] = [], needs = 'a C compiler is required'): string {
  const out = join(benchDir, '.build')
  mkdirSync(out, { recursive: true })
  const compiler = process.env.CC ?? 'cc'
  const binary = join(out, name)
  const source = join(benchDir, 'native', `${name}.c`)
  try {
    execFileSync(compiler, ['-O2', '-Wall', '-Wextra', '-o', binary, source, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (error) {
    const stderr = error instanceof Error && 'stderr' in error ? String(error.stderr) : ''
    throw new Error(`could not compile ${source} with '${compiler} -O2' (${needs}): ${stderr || String(error)}`)
  }
  return binary
}

export function buildNativeTools(benchDir: string): NativeTools {
  const tools = { blaster: compileCTool(benchDir, 'blaster'), sink: compileCTool(benchDir, 'sink') }
  const compiler = process.env.CC ?? 'cc'
  const version = execFileSync(compiler, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? compiler
  return { ...tools, compiler: version.trim() }
}
