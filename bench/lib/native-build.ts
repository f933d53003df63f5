// Compiles the benchmarks' native tools into bench/.build/ (gitignored) at every start, so they always
// match their sources: here the blaster and the sink; connections-native.ts and congestion.ts build the
// others with compileCTool and compileCxxTool.
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

/**
 * Compiles C++ sources on volley's native/ (the include root) into bench/.build/<name>, with CXX or g++;
 * `libraries` come after the sources; `needs` names what a failure suggests is missing.
 */
export function compileCxxTool(benchDir: string, root: string, name: string, sources: readonly string[], libraries: readonly string[], needs: string): string {
  const out = join(benchDir, '.build')
  mkdirSync(out, { recursive: true })
  const compiler = process.env.CXX ?? 'g++'
  const binary = join(out, name)
  try {
    execFileSync(compiler, ['-std=c++17', '-O2', '-Wall', '-Wextra', '-I', join(root, 'native'), '-o', binary, ...sources, ...libraries], { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'ENOENT') throw new Error(`could not compile ${name}: no '${compiler}' on PATH (install g++, or set CXX to a C++17 compiler)`)
    const stderr = error instanceof Error && 'stderr' in error ? String(error.stderr) : ''
    throw new Error(`could not compile ${name} with '${compiler} -O2' (${needs}): ${stderr || String(error)}`)
  }
  return binary
}

export function buildNativeTools(benchDir: string): NativeTools {
  const tools = { blaster: compileCTool(benchDir, 'blaster'), sink: compileCTool(benchDir, 'sink') }
  const compiler = process.env.CC ?? 'cc'
  const version = execFileSync(compiler, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? compiler
  return { ...tools, compiler: version.trim() }
}
