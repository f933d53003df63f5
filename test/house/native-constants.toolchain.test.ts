// The TypeScript files that carry native constants are generated from the C++ headers (scripts/emit-constants.cc):
// a constant is written once, in C++. A committed file that differs from what the headers give fails here.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
// @ts-expect-error plain ESM script without declarations
import { emitConstants, generatedFiles, staleFiles } from '../../scripts/generate-constants.mjs'
import { netcodeDefaults, sizes } from '../../src/protocol/netcode/constants.ts'
import { layout } from '../../src/engine/layout.ts'

const root = join(import.meta.dirname, '..', '..')
const emitted = emitConstants() as Record<string, string>

describe('native constants in TypeScript', () => {
  it('are what the C++ headers say: every generated file is current', () => {
    expect(Object.keys(emitted).sort()).toEqual(Object.values(generatedFiles as Record<string, string>).sort())
    expect(staleFiles(emitted)).toEqual([])
  })

  it('carry the values the cores use (spot checks against the standard and the layout)', () => {
    expect(sizes.connectionRequest).toBe(1 + 13 + 8 + 8 + 24 + 1024)
    expect(netcodeDefaults.keepAliveIntervalMs).toBe(100)
    expect(layout.slabSize).toBe(256 * 1024)
  })

  it('names a file that differs, and one that is missing', () => {
    const copy = mkdtempSync(join(tmpdir(), 'volley-constants-'))
    try {
      cpSync(join(root, 'src'), join(copy, 'src'), { recursive: true })
      const [first, second] = Object.keys(emitted) as [string, string]
      writeFileSync(join(copy, first), emitted[first]!.replace('= {', '= { /* edited */'))
      rmSync(join(copy, second))
      expect(staleFiles(emitted, copy).sort()).toEqual([first, second].sort())
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
  })
})
