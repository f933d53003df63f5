// Compiles the C blaster and sink into bench/.build/ (gitignored) at every start, so they always
// match their sources.
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

export interface NativeTools {
  blaster: string
  sink: string
  compiler: string
}

export function buildNativeTools(benchDir: string): NativeTools {
  const out = join(benchDir, '.build')
  mkdirSync(out, { recursive: true })
  const compiler = process.env.CC ?? 'cc'
  const tools = { blaster: join(out, 'blaster'), sink: join(out, 'sink') }
  for (const [name, binary] of Object.entries(tools)) {
    const source = join(benchDir, 'native', `${name}.c`)
    try {
      execFileSync(compiler, ['-O2', '-Wall', '-Wextra', '-o', binary, source], { stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (error) {
      const stderr = error instanceof Error && 'stderr' in error ? String(error.stderr) : ''
      throw new Error(`could not compile ${source} with '${compiler} -O2' (a C compiler is required): ${stderr || String(error)}`)
    }
  }
  const version = execFileSync(compiler, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? compiler
  return { ...tools, compiler: version.trim() }
}
