// The source folders are layers, each built only on those below it: util, the protocols, the engines, the
// public API, the session protocols, the command line. An import that points up a layer fails here, with the
// file and the import named. (src/index.ts is the API's entry point.)
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const src = join(import.meta.dirname, '..', '..', 'src')

/** Lowest first: a file may import from its own layer and the ones before it. */
const layers = ['util', 'protocol', 'engine', 'api', 'sessions', 'cli'] as const

function layerOf(file: string, root: string): number {
  const path = relative(root, file)
  const top = path === 'index.ts' ? 'api' : path.split('/')[0]
  const index = layers.indexOf(top as (typeof layers)[number])
  if (index < 0) throw new Error(`src/${path} is in no layer (${layers.join(', ')}): put it in one`)
  return index
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

/** Relative module specifiers of static imports, re-exports and dynamic imports. */
function importsOf(text: string): string[] {
  const found: string[] = []
  for (const match of text.matchAll(/(?:^|[\s;])(?:import|export)\b[^'"`;]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/gm)) {
    found.push((match[1] ?? match[2])!)
  }
  return found
}

/** The imports of src that point up a layer, as "file -> import (layer)". */
function upwardImports(root = src): string[] {
  const wrong: string[] = []
  for (const file of sourceFiles(root)) {
    const own = layerOf(file, root)
    for (const specifier of importsOf(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), specifier)
      if (!target.startsWith(root)) continue
      const theirs = layerOf(target, root)
      if (theirs > own) wrong.push(`src/${relative(root, file)} (${layers[own]}) imports ${specifier} (${layers[theirs]})`)
    }
  }
  return wrong
}

describe('source layers', () => {
  it('every file of src is in a layer, and no import points up a layer', () => {
    expect(upwardImports()).toEqual([])
  })

  it('names an import that points up a layer, and a file in no layer', () => {
    const root = mkdtempSync(join(tmpdir(), 'volley-layers-'))
    try {
      mkdirSync(join(root, 'util'))
      mkdirSync(join(root, 'api'))
      writeFileSync(join(root, 'api', 'server.ts'), "import { copyBytes } from '../util/bytes.ts'\n")
      writeFileSync(join(root, 'util', 'bytes.ts'), "import type { Server } from '../api/server.ts'\n")
      expect(upwardImports(root)).toEqual(['src/util/bytes.ts (util) imports ../api/server.ts (api)'])
      writeFileSync(join(root, 'helpers.ts'), '')
      expect(() => upwardImports(root)).toThrow('src/helpers.ts is in no layer')
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('finds an import that points up, a re-export and a dynamic import', () => {
    expect(importsOf("import { a } from '../api/server.ts'\nexport { b } from './c.ts'\nconst d = await import('../cli/volley.ts')\nimport type { E } from 'node:fs'")).toEqual([
      '../api/server.ts',
      './c.ts',
      '../cli/volley.ts',
    ])
  })
})
