// How much a peer's copy of its 256 bytes of user data costs the server's JS thread: a buffer of its own
// (Uint8Array.prototype.slice, as the server did) against a view carved from a shared buffer (the server's
// UserDataCopies). CPU time of the whole process (the garbage collector's threads included) per copy, with
// the copies kept alive for 30,000 at a time, as peers are. Run: npx tsx bench/micro/user-data-copies.ts
import { UserDataCopies } from '../../src/server.ts'

const slab = new Uint8Array(256 * 1024).fill(7)
const copiesPerRun = 300_000
const kept: Uint8Array[] = []

function cpuPerCopyNs(copy: (i: number) => Uint8Array): number {
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
const results: Record<string, number[]> = { slice: [], view: [] }
for (let round = 0; round < 5; round++) {
  results.slice!.push(cpuPerCopyNs((i) => slab.slice(at(i), at(i) + 256)))
  results.view!.push(cpuPerCopyNs((i) => copies.copy(slab, at(i))))
}
for (const [name, values] of Object.entries(results)) {
  console.log(`${name}: ${values.map((ns) => Math.round(ns)).join(', ')} ns CPU per copy (5 rounds, interleaved)`)
}
