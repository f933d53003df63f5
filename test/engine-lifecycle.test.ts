import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'

const root = new URL('..', import.meta.url)
function run(fixture: string, ...args: string[]): string {
  return runOn(undefined, fixture, ...args)
}

/** As run(), with VOLLEY_ENGINE set to `engine` (undefined: unset, the native engine). */
function runOn(engine: string | undefined, fixture: string, ...args: string[]): string {
  const env = { ...process.env }
  if (engine === undefined) delete env.VOLLEY_ENGINE
  else env.VOLLEY_ENGINE = engine
  return execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', `test/fixtures/${fixture}`, ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30_000,
    env,
    stdio: ['ignore', 'pipe', 'pipe'], // a failure's error carries the stderr; a pass prints nothing
  })
}

describe('engine lifecycle (each case in a process of its own)', () => {
  it('closing sockets while the engine is starved is safe', () => {
    expect(run('starve-then-close.ts').trim()).toBe('survived')
  })

  it('the process exits cleanly with unref()ed sockets receiving, by leaving the loop or by process.exit()', () => {
    expect(run('exit-with-traffic.ts').trim()).toBe('leaving')
    expect(run('exit-with-traffic.ts', 'exit').trim()).toBe('exiting')
  })

  it.each([undefined, 'fallback'] as const)("a send from an 'exit' handler after the engines stopped throws ERR_SOCKET_CLOSED, a new socket's too (%s)", (engine) => {
    expect(runOn(engine, 'send-at-exit.ts').trim()).toBe(Array(5).fill('ERR_SOCKET_CLOSED').join(' '))
  })

  it('VOLLEY_ENGINE of a value it does not know warns once (VOLLEY_UNKNOWN_ENGINE) and runs as without it', () => {
    expect(runOn('fallbak', 'unknown-engine.ts').trim()).toBe('VOLLEY_UNKNOWN_ENGINE native')
    expect(runOn('native', 'unknown-engine.ts').trim()).toBe('none native')
    expect(runOn('fallback', 'unknown-engine.ts').trim()).toBe('none fallback')
  })

  it('an exception from an event handler is an uncaught exception of the process, not an abort', () => {
    expect(run('handler-throws.ts', 'caught').trim().split('\n')).toEqual(['caught: boom from a handler', 'delivered after the exception'])
    let failure: { status: number | null; signal: string | null; stderr: string } | undefined
    try {
      run('handler-throws.ts')
    } catch (error) {
      failure = error as typeof failure
    }
    expect(failure?.signal).toBeNull()
    expect(failure?.status).toBe(1)
    expect(failure?.stderr).toContain('boom from a handler')
  })

  it('an exception from an event handler does not cost the rest of a long event list its delivery', () => {
    const { total, read, received, caught } = JSON.parse(run('handler-throws-mid-drain.ts')) as Record<string, number>
    expect(read).toBe(total)
    expect(caught).toBe(1)
    expect(received).toBe(total)
  })

  it('a handler that detaches the buffer under a message loses nothing and frees nothing the I/O thread uses', () => {
    type Seen = { received: number; intact: number; inOrder: number; detached: number }
    const outcome = JSON.parse(run('detach-message-buffers.ts')) as { total: number; server: Seen; client: Seen; socket: Seen; warnings: string[] }
    for (const receiver of [outcome.server, outcome.client, outcome.socket]) {
      expect(receiver).toEqual({ received: outcome.total, intact: outcome.total, inOrder: outcome.total, detached: 4 })
    }
    // Once per process: the application learns that it holds memory the engine reuses.
    expect(outcome.warnings).toEqual(['VOLLEY_MESSAGE_BUFFER_DETACHED'])
  })

  it('a worker can be terminated in the middle of a handler', () => {
    expect(run('terminate-worker.ts').trim()).toBe('survived')
  })

  it('a worker can be terminated while it loads the addon or calls into it (40 workers, at seeded moments)', () => {
    expect(run('terminate-worker-in-call.mjs', '40').trim()).toBe('survived 40')
  })

  it("a Peer kept after its server closed keeps none of the server's per-slot tables", () => {
    // 3 more servers of 2^20 slots: kept, their tables grew the process by 699 MiB; let go, by 6–27 MiB
    // (RSS moves with the runtime's own heap too: 52 MiB once on Node 26 with a quarter of the slots).
    const { grownMiB, kept, statsAfter } = JSON.parse(run('kept-peer-after-close.ts')) as { grownMiB: number; kept: number; statsAfter: boolean }
    expect(kept).toBe(4)
    expect(statsAfter).toBe(true) // its last statistics stay readable
    expect(grownMiB).toBeLessThan(200)
  })

  it.each([['dedicated'], ['shared']])('stopped %s engines give back their descriptors and slabs', (mode) => {
    const { before, after, arrayBuffers, peak, shared } = JSON.parse(run('engines-are-freed.ts', mode)) as {
      before: Record<string, number>
      after: Record<string, number>
      arrayBuffers: number
      peak: number
      shared: number
    }
    expect(after['anon_inode:[eventfd]'] ?? 0).toBeLessThanOrEqual(before['anon_inode:[eventfd]'] ?? 0)
    expect(after['anon_inode:[eventpoll]'] ?? 0).toBeLessThanOrEqual(before['anon_inode:[eventpoll]'] ?? 0)
    expect(after['anon_inode:[timerfd]'] ?? 0).toBeLessThanOrEqual(before['anon_inode:[timerfd]'] ?? 0)
    expect(after['socket:[]'] ?? 0).toBeLessThanOrEqual(before['socket:[]'] ?? 0)
    // 30 engines' slabs would be ~70 MiB; what remains is one engine's worth at most. The slabs are the
    // addon's memory: a running engine holds its 8 receive slabs and a send slab (2.25 MiB), and a stopped
    // one gives them back once JavaScript has dropped its buffers over them.
    expect(arrayBuffers).toBeLessThan(8 << 20)
    expect(peak).toBeGreaterThanOrEqual(9 * 256 * 1024)
    expect(shared).toBeLessThan(peak + 1)
    expect(shared).toBeLessThan(4 << 20)
  })
})
