// What every benchmark entry point shares: where results go, how a failure reads, the pause between
// runs, and a main() that always kills its child processes.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ChildFailure, killAllChildren } from './processes.ts'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const benchDir = join(root, 'bench')

/**
 * Writes bench/results/<kind>-<date><suffix>.json, and latest-<kind><suffix>.json when the run is
 * `complete` (every case, the default repeats, no failure): a partial or failed run never stands for the
 * latest. Returns the paths written.
 */
export function writeResults(kind: string, record: object, date: string, suffix: string, complete: boolean): string[] {
  const dir = join(benchDir, 'results')
  mkdirSync(dir, { recursive: true })
  // 2026-11-21T06:12:34.567Z -> 2026-11-21T0612
  const stamp = `${date.slice(0, 10)}T${date.slice(11, 13)}${date.slice(14, 16)}`
  const files = [join(dir, `${kind}-${stamp}${suffix}.json`), ...(complete ? [join(dir, `latest-${kind}${suffix}.json`)] : [])]
  // NaN (a figure that could not be measured) becomes null in JSON. Arrays of numbers (samples such as the
  // ping's 5,000 RTTs) take one line each, not a line per number.
  const text = `${JSON.stringify(record, null, 2).replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g, (_, items: string) => `[${items.split(/,\s+/).join(', ')}]`)}\n`
  for (const file of files) writeFileSync(file, text)
  return files.map((file) => file.slice(root.length))
}

/** The command that writes README's and performance.md's figures from the result files. */
export const historyCommand = 'npx tsx bench/history.ts --write README.md --write docs/performance.md'

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
