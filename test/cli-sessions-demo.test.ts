// The resumable sessions demo (npm run demo:sessions) with its in-process gateways (--store memory), on each
// engine: every session on gateway A continues on B, every request answered once, status 0. The Redis form,
// with gateway processes and a SIGKILL, is in cli-sessions-demo.redis.test.ts.
import { describe, expect, it } from 'vitest'
import { runDemo } from './demo-runs.ts'
import { expectCleanFailover, sessionsDemo } from './sessions-demo-summary.ts'

describe('the sessions demo (npm run demo:sessions)', () => {
  it.each([
    ['native', {}],
    ['fallback', { VOLLEY_ENGINE: 'fallback' }],
  ])('moves every session from gateway A to B on the %s engine, every request answered once', async (_engine, env) => {
    const { status, stdout, stderr } = await runDemo(sessionsDemo, ['--clients', '30', '--seconds', '1.5', '--rate', '5', '--store', 'memory'], { env })
    expect(stderr).toBe('')
    expect(status, stdout).toBe(0)
    expect(stdout).toMatch(/sharing a memory store in this process/)
    expect(stdout).toMatch(/^ {2}gateway A closed with 30 sessions on it/m)
    expectCleanFailover(stdout, 30)
  })

  it('refuses a store it does not know, naming the choices', async () => {
    const { status, stderr } = await runDemo(sessionsDemo, ['--store', 'disk'])
    expect(status).toBe(2)
    expect(stderr).toMatch(/--store must be auto, redis or memory. Received 'disk'/)
  })
})
