// `npm run bench:congestion`: the delivery layer's congestion control over a grid of simulated paths, on a fake
// clock (bench/native/congestion-grid.cc, compiled here with g++ on native/protocol/delivery/ and libsodium):
//   - one flow, never application-limited, over random loss {0, 1, 5, 10, 15, 20, 30} % each way × a bottleneck
//     of {1, 10, 100} Mbit/s (FIFO tail-drop queue of max(50 ms, 1 BDP)) × an RTT of {2, 20, 200} ms;
//   - two flows sharing the bottleneck, the second starting 2 s after the first, at 0 and 1 % loss.
// The issue's targets, for 10 and 100 Mbit/s at every RTT: goodput ÷ ((1 − loss) × rate) ≥ 0.85 up to 10 % loss,
// ≥ 0.75 at 15 %, ≥ 0.5 at 20 %; queueing delay p99 ≤ RTT + 10 ms at 0 % loss; Jain's index of the two flows
// ≥ 0.9 over the last 10 s of the 20 after the second starts. 1 Mbit/s and 30 % are reported without targets.
// Cells run two at a time (a harness process each). Results as writeResults writes them (bench/lib/runner.ts):
// for the full grid, bench/results/latest-congestion.json and a line in bench/results/congestion-history.jsonl,
// and the plot docs/congestion-grid.svg; a run of part of the grid (--quick, or a filter) is a smoke run and
// writes neither.
//
// --end-to-end runs, instead of the grid, the same measurement in real time through a real Server and Client(s)
// on loopback, with the engine's network simulator on every socket, on the native engine and on the fallback
// (bench/lib/congestion-end-to-end.ts, bench/congestion/end-to-end-side.ts): one flow at 10 and 100 Mbit/s ×
// 20 ms over every loss, two flows at 10 Mbit/s × 20 ms at 0 and 1 %. The cells run one at a time (5 to 6
// minutes), so a grid run leaves them out. A run of all of them sets the `endToEnd` key of
// latest-congestion.json (the grid's results stay, and a later grid run keeps the key); every run writes its
// record to bench/results/runs/.
//
//   npm run bench:congestion                          full grid (about a minute)
//   npm run bench:congestion -- --quick               smoke run: 10 Mbit/s, 20 ms, 0/10/20 % and one two-flow cell, shorter
//   npm run bench:congestion -- --end-to-end          the end-to-end cells (5 to 6 minutes)
//   npm run bench:congestion -- --from-results        the tables and the plot again from latest-congestion.json
//   npm run bench:congestion -- --help                the other options
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { type Cell, type CellRun, cellName, fullGrid, type HarnessResult, harnessArguments, judge, quickGrid, summarizeGrid } from './lib/congestion-cells.ts'
import {
  analyse,
  type ClientsReport,
  clientsArguments,
  type EndToEndCell,
  endToEndCellName,
  endToEndCells,
  endToEndNotes,
  type EndToEndRecord,
  type EndToEndRun,
  type EndToEndTiming,
  endToEndTiming,
  pathArguments,
  quickEndToEndTiming,
  type ServerReport,
  summarizeEndToEnd,
} from './lib/congestion-end-to-end.ts'
import { type RunLabel, renderEndToEnd, renderSvg, renderTables } from './lib/congestion-render.ts'
import { currentCommit, runStamp } from './lib/history-lines.ts'
import { compileCxxTool } from './lib/native-build.ts'
import { quickRun } from './lib/options.ts'
import { BenchChild } from './lib/processes.ts'
import { benchDir, describeFailure, resultText, root, runMain, writeResults } from './lib/runner.ts'
import { systemInfo } from './lib/system.ts'

