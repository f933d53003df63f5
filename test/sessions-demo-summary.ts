// What the sessions demo's summary must say after a clean failover (its tests in npm test and test:redis).
import { join } from 'node:path'
import { expect } from 'vitest'
import { figure } from './demo-runs.ts'

export const sessionsDemo = join(import.meta.dirname, '../src/cli/sessions-demo.ts')

/** The summary's promises: all of A's sessions continued on B, nothing lost, every answer applied. */
export function expectCleanFailover(stdout: string, clients: number): void {
  expect(stdout).toMatch(/^summary$/m)
  expect(figure(stdout, 'sessions  ', /^ {2}sessions +([\d,]+) created/)).toBe(clients)
  const onA = figure(stdout, 'sessions  ', /of the ([\d,]+) on gateway A/)
  expect(onA).toBe(clients)
  expect(figure(stdout, 'sessions  ', /; ([\d,]+) of the/)).toBe(onA)
  const sent = figure(stdout, 'requests  ', /^ {2}requests +([\d,]+) sent/)
  expect(sent).toBeGreaterThan(clients)
  expect(figure(stdout, 'requests  ', /, ([\d,]+) answered/)).toBe(sent)
  expect(figure(stdout, 'requests  ', /B ([\d,]+)\)/)).toBeGreaterThan(0)
  expect(figure(stdout, 'requests  ', /, ([\d,]+) lost/)).toBe(0)
  // Every answered request was applied: a request answered without a run would be a made-up answer.
  expect(figure(stdout, 'requests  ', /; ([\d,]+) applied/)).toBe(sent)
  expect(stdout).toMatch(/^ {2}failover +from the kill to the session continued: median \d+ ms/m)
}
