// Runs a script that calls the addon directly, in a child process: a crash then fails the calling test
// instead of the test worker. The script sees `addon` (untyped: it is fed what TypeScript would refuse),
// `testing` (the test bindings' addon, loaded when the script names it: toolchain suites only), `outcomes`,
// and `attempt(name, call)`, which records what call() returned (as `shown` renders `value`) or threw.
// Returns the outcomes, once the child has exited cleanly. runPlainNode: a script of plain node under limits.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'vitest'

const root = join(import.meta.dirname, '../../..')

export function runAddonScript(body: string, shown = "'returned ' + (value === null ? 'null' : typeof value)"): Record<string, unknown> {
  const script = `
import { loadAddon } from ${JSON.stringify(join(root, 'src/engine/native/addon.ts'))}
import { loadTestingAddon } from ${JSON.stringify(join(root, 'test/testing-addon.ts'))}
const addon = loadAddon() as any
const testing = ${/\btesting\./.test(body) ? 'loadTestingAddon() as any' : 'undefined as any'}
const outcomes: Record<string, unknown> = {}
function attempt(name: string, call: () => unknown): void {
  try {
    const value = call()
    outcomes[name] = ${shown}
  } catch (error) {
    outcomes[name] = 'threw ' + (error as Error).name + ': ' + (error as Error).message
  }
}
${body}
console.log(JSON.stringify(outcomes))
`
  const file = join(mkdtempSync(join(tmpdir(), 'volley-addon-')), 'script.mts')
  writeFileSync(file, script)
  const run = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8' })
  expect({ status: run.status, signal: run.signal, stderr: run.stderr.slice(0, 2000) }).toMatchObject({ status: 0, signal: null })
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
}

/** Runs a script with plain node (no tsx) under a shell's limits; returns the JSON it printed, once it has exited cleanly. */
export function runPlainNode(script: string, limits: string, nodeFlags: readonly string[] = []): unknown {
  const run = spawnSync('bash', ['-c', `${limits} && exec "$@"`, 'bash', process.execPath, ...nodeFlags, '-e', script], { cwd: root, timeout: 30_000, encoding: 'utf8' })
  expect({ status: run.status, signal: run.signal, stderr: run.stderr.slice(0, 2000) }).toEqual({ status: 0, signal: null, stderr: '' })
  return JSON.parse(run.stdout)
}