const usage = `usage: npm run bench:congestion -- [options]
  --quick           smoke run: 10 Mbit/s, 20 ms, 0/10/20 % loss and one two-flow cell, 10 s (also BENCH_QUICK=1)
  --end-to-end      instead of the grid: real Server and Clients through the engine's network simulator, on
                    both engines, one cell at a time (10 and 100 Mbit/s, 20 ms; 5 to 6 minutes)
  --jobs=N          harness processes at a time (default 2; the end-to-end cells run one at a time)
  --kinds=K         a comma-separated subset of single, fairness
  --mbps=LIST       only these bottlenecks (of 1, 10, 100; end to end: 10, 100)
  --rtt-ms=LIST     only these RTTs (of 2, 20, 200; end to end: 20)
  --loss=LIST       only these losses, % (of 0, 1, 5, 10, 15, 20, 30)
  --from-results    no run: the tables and docs/congestion-grid.svg again from bench/results/latest-congestion.json
  --help`

const deliveryDir = join(root, 'native', 'protocol', 'delivery')
const svgFile = join(root, 'docs', 'congestion-grid.svg')
const latestFile = join(benchDir, 'results', 'latest-congestion.json')
/** A cell's harness gets this long: 100 Mbit/s for 25 s takes about a second. */
const cellTimeoutMs = 600_000
const endToEndSide = join(benchDir, 'congestion', 'end-to-end-side.ts')
/** An end-to-end side's start (tsx, the engine) and its close get this long each. */
const sideSetupMs = 30_000

function parseOptions() {
  const fail = (message: string): never => {
    process.stderr.write(`bench:congestion: ${message}\n\n${usage}\n`)
    process.exit(2)
  }
  let values: Record<string, string | boolean | undefined> = {}
  try {
    values = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        'end-to-end': { type: 'boolean', default: false },
        jobs: { type: 'string' },
        kinds: { type: 'string' },
        mbps: { type: 'string' },
        'rtt-ms': { type: 'string' },
        loss: { type: 'string' },
        'from-results': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values
  } catch (error) {
    fail((error as Error).message)
  }
  if (values.help === true) {
    console.log(usage)
    process.exit(0)
  }
  const env = process.env
  const quick = quickRun(values.quick, env)
  const jobs = values.jobs === undefined ? 2 : Number(values.jobs)
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) fail(`--jobs must be an integer from 1 to 64, not '${String(values.jobs)}'`)
  /** A filter on one of the cell's fields: the values listed, or all. */
  const filter = <K extends 'kind' | 'mbps' | 'rttMs' | 'lossPercent'>(option: string, field: K, parse: (text: string) => Cell[K]) => {
    const text = values[option]
    if (typeof text !== 'string') return () => true
    const wanted = text.split(',').map((item) => parse(item.trim()))
    return (cell: Cell) => wanted.includes(cell[field])
  }
  const number = (option: string) => (text: string): number => {
    const value = Number(text)
    return text !== '' && Number.isFinite(value) ? value : fail(`--${option} takes numbers, not '${text}'`)
  }
  const kind = (text: string): Cell['kind'] => (text === 'single' || text === 'fairness' ? text : fail(`--kinds takes single, fairness; not '${text}'`))
  const filters = [filter('kinds', 'kind', kind), filter('mbps', 'mbps', number('mbps')), filter('rtt-ms', 'rttMs', number('rtt-ms')), filter('loss', 'lossPercent', number('loss'))]
  const kept = (cell: Cell): boolean => filters.every((keep) => keep(cell))
  const grid = quick ? quickGrid() : fullGrid()
  const cells = grid.filter(kept)
  const endToEndSet = endToEndCells(quick)
  const endToEnd = values['end-to-end'] === true ? { cells: endToEndSet.filter(kept), whole: !quick && endToEndSet.every(kept) } : null
  if ((endToEnd?.cells ?? cells).length === 0) fail(`the filters leave no cell of the ${endToEnd === null ? 'grid' : 'end-to-end cells'}`)
  return { quick, jobs, cells, wholeGrid: !quick && cells.length === grid.length, endToEnd, fromResults: values['from-results'] === true }
}

