// How much a peer's copy of its 256 bytes of user data costs the server's JS thread: a buffer of its own
// (Uint8Array.prototype.slice, as the server did), a view carved from a shared buffer (as it did next), and
// the shared buffer and an offset, which is what a Peer keeps now (the server's UserDataCopies). CPU time of the whole process (the garbage collector's threads included) per copy, with
// the copies kept alive for 30,000 at a time, as peers are. Run: npx tsx bench/micro/user-data-copies.ts
import { UserDataCopies } from '../../src/api/server.ts'

const slab = new Uint8Array(256 * 1024).fill(7)
const copiesPerRun = 300_000
const kept: unknown[] = []

function cpuPerCopyNs(copy: (i: number) => unknown): number {
  kept.length = 0
  const before = process.cpuUsage()
  for (let i = 0; i < copiesPerRun; i++) {
    kept.push(copy(i))
    if (kept.length === 30_000) kept.length = 0
  }
  const used = process.cpuUsage(before)
  return ((used.user + used.system) * 1000) / copiesPerRun
}

const at = (i: number): number => (i & 511) * 8
const copies = new UserDataCopies()
let pool = new ArrayBuffer(0)
let next = 16
const results: Record<string, number[]> = { slice: [], view: [], 'pool and offset': [] }
for (let round = 0; round < 5; round++) {
  results.slice!.push(cpuPerCopyNs((i) => slab.slice(at(i), at(i) + 256)))
  results.view!.push(
    cpuPerCopyNs((i) => {
      // The former UserDataCopies: a view of its own per copy into the shared buffer.
      if (next === 16) {
        pool = new ArrayBuffer(256 * 16)
        next = 0
      }
      const view = new Uint8Array(pool, next++ * 256, 256)
      view.set(slab.subarray(at(i), at(i) + 256))
      return view
    }),
  )
  results['pool and offset']!.push(cpuPerCopyNs((i) => (copies.copy(slab, at(i)), copies.pool)))
}
for (const [name, values] of Object.entries(results)) {
  console.log(`${name}: ${values.map((ns) => Math.round(ns)).join(', ')} ns CPU per copy (5 rounds, interleaved)`)
}
