// README.md's quick start is what a newcomer runs first: it must run as written, print the echo and exit.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { freeUdpPort } from './helpers.ts'

const root = join(import.meta.dirname, '..')
const work = mkdtempSync(join(tmpdir(), 'volley-readme-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

describe('README.md', () => {
  it('has a quick start that runs, prints the echo and exits by itself', async () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const example = /## Quick start\n\n```ts\n([\s\S]*?)```/.exec(readme)?.[1]
    expect(example).toBeDefined()
    // The package as this clone has it, and a port no other test holds.
    const port = String(await freeUdpPort())
    const script = example!.replace("from 'volley'", `from ${JSON.stringify(join(root, 'src', 'index.ts'))}`).replaceAll('40000', port)
    const file = join(work, 'quick-start.mts')
    writeFileSync(file, script)
    const run = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' })
    expect(run.stderr).toBe('')
    expect(run.stdout).toBe('hello\n')
    expect(run.status).toBe(0) // it exited by itself: the timeout would have killed it
  })
})
