// The figures README.md and docs/performance.md quote are written from the benchmarks' history lines
// (bench/lib/history.ts): the documents must hold what the lines give, each target's standing must be judged as
// its row says, and a run must write its line and its full record where the history expects them.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { rewrite, targetsTable } from '../bench/lib/history.ts'
import { appendHistoryLine, historyLine, readHistory } from '../bench/lib/history-lines.ts'
import { historyCommand, writeResults } from '../bench/lib/runner.ts'

const repo = join(import.meta.dirname, '..')

describe('benchmark standing in the documents', () => {
  for (const document of ['README.md', 'docs/performance.md', 'bench/results/history.md']) {
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

  /**
   * A connections run's history line, made from a record as the benchmark writes it (payload ratios only):
   * gross and net of the idle keep-alives, and volley ÷ the C floor.
   */
  function connectionsRun(dir: string, stamp: string, net: number, extra: Record<string, unknown> = {}): void {
    const record = {
      system: { cpuModel: 'AMD EPYC', kernel: '6.18.44-fc-v782' },
      ...extra,
      summary: { payloadRatio: net + 0.1, payloadRatioNet: net, volleyOverFloorNet: net * 3 },
    }
    appendHistoryLine(dir, 'connections', historyLine('connections', record, stamp, {}))
  }
  function row(dir: string, start: string): string {
    const found = targetsTable('results', dir).split('\n').find((line) => line.startsWith(start))
    if (found === undefined) throw new Error(`no row starting ${start}`)
    return found
  }

  it("judges the payload target net of idle keep-alives, on the latest full run with the library's keep-alives, and counts the runs that met it", () => {
    const dir = resultsFolder()
    connectionsRun(dir, '2026-01-01T0100', 0.3)
    connectionsRun(dir, '2026-01-01T0200', 0.45)
    connectionsRun(dir, '2026-01-01T0300', 0.6)
    connectionsRun(dir, '2026-01-01T0400', 0.2, { options: { keepAliveMs: 1000 } }) // not the default keep-alives
    connectionsRun(dir, '2026-01-01T0600', 0.15, { complete: false }) // fewer clients or seconds than a full run
    const payload = row(dir, '| CPU per 64 B encrypted payload')
    // net, then gross and volley ÷ the floor; the run's host; no link: no latest-connections.json is this run
    expect(payload).toContain('**0.60× (0.70×; 1.80×)** (2026-01-01T0300, EPYC v782)')
    expect(payload).toContain('**not met**')
    expect(payload).toContain('2 of 3 (0.30× to 0.60×)')
  })

  it('links the run whose full record is latest-<benchmark>.json', () => {
    const dir = resultsFolder()
    connectionsRun(dir, '2026-01-01T0300', 0.4)
    writeFileSync(join(dir, 'latest-connections.json'), JSON.stringify({ system: { date: '2026-01-01T03:00:41.000Z' } }))
    expect(row(dir, '| CPU per 64 B encrypted payload')).toContain('([2026-01-01T0300](results/latest-connections.json), EPYC v782)')
  })

  it('counts only the last ten runs', () => {
    const dir = resultsFolder()
    connectionsRun(dir, '2026-01-01T0100', 0.9) // the eleventh newest: not counted
    for (let hour = 10; hour < 20; hour += 1) connectionsRun(dir, `2026-01-02T${hour}00`, 0.4)
    const payload = row(dir, '| CPU per 64 B encrypted payload')
    expect(payload).toContain('**0.40× (0.50×; 1.20×)** (2026-01-02T1900')
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
      appendHistoryLine(dir, 'datagram', historyLine('datagram', { summary: { receive } }, `${stamp}-gso`, {}))
    }
    datagramRun('2026-01-01T0100', { rate: 950, loss: 0.2 }, { rate: 1000, loss: 0.3 }) // both saturated: 0.95×, met
    datagramRun('2026-01-01T0200', { rate: 1000, loss: 0 }, { rate: 1000, loss: 0.3 }) // volley kept up: at least 1.00×, met
    datagramRun('2026-01-01T0300', { rate: 950, loss: 0.1 }, { rate: 1000, loss: 0 }) // at most 0.95×: could be either
    datagramRun('2026-01-01T0400', { rate: 630, loss: 0.1 }, { rate: 1000, loss: 0 }) // at most 0.63×: not met
    expect(row(dir, '| receive rate at saturation')).toContain('| **≤ 0.63×; ≤ 0.63×** (2026-01-01T0400-gso')
    expect(row(dir, '| receive rate at saturation')).toContain('2 of 3 (0.63× to 1.00×)')
    datagramRun('2026-01-01T0500', { rate: 1000, loss: 0 }, { rate: 1000, loss: 0.3 })
    expect(row(dir, '| receive rate at saturation')).toContain('| **≥ 1.00×; ≥ 1.00×** (2026-01-01T0500-gso')
  })

  it('shows a dash for a target no run measured', () => {
    const dir = resultsFolder()
    connectionsRun(dir, '2026-01-01T0100', 0.3)
    expect(row(dir, '| reliable bulk transfer').replace(/ +/g, ' ')).toBe('| reliable bulk transfer, volley (encrypted) ÷ udx-native (plain) | ≥ 1× | – | – | – |')
  })
})

describe('writeResults', () => {
  const dir = mkdtempSync(join(tmpdir(), 'volley-results-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const record = (p99: number): object => ({ system: { cpuModel: 'Intel Xeon', kernel: '6.18.44-fc-v669' }, summary: { ping: { volleyP99Us: p99 } }, targets: [{ what: 'ping RTT p99 gap', value: p99 - 100, met: true }] })

  it('adds a line of figures per full run, keeps the full record of the latest complete one, and leaves quick runs out of both', () => {
    writeResults('delivery', record(140), '2026-01-01T01:00:00.000Z', { quick: false, complete: true }, dir)
    writeResults('delivery', record(900), '2026-01-01T02:00:00.000Z', { quick: false, complete: false }, dir)
    writeResults('delivery', record(5), '2026-01-01T03:00:00.000Z', { quick: true, complete: false }, dir)
    const lines = readHistory(dir, 'delivery')
    expect(lines.map((line) => [line.stamp, line.complete, line.figures.pingP99Us, line.targets.pingP99?.value])).toEqual([
      ['2026-01-01T0200', false, 900, 800],
      ['2026-01-01T0100', true, 140, 40],
    ])
    expect(lines[0]?.commit).toMatch(/^[0-9a-f]{10}(-dirty)?$/) // the commit measured
    expect(JSON.parse(readFileSync(join(dir, 'latest-delivery.json'), 'utf8')).summary.ping.volleyP99Us).toBe(140)
    expect(JSON.parse(readFileSync(join(dir, 'latest-delivery-quick.json'), 'utf8')).summary.ping.volleyP99Us).toBe(5)
    expect(readdirSync(join(dir, 'runs')).sort()).toEqual(['delivery-2026-01-01T0100.json', 'delivery-2026-01-01T0200.json', 'delivery-2026-01-01T0300-quick.json'])
  })
})
