// What every benchmark entry point shares: where results go, how a failure reads, the pause between
// runs, and a main() that always kills its child processes.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { appendHistoryLine, type Benchmark, currentCommit, historyFile, historyLine, runStamp } from './history-lines.ts'
import { ChildFailure, killAllChildren } from './processes.ts'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const benchDir = join(root, 'bench')

/** What a run of a benchmark with a history is, for the files it writes. */
export interface RunKind {
  /** '-gso': the datagram benchmark's saturating run, whose figures are kept apart from the plain run's. */
  variant?: '-gso'
  /** A smoke run: its figures are no measurement, so it writes neither the history nor the latest result. */
  quick: boolean
  /** Every case, the default repeats, no failure: only such a run stands for the latest. */
  complete: boolean
}

/**
 * A record as the result files hold it: NaN (a figure that could not be measured) becomes null in JSON. Arrays
 * of numbers (samples such as the ping's 5,000 RTTs) take one line each, not a line per number.
 */
export function resultText(record: object): string {
  return `${JSON.stringify(record, null, 2).replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g, (_, items: string) => `[${items.split(/,\s+/).join(', ')}]`)}\n`
}

/**
 * Writes a run: its full record to bench/results/runs/ (kept on this machine only), a line of its figures to
 * <kind>-history.jsonl, and its full record again as latest-<kind>.json when it is complete. A quick run
 * writes latest-<kind>-quick.json instead (not committed either). Returns the paths written.
 */
export function writeResults(kind: Benchmark, record: object, date: string, run: RunKind, dir = join(benchDir, 'results')): string[] {
  mkdirSync(join(dir, 'runs'), { recursive: true })
  const stamp = `${runStamp(date)}${run.variant ?? ''}`
  const quick = run.quick ? '-quick' : ''
  const text = resultText(record)
  const files = [join(dir, 'runs', `${kind}-${stamp}${quick}.json`)]
  if (run.quick) files.push(join(dir, `latest-${kind}${run.variant ?? ''}-quick.json`))
  else if (run.complete) files.push(join(dir, `latest-${kind}${run.variant ?? ''}.json`))
  for (const file of files) writeFileSync(file, text)
  if (!run.quick) {
    const commit = currentCommit(root)
    appendHistoryLine(dir, kind, { ...historyLine(kind, record, stamp, commit === undefined ? {} : { commit }), complete: run.complete })
    files.push(historyFile(dir, kind))
  }
  return files.map((file) => relative(root, file))
}

/** The command that writes README's and performance.md's figures from the result files. */
export const historyCommand = 'npx tsx bench/history.ts --write README.md --write docs/performance.md --write bench/results/history.md'

/** The closing line of a run: the files written, and (not for a quick run) how to quote them. */
export function resultsLine(written: string[], quick: boolean, detail = ''): string {
  return `results: ${written.join(', ')}${detail}${quick ? '' : `; to quote them in the documents: ${historyCommand}`}`
}

export function describeFailure(error: unknown): string {
  if (error instanceof ChildFailure) return error.message
  return error instanceof Error ? error.message : String(error)
}

export function settle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Runs main() to its exit code; children are killed whatever happens. */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => {
      killAllChildren()
      process.exitCode = code
    },
    (error: unknown) => {
      killAllChildren()
      process.stderr.write(`${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      process.exitCode = 1
    },
  )
}
