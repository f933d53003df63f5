// The figures README.md and docs/performance.md quote are written from the result files (bench/lib/history.ts):
// the documents must hold what the files give, and each target's standing must be judged as its row says.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { rewrite, targetsTable } from '../bench/lib/history.ts'
import { historyCommand } from '../bench/lib/runner.ts'

const repo = join(import.meta.dirname, '..')

describe('benchmark standing in the documents', () => {
  for (const document of ['README.md', 'docs/performance.md']) {
    it(`${document} quotes what the result files give (else run: ${historyCommand})`, () => {
      const file = join(repo, document)
      expect(rewrite(file)).toBe(readFileSync(file, 'utf8'))
    })
  }
})

describe('targetsTable', () => {
  const dirs: string[] = []
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })
  function resultsFolder(): string {
    const dir = mkdtempSync(join(tmpdir(), 'volley-standing-'))
    dirs.push(dir)
    return dir
  }

  /** A connections result recording only the payload target, as the benchmark writes it. */
  function connectionsRun(dir: string, stamp: string, ratio: number, extra: Record<string, unknown> = {}): void {
    const record = {
      system: { cpuModel: 'AMD EPYC', kernel: '6.18.44-fc-v782' },
      ...extra,
      summary: { targets: [{ what: 'payload CPU: volley per encrypted payload ÷ node:dgram per datagram', value: ratio, unit: '×', target: '≤ 0.5×', met: ratio <= 0.5 }] },
    }
    writeFileSync(join(dir, `connections-${stamp}.json`), JSON.stringify(record))
  }
  function row(dir: string, start: string): string {
    const found = targetsTable('results', dir).split('\n').find((line) => line.startsWith(start))
    if (found === undefined) throw new Error(`no row starting ${start}`)
    return found
  }

  it("takes the latest full run with the library's keep-alives, and counts the runs that met the goal", () => {
    const dir = resultsFolder()
    connectionsRun(dir, '2026-01-01T0100', 0.3)
    connectionsRun(dir, '2026-01-01T0200', 0.45)
    connectionsRun(dir, '2026-01-01T0300', 0.6)
    connectionsRun(dir, '2026-01-01T0400', 0.2, { options: { keepAliveMs: 1000 } }) // not the default keep-alives
    connectionsRun(dir, '2026-01-01T0500', 0.1, { quick: true }) // a smoke run
    connectionsRun(dir, '2026-01-01T0600', 0.15, { complete: false }) // fewer clients or seconds than a full run
    const payload = row(dir, '| CPU per 64 B encrypted payload')
    expect(payload).toContain('**0.60×** ([2026-01-01T0300](results/connections-2026-01-01T0300.json), EPYC v782)') // and its host
    expect(payload).toContain('**not met**')
    expect(payload).toContain('2 of 3 (0.30× to 0.60×)')
  })

  it('counts only the last ten runs', () => {
    const dir = resultsFolder()
    connectionsRun(dir, '2026-01-01T0100', 0.9) // the eleventh newest: not counted
    for (let hour = 10; hour < 20; hour += 1) connectionsRun(dir, `2026-01-02T${hour}00`, 0.4)
    const payload = row(dir, '| CPU per 64 B encrypted payload')
    expect(payload).toContain('**0.40×** ([2026-01-02T1900]')
    expect(payload).toMatch(/\| met +\|/)
    expect(payload).toContain('10 of 10 (0.40×)')
  })

  it('judges the receive rate at saturation where the losses decide it: an upper bound where the C loop kept up, a lower bound where volley did', () => {
    const dir = resultsFolder()
    const datagramRun = (stamp: string, volley: { rate: number; loss: number }, c: { rate: number; loss: number }): void => {
      const receive = [64, 1200].flatMap((size) => [
        { size, receiver: 'volley', ...volley },
        { size, receiver: 'c-recvmmsg', ...c },
      ])
      writeFileSync(join(dir, `datagram-${stamp}-gso.json`), JSON.stringify({ summary: { receive } }))
    }
    datagramRun('2026-01-01T0100', { rate: 950, loss: 0.2 }, { rate: 1000, loss: 0.3 }) // both saturated: 0.95×, met
    datagramRun('2026-01-01T0200', { rate: 1000, loss: 0 }, { rate: 1000, loss: 0.3 }) // volley kept up: at least 1.00×, met
    datagramRun('2026-01-01T0300', { rate: 950, loss: 0.1 }, { rate: 1000, loss: 0 }) // at most 0.95×: could be either
    datagramRun('2026-01-01T0400', { rate: 630, loss: 0.1 }, { rate: 1000, loss: 0 }) // at most 0.63×: not met
    expect(row(dir, '| receive rate at saturation')).toContain('| **≤ 0.63×; ≤ 0.63×** ([2026-01-01T0400-gso]')
    expect(row(dir, '| receive rate at saturation')).toContain('2 of 3 (0.63× to 1.00×)')
    datagramRun('2026-01-01T0500', { rate: 1000, loss: 0 }, { rate: 1000, loss: 0.3 })
    expect(row(dir, '| receive rate at saturation')).toContain('| **≥ 1.00×; ≥ 1.00×** ([2026-01-01T0500-gso]')
  })

  it('shows a dash for a target no run measured', () => {
    const dir = resultsFolder()
    connectionsRun(dir, '2026-01-01T0100', 0.3)
    expect(row(dir, '| reliable bulk transfer').replace(/ +/g, ' ')).toBe('| reliable bulk transfer, volley (encrypted) ÷ udx-native (plain) | ≥ 1× | – | – | – |')
  })
})
