// The key rotation demo (npm run demo:keysync) as a user runs it, short: a development KME, a backend and a
// gateway rotating every 3 s while clients connect; none refused, the same key on both sides, each rolled
// key deleted, status 0. And a refusal of a bad argument.
import { describe, expect, it } from 'vitest'
import { figure, runDemo } from './demo-runs.ts'

const keysyncDemo = 'src/cli/keysync-demo.ts'

describe('the key rotation demo (npm run demo:keysync)', () => {
  it('rotates twice while clients connect: none refused, the same key in production on both sides, the rolled keys deleted', async () => {
    const { status, stdout, stderr } = await runDemo(keysyncDemo, ['--rotations', '2', '--every', '3', '--clients', '10'], { timeoutMs: 60_000 })
    expect(stderr).toBe('')
    expect(status, stdout).toBe(0)
    expect(figure(stdout, 'rotations', /rotations\s+(\d+) on the backend/)).toBe(3)
    expect(figure(stdout, 'rotations', /, (\d+) on the gateway/)).toBe(3)
    expect(stdout).toMatch(/in production {2}the same key on both sides/)
    expect(figure(stdout, 'clients', /(\d+) refused/)).toBe(0)
    expect(figure(stdout, 'clients', /clients\s+(\d+) connected/)).toBeGreaterThan(20)
    expect(figure(stdout, 'cleanups', /: (\d+) rolled keys deleted/)).toBe(2)
    expect(figure(stdout, 'cleanups', /(\d+) failed/)).toBe(0)
    expect(figure(stdout, 'messages', /(\d+) dropped/)).toBe(0)
  })

  it('refuses a rotation period it cannot keep, naming the range', async () => {
    const { status, stderr } = await runDemo(keysyncDemo, ['--every', '1'])
    expect(status).toBe(2)
    expect(stderr).toMatch(/--every/)
  })
})
