// The MASH demo (npm run demo:mash) as a user runs it: a child process on loopback, on each engine, that
// finishes by itself with a summary whose figures agree with each other; its mistakes and its Ctrl-C.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { figure, runDemo as runScript } from './demo-runs.ts'

const demo = join(import.meta.dirname, '../src/cli/mash-demo.ts')
const runDemo = (args: readonly string[], options?: Parameters<typeof runScript>[2]) => runScript(demo, args, options)

describe('the MASH demo (npm run demo:mash)', () => {
  it.each([
    ['native', {}],
    ['fallback', { VOLLEY_ENGINE: 'fallback' }],
  ])('runs to its end on the %s engine: every controller subscribed, notifications coalesced, no request failed, status 0', async (engine, env) => {
    const { status, stdout, stderr } = await runDemo(['--devices', '20', '--seconds', '2', '--rate', '10'], { env })
    expect(stderr).toBe('')
    expect(status, stdout).toBe(0)
    expect(stdout).toMatch(engine === 'fallback' ? /^the fallback engine/m : /^native addon: /m)
    // Live counters, then the summary.
    expect(stdout).toMatch(/^ {2}connections +20 +subscriptions +20 +notifications +[\d,]+\/s/m)
    expect(stdout).toMatch(/^summary$/m)
    expect(stdout).toMatch(/^ {2}controllers +20 of 20 connected in \d+ ms; 20 subscribed, 20 primed$/m)
    const received = figure(stdout, 'notifications', /^ {2}notifications +([\d,]+) received/)
    const sent = figure(stdout, 'notifications', / of ([\d,]+) sent/)
    expect(received).toBeGreaterThan(0)
    expect(received).toBe(sent)
    // minInterval 1 s over 2 s of changes: about two notifications a subscription, never one per change.
    expect(received).toBeLessThanOrEqual(20 * 4)
    const changes = figure(stdout, 'changes', /^ {2}changes +([\d,]+) values changed/)
    const values = figure(stdout, 'notifications', /carrying ([\d,]+) values/)
    expect(changes).toBeGreaterThanOrEqual(20 * 10 * 2 * 0.9) // --rate 10 on 20 meters for 2 s (and the writes, resets)
    expect(values).toBeGreaterThan(0)
    // Each meter changes 10 times a second over 3 measured attributes: a 1 s window replaces most changes.
    const ratio = figure(stdout, 'coalescing', /^ {2}coalescing +(\d+\.\d+) changes per value notified/)
    expect(ratio).toBeCloseTo(changes / values, 2)
    expect(ratio).toBeGreaterThan(1.5)
    expect(figure(stdout, 'requests', /^ {2}requests +(\d+) ok/)).toBeGreaterThan(0)
    expect(figure(stdout, 'requests', /, (\d+) failed/)).toBe(0)
    expect(stdout).toMatch(/^ {2}errors +none$/m)
  }, 40_000)

  it('ends at Ctrl-C with the summary so far and status 130', async () => {
    const { status, stdout, stderr } = await runDemo(['--devices', '10', '--seconds', '60'], { interruptWhen: /^ {2}connections +10 /m })
    expect(stderr).toBe('')
    expect(stdout).toMatch(/^summary \(interrupted after \d+\.\d s\)$/m)
    expect(figure(stdout, 'requests', /, (\d+) failed/)).toBe(0)
    expect(status).toBe(130)
  }, 40_000)

  it.each([
    [['--devices', '0'], /^volley demo:mash: --devices must be an integer from 1 to 65536, not '0'$/m],
    [['--rate', 'fast'], /^volley demo:mash: --rate must be a non-negative number up to 10000, not 'fast'$/m],
    [['--device', '5'], /^volley demo:mash: unknown flag '--device' \(did you mean --devices\?\)$/m],
  ])('refuses %j with one line, where its usage is and status 2', async (args, message) => {
    const { status, stderr } = await runDemo(args, { timeoutMs: 15_000 })
    expect(stderr).toMatch(message)
    expect(stderr).toMatch(/^Run 'npm run demo:mash -- --help' for the usage\.$/m)
    expect(stderr).not.toMatch(/^\s+at /m)
    expect(status).toBe(2)
  }, 20_000)

  it('says what each flag does at --help, on stdout, with status 0', async () => {
    const { status, stdout, stderr } = await runDemo(['--help'], { timeoutMs: 15_000 })
    expect(stderr).toBe('')
    expect(stdout).toMatch(/^usage: npm run demo:mash/)
    expect(stdout).toMatch(/^ {2}--rate +value changes a second on each meter/m)
    expect(status).toBe(0)
  }, 20_000)
})