/** A hash of the delivery layer's sources the harness compiles: which controller the figures are of (the tree may be mid-edit). */
function deliverySourceHash(): string {
  const hash = createHash('sha256')
  for (const file of readdirSync(deliveryDir).sort()) hash.update(file).update(readFileSync(join(deliveryDir, file)))
  return hash.digest('hex').slice(0, 12)
}

function buildHarness(): string {
  const sources = [join(benchDir, 'native', 'congestion-grid.cc'), ...readdirSync(deliveryDir).filter((file) => /^delivery_.*\.cc$/.test(file) || file === 'reassembly_budget.cc').sort().map((file) => join(deliveryDir, file))]
  return compileCxxTool(benchDir, root, 'congestion-grid', sources, ['-l:libsodium.a'], 'g++ (C++17) and libsodium-dev, whose static libsodium.a it links, are required')
}

const runHarness = promisify(execFile)

async function runCell(binary: string, cell: Cell, quick: boolean): Promise<CellRun> {
  const args = harnessArguments(cell, quick)
  try {
    const { stdout } = await runHarness(binary, args, { timeout: cellTimeoutMs, encoding: 'utf8' })
    const result = JSON.parse(stdout) as HarnessResult
    return { cell, args, result, failure: null, checks: judge(cell, result) }
  } catch (error) {
    const stderr = error instanceof Error && 'stderr' in error ? String(error.stderr).trim() : ''
    const failure = stderr !== '' ? stderr : error instanceof Error ? error.message : String(error)
    return { cell, args, result: null, failure, checks: judge(cell, null) }
  }
}

/** Runs the cells `jobs` at a time, the costliest first (so that no long cell starts last); results in grid order. */
async function runGrid(binary: string, cells: readonly Cell[], quick: boolean, jobs: number): Promise<CellRun[]> {
  const cost = (cell: Cell): number => cell.mbps * (cell.kind === 'fairness' ? 2 : 1)
  const order = cells.map((cell, index) => ({ cell, index })).sort((a, b) => cost(b.cell) - cost(a.cell))
  const runs: CellRun[] = new Array<CellRun>(cells.length)
  let next = 0
  let done = 0
  const worker = async (): Promise<void> => {
    for (let item = order[next++]; item !== undefined; item = order[next++]) {
      const run = await runCell(binary, item.cell, quick)
      runs[item.index] = run
      const figure = run.result === null ? `FAILED: ${run.failure}` : `goodput ratio ${run.result.goodputRatio?.toFixed(3) ?? '–'}${run.result.fairness ? `, Jain ${run.result.fairness.jain?.toFixed(3) ?? '–'}` : ''} (${run.result.wallSeconds.toFixed(2)} s)`
      process.stderr.write(`[${++done}/${cells.length}] ${cellName(item.cell)}: ${figure}\n`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, cells.length) }, worker))
  return runs
}

/**
 * One end-to-end cell: the server (the sender) on CPU 1 and the clients on CPU 0 where the machine can pin them,
 * each side in its own process on the cell's engine. Every wait has its deadline, and both sides end anyway.
 */
