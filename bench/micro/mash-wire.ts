// What the MASH wire codec costs per message on the JS thread: encodeMessage() of a notification of 10
// float attributes next to cborg's own encode() of the same Map (the floor: the codec adds its value checks
// and the canonical key order), and of a payload whose keys mix integers and text (where cborg's order is
// not the canonical one); decodeMessage() of a small read request next to cborg's decode() of it, and of
// bad messages, which a peer may send in a flood (each should cost about what a good one does). Wall time
// per call by performance.now() over 100,000 calls after a warm-up, the median of 5 rounds.
//   npx tsx bench/micro/mash-wire.ts [--wire <a wire.ts or wire.js to measure instead>] [--calls N]
// --wire measures another version side by side (e.g. `git show <commit>:src/sessions/mash/wire.ts` saved
// next to a copy of src/util/errors.ts, so that its relative import resolves).
import { resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { decode, encode } from 'cborg'
import type { MashMessage, MashValue } from '../../src/sessions/mash/wire.ts'

const { values } = parseArgs({ options: { wire: { type: 'string' }, calls: { type: 'string', default: '100000' } } })
const wire = (await import(values.wire === undefined ? '../../src/sessions/mash/wire.ts' : pathToFileURL(resolve(values.wire)).href)) as typeof import('../../src/sessions/mash/wire.ts')
const calls = Number(values.calls)

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.split(' '), (pair) => parseInt(pair, 16))
}

/** Median ns per call of `run` over `calls` calls, 5 rounds after one unmeasured. */
function nsPerCall(run: () => unknown, callCount = calls): number {
  const rounds: number[] = []
  let sink: unknown
  for (let round = 0; round < 6; round++) {
    const start = performance.now()
    for (let i = 0; i < callCount; i++) sink = run()
    const ns = ((performance.now() - start) * 1e6) / callCount
    if (round > 0) rounds.push(ns)
  }
  if (sink === Symbol.for('never')) console.log(sink)
  rounds.sort((a, b) => a - b)
  return rounds[2]!
}

const changes = new Map<number, MashValue>(Array.from({ length: 10 }, (_, at): [number, MashValue] => [at + 1, 230.25 + at * 0.5]))
const notification: MashMessage = { kind: 'notification', subscriptionId: 5001, endpointId: 1, featureId: 2, changes }
const notificationFields = new Map<number, MashValue>([
  [1, 0],
  [2, 5001],
  [3, 1],
  [4, 2],
  [5, changes],
])
// Keys of two types (integers and text): the canonical order is not cborg's, so these go through its tokens.
const mixedKeys = new Map<number | string, MashValue>(Array.from({ length: 10 }, (_, at): [number | string, MashValue] => [at % 2 === 0 ? at : `p${at}`, 230.25 + at * 0.5]))
const mixedResponse: MashMessage = { kind: 'response', messageId: 7, status: 0, payload: mixedKeys }
const readRequest = hex('a5 01 07 02 01 03 01 04 02 05 a1 01 83 01 02 03')
const bad: [string, Uint8Array][] = [
  ['duplicate key in the payload', hex('a5 01 07 02 02 03 01 04 02 05 a2 15 01 15 02')],
  ['duplicate key 1', hex('a5 01 07 01 08 02 01 03 01 04 02')],
  ['NaN in the payload', hex('a5 01 07 02 02 03 01 04 02 05 a1 15 f9 7e 00')],
  ['undefined as payload', hex('a3 01 07 02 00 03 f7')],
  ['integer not in its shortest form', hex('a2 01 18 07 02 00')],
  ['truncated', hex('a5 01 07 02 01 03 01 04 02 05 a1 01 83 01 02')],
  ['text top-level key', hex('a2 01 07 61 61 01')],
]
// A tag-2 bignum of 8,000 bytes: a MASH value is at most 64 bits.
const bignum = new Uint8Array(12 + 8000)
bignum.set(hex('a3 01 07 02 00 03 a1 01 c2 59 1f 40'))
bignum.fill(0xff, 12)

const rows: [string, number][] = [
  ['encodeMessage(notification of 10 floats)', nsPerCall(() => wire.encodeMessage(notification))],
  ["cborg encode() of the same Map (cborg's own order)", nsPerCall(() => encode(notificationFields, { float64: true }))],
  ['encodeMessage(response of 10 floats, integer and text keys)', nsPerCall(() => wire.encodeMessage(mixedResponse))],
  ['decodeMessage(read request, 16 bytes)', nsPerCall(() => wire.decodeMessage(readRequest))],
  ['cborg decode() of it ({ useMaps: true })', nsPerCall(() => decode(readRequest, { useMaps: true }))],
]
for (const [name, bytes] of bad) rows.push([`decodeMessage(${name})`, nsPerCall(() => wire.decodeMessage(bytes))])
rows.push(['decodeMessage(8,000-byte bignum)', nsPerCall(() => wire.decodeMessage(bignum), Math.max(10, Math.floor(calls / 1000)))])

const width = Math.max(...rows.map(([name]) => name.length))
for (const [name, ns] of rows) console.log(`${name.padEnd(width)}  ${(ns / 1000).toFixed(2).padStart(9)} µs`)
