// Writes where each benchmark target stands and every full run's figures, from the result files, into the
// documents' marked parts (bench/lib/history.ts); without --write, prints them.
//   npx tsx bench/history.ts [--write README.md --write docs/performance.md --write bench/results/history.md]
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { history, rewrite, targetsTable } from './lib/history.ts'

const { values } = parseArgs({ options: { write: { type: 'string', multiple: true } } })
if (values.write === undefined) {
  console.log(`${targetsTable('bench/results')}\n\n${history('bench/results')}`)
} else {
  for (const file of values.write) {
    writeFileSync(file, rewrite(file))
    console.log(`targets and history written to ${file}`)
  }
}