async function runEndToEndCell(cell: EndToEndCell, timing: EndToEndTiming, pin: boolean): Promise<EndToEndRun> {
  const started = performance.now()
  const runSeconds = cell.kind === 'fairness' ? timing.secondStartMs / 1000 + timing.fairnessSeconds : timing.singleSeconds
  const limitSeconds = Math.ceil(runSeconds + (3 * sideSetupMs) / 1000)
  const side = (role: 'server' | 'clients', cpu: number, args: string[]): BenchChild =>
    new BenchChild({
      name: `${cell.engine} ${role}`,
      command: process.execPath,
      args: ['--import', 'tsx', endToEndSide, '--role', role, '--limit-s', String(limitSeconds), ...args],
      cpu: pin ? cpu : undefined,
      cwd: root,
      env: { VOLLEY_ENGINE: cell.engine },
    })
  // Both start at once (tsx and the engine take most of a second); the clients wait for the server's port.
  const server = side('server', 1, pathArguments(cell))
  const clients = side('clients', 0, clientsArguments(cell, timing))
  try {
    const { port } = await server.expect('ready', sideSetupMs)
    clients.tell(`port ${port}`)
    const clientsResult = await clients.expect('result', runSeconds * 1000 + sideSetupMs)
    server.tell('stop')
    const serverResult = await server.expect('result', sideSetupMs)
    await Promise.all([server.finish(sideSetupMs), clients.finish(sideSetupMs)])
    const serverReport = serverResult.details as unknown as ServerReport
    const clientsReport = clientsResult.details as unknown as ClientsReport
    // VOLLEY_ENGINE misspelt, or an addon that did not load, would measure the wrong engine unsaid.
    for (const report of [serverReport, clientsReport]) if (report.engine !== cell.engine) throw new Error(`a side ran on the ${report.engine} engine`)
    return { cell, result: analyse(cell, timing, serverReport, clientsReport, (performance.now() - started) / 1000), failure: null }
  } catch (error) {
    return { cell, result: null, failure: describeFailure(error) }
  } finally {
    server.kill()
    clients.kill()
  }
}

/** The end-to-end cells one after the other (each is real time, and the two sides take both cores). */
async function runEndToEnd(cells: readonly EndToEndCell[], timing: EndToEndTiming, pin: boolean): Promise<EndToEndRun[]> {
  const runs: EndToEndRun[] = []
  for (const cell of cells) {
    const run = await runEndToEndCell(cell, timing, pin)
    runs.push(run)
    const result = run.result
    const figure = result === null ? `FAILED: ${run.failure}` : `goodput ratio ${result.goodputRatio?.toFixed(3) ?? '–'}${result.fairness ? `, Jain ${result.fairness.jain?.toFixed(3) ?? '–'}` : ''} (${result.wallSeconds.toFixed(1)} s)`
    process.stderr.write(`[${runs.length}/${cells.length}] ${endToEndCellName(cell)}: ${figure}\n`)
  }
  return runs
}

/** What the tables and the plot read of a run's record (latest-congestion.json for --from-results). */
interface CongestionRecord {
  quick: boolean
  options: { jobs: number }
  system: { date: string }
  commit?: string
  deliverySource: string
  seconds: number
  cells: CellRun[]
  endToEnd?: EndToEndRecord
}

/** The end-to-end record latest-congestion.json holds, if any (a grid run keeps it). */
function latestEndToEnd(): EndToEndRecord | undefined {
  return existsSync(latestFile) ? (JSON.parse(readFileSync(latestFile, 'utf8')) as CongestionRecord).endToEnd : undefined
}

/**
 * Writes an end-to-end run's record to bench/results/runs/ and, for a complete run, into latest-congestion.json
 * under `endToEnd`, the grid's results left as they are. Returns the paths written.
 */
function writeEndToEnd(record: EndToEndRecord): string[] {
  const runsDir = join(benchDir, 'results', 'runs')
  mkdirSync(runsDir, { recursive: true })
  const runFile = join(runsDir, `congestion-end-to-end-${runStamp(record.date)}${record.quick ? '-quick' : ''}.json`)
  writeFileSync(runFile, resultText(record))
  const written = [runFile]
  if (record.complete && existsSync(latestFile)) {
    const latest = JSON.parse(readFileSync(latestFile, 'utf8')) as Record<string, unknown>
    writeFileSync(latestFile, resultText({ ...latest, endToEnd: record }))
    written.push(latestFile)
  } else if (record.complete) {
    process.stderr.write(`bench:congestion: no ${relative(root, latestFile)} to add the end-to-end results to: run the grid first\n`)
  }
  return written.map((file) => relative(root, file))
}

