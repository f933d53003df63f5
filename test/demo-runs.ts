// Running a demo as a user does: a child process whose output and status a test reads.
import { spawn } from 'node:child_process'
import { once } from 'node:events'

export interface Run {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs a demo script under tsx; killed after timeoutMs. interruptWhen: SIGINT once stdout matches it. */
export async function runDemo(
  script: string,
  args: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number; interruptWhen?: RegExp } = {},
): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { env: { ...process.env, ...options.env } })
  let stdout = ''
  let stderr = ''
  let interrupted = false
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    if (!interrupted && options.interruptWhen?.test(stdout) === true) {
      interrupted = true
      child.kill('SIGINT')
    }
  })
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000)
  const [status] = (await once(child, 'exit')) as [number | null]
  clearTimeout(killer)
  return { status, stdout, stderr }
}

/** A number on the summary line that starts with `label`, the first capture of `pattern` after it. */
export function figure(stdout: string, label: string, pattern: RegExp): number {
  const line = stdout.split('\n').find((text) => text.startsWith(`  ${label} `))
  if (line === undefined) throw new Error(`no '${label}' line in the demo's output:\n${stdout}`)
  const digits = pattern.exec(line)?.[1]
  if (digits === undefined) throw new Error(`the '${label}' line does not match ${pattern}: ${line}`)
  return Number(digits.replaceAll(',', ''))
}
