// One SEND_DONE wakes every socket of the engine that waits for a send slab: a 'drain' listener that
// throws must not cost the other sockets their 'drain'.
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'

const root = join(import.meta.dirname, '../..')

it("a throwing 'drain' listener does not swallow another socket's 'drain'", () => {
  const shim = join(mkdtempSync(join(tmpdir(), 'volley-eagain-')), 'sendmmsg_eagain.so')
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-o', shim, 'test/engine/harness/sendmmsg_eagain.c', '-ldl'], { cwd: root })
  const run = (throwing: boolean) =>
    JSON.parse(
      execFileSync(process.execPath, ['--import', 'tsx', 'test/fixtures/drain-handler-throws.ts'], {
        cwd: root, encoding: 'utf8', timeout: 30_000,
        env: { ...process.env, LD_PRELOAD: shim, VOLLEY_EAGAIN: '0:0:start', THROW: throwing ? '1' : '0' },
      }),
    ) as { bAccepted: boolean; aDrains: number; bDrains: number }
  expect(run(false)).toMatchObject({ bAccepted: false, aDrains: 1, bDrains: 1 }) // control
  expect(run(true)).toMatchObject({ bAccepted: false, aDrains: 1, bDrains: 1 }) // B drains though A threw
}, 60_000)