async function mainEndToEnd(cells: readonly EndToEndCell[], quick: boolean, whole: boolean): Promise<number> {
  const started = performance.now()
  const system = systemInfo(root)
  const deliverySource = deliverySourceHash()
  const timing = quick ? quickEndToEndTiming : endToEndTiming
  process.stderr.write(`bench:congestion --end-to-end: ${cells.length} cells, one at a time, ${system.taskset ? 'server on CPU 1, clients on CPU 0' : 'not pinned'}\n`)
  const runs = await runEndToEnd(cells, timing, system.taskset)
  const failures = runs.filter((run) => run.result === null).map((run) => `${endToEndCellName(run.cell)}: ${run.failure ?? ''}`)
  const commit = currentCommit(root)
  const record: EndToEndRecord = {
    date: system.date,
    ...(commit === undefined ? {} : { commit }),
    deliverySource,
    addon: system.volley.addon,
    cpuModel: system.cpuModel,
    quick,
    complete: whole && failures.length === 0,
    timing,
    notes: endToEndNotes,
    seconds: (performance.now() - started) / 1000,
    summary: summarizeEndToEnd(runs),
    failures,
    runs,
  }
  console.log(renderEndToEnd(record))
  process.stderr.write(`results: ${writeEndToEnd(record).join(', ')}\n`)
  return failures.length > 0 ? 1 : 0
}

function label(record: CongestionRecord): RunLabel {
  return { date: record.system.date, commit: record.commit, deliverySource: record.deliverySource, quick: record.quick }
}

function writeSvg(record: CongestionRecord): string {
  writeFileSync(svgFile, renderSvg(record.cells, label(record)))
  return relative(root, svgFile)
}

async function main(): Promise<number> {
  const options = parseOptions()
  if (options.fromResults) {
    const record = JSON.parse(readFileSync(latestFile, 'utf8')) as CongestionRecord
    console.log(renderTables(record.cells, summarizeGrid(record.cells).targets, label(record), record.seconds, record.options.jobs))
    if (record.endToEnd !== undefined) console.log(`\n${renderEndToEnd(record.endToEnd)}`)
    process.stderr.write(`plot: ${writeSvg(record)} (from ${relative(root, latestFile)})\n`)
    return 0
  }
  if (options.endToEnd !== null) return mainEndToEnd(options.endToEnd.cells, options.quick, options.endToEnd.whole)
  const started = performance.now()
  const system = systemInfo(root)
  const deliverySource = deliverySourceHash()
  const binary = buildHarness()
  process.stderr.write(`bench:congestion: ${options.cells.length} cells, ${options.jobs} at a time, delivery sources ${deliverySource}\n`)
  const cells = await runGrid(binary, options.cells, options.quick, options.jobs)
  const seconds = (performance.now() - started) / 1000
  const { summary, targets } = summarizeGrid(cells)
  const failures = cells.filter((run) => run.result === null).map((run) => `${cellName(run.cell)}: ${run.failure ?? ''}`)
  const complete = options.wholeGrid && failures.length === 0
  const commit = currentCommit(root)
  const endToEnd = complete ? latestEndToEnd() : undefined
  const record = {
    schema: 1,
    benchmark: 'congestion',
    quick: options.quick,
    complete,
    failed: failures.length > 0,
    options: { jobs: options.jobs, cells: options.cells.length, wholeGrid: options.wholeGrid },
    system,
    ...(commit === undefined ? {} : { commit }),
    deliverySource,
    seconds,
    summary,
    targets,
    failures,
    cells,
    // The end-to-end part's latest figures stay with the grid's: a run of its own (--end-to-end) sets them.
    ...(endToEnd === undefined ? {} : { endToEnd }),
  }
  console.log(renderTables(cells, targets, label(record), seconds, options.jobs))
  // Part of the grid is a smoke run: its figures go to the -quick files only, not to the history.
  const written = writeResults('congestion', record, system.date, { quick: !options.wholeGrid, complete })
  if (complete) written.push(writeSvg(record))
  process.stderr.write(`results: ${written.join(', ')}\n`)
  return failures.length > 0 ? 1 : 0
}

runMain('bench:congestion', main)
