// The resumable sessions demo in its Redis form: two gateway processes sharing a redis-server of the demo's
// own; gateway A gets SIGKILL with requests in flight, and every session continues on B.
import { describe, expect, it } from 'vitest'
import { runDemo } from './demo-runs.ts'
import { expectCleanFailover, sessionsDemo } from './sessions-demo-summary.ts'

describe('the sessions demo with Redis (npm run demo:sessions -- --store redis)', () => {
  it('moves 200 sessions from a killed gateway process to the other, every request answered once', async () => {
    const { status, stdout, stderr } = await runDemo(sessionsDemo, ['--clients', '200', '--seconds', '3', '--store', 'redis'], { timeoutMs: 60_000 })
    expect(stderr).toBe('')
    expect(status, stdout).toBe(0)
    expect(stdout).toMatch(/sharing a Redis \(redis-server on 127\.0\.0\.1:\d+\), each in a process of its own/)
    expect(stdout).toMatch(/^ {2}gateway A killed \(SIGKILL\) with 200 sessions on it/m)
    expectCleanFailover(stdout, 200)
  })
})
