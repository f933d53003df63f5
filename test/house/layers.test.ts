// The source folders are layers, each built only on those below it: util, the protocols, the engines, the
// public API, the session protocols, the metrics exporters, the command line. An import that points up a layer fails here, with the
// file and the import named. (src/index.ts is the API's entry point.) native/ likewise, by its includes: util,
// the protocol cores, the socket protocols, then the I/O engine with its N-API binding beside the WebAssembly
// exports, and the test bindings, which the shipped addon's build leaves out.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const src = join(import.meta.dirname, '..', '..', 'src')

/** Lowest first: a file may import from its own layer and the ones before it. */
const layers = ['util', 'protocol', 'engine', 'api', 'sessions', 'metrics', 'cli'] as const

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

const native = join(import.meta.dirname, '..', '..', 'native')

/**
 * What each folder of native/ may include besides itself: the protocol cores, the socket protocols made of them,
 * then the two engines side by side, the I/O thread's (with its N-API face) and WebAssembly's, which runs the
 * socket protocols under JavaScript's I/O.
 */
const nativeLayers: Readonly<Record<string, readonly string[]>> = {
  util: [],
  protocol: ['util'],
  sockets: ['util', 'protocol'],
  engine: ['util', 'protocol', 'sockets'],
  napi: ['util', 'protocol', 'sockets', 'engine'],
  wasm: ['util', 'protocol', 'sockets'],
  testing: ['util', 'protocol', 'sockets', 'engine', 'napi'],
}

/** The includes of native/ that reach a folder their own may not, as "file -> include". */
function upwardIncludes(root = native): string[] {
  const wrong: string[] = []
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !/\.(h|cc)$/.test(entry.name)) continue
    const file = join(entry.parentPath, entry.name)
    const path = relative(root, file)
    const own = path.split('/')[0]!
    const allowed = nativeLayers[own]
    if (allowed === undefined || !path.includes('/')) throw new Error(`native/${path} is in no layer (${Object.keys(nativeLayers).join(', ')}): put it in one`)
    for (const match of readFileSync(file, 'utf8').matchAll(/^#include "([^"/]+)\/[^"]+"/gm)) {
      const theirs = match[1]!
      if (theirs !== own && !allowed.includes(theirs)) wrong.push(`native/${path} (${own}) includes ${match[0].slice('#include '.length)} (${theirs})`)
    }
  }
  return wrong.sort()
}

/** The native sources a build description names for the shipped addon: binding.gyp's volley target, CMakeLists.txt's library. */
function shippedSources(): string[] {
  const root = join(native, '..')
  const gyp = readFileSync(join(root, 'binding.gyp'), 'utf8')
  const volley = gyp.slice(gyp.indexOf('"target_name": "volley"'), gyp.indexOf('"target_name": "volley_testing"'))
  const cmake = readFileSync(join(root, 'CMakeLists.txt'), 'utf8')
  const library = cmake.slice(cmake.indexOf('add_library('), cmake.indexOf(')', cmake.indexOf('add_library(')))
  return [...volley.matchAll(/"(native\/[^"]+\.cc)"/g), ...library.matchAll(/^\s*(native\/\S+\.cc)$/gm)].map((match) => match[1]!)
}

describe('native layers', () => {
  it('every file of native/ is in a layer, and no include reaches a layer above', () => {
    expect(upwardIncludes()).toEqual([])
  })

  it('names an include that reaches up, and a file in no layer', () => {
    const root = mkdtempSync(join(tmpdir(), 'volley-native-layers-'))
    try {
      mkdirSync(join(root, 'util'))
      mkdirSync(join(root, 'sockets'))
      mkdirSync(join(root, 'wasm'))
      writeFileSync(join(root, 'util', 'address.h'), '#include <cstdint>\n#include "util/bytes.h"\n#include "engine/engine.h"\n')
      writeFileSync(join(root, 'sockets', 'socket_protocol.h'), '#include "protocol/netcode/server.h"\n#include "engine/layout.h"\n')
      writeFileSync(join(root, 'wasm', 'exports.cc'), '#include "sockets/socket_protocol.h"\n#include "engine/engine.h"\n#include "napi/binding_args.h"\n')
      expect(upwardIncludes(root)).toEqual([
        'native/sockets/socket_protocol.h (sockets) includes "engine/layout.h" (engine)',
        'native/util/address.h (util) includes "engine/engine.h" (engine)',
        'native/wasm/exports.cc (wasm) includes "engine/engine.h" (engine)',
        'native/wasm/exports.cc (wasm) includes "napi/binding_args.h" (napi)',
      ])
      writeFileSync(join(root, 'loose.h'), '')
      expect(() => upwardIncludes(root)).toThrow('native/loose.h is in no layer')
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it("builds the shipped addon without the test bindings, in both build descriptions", () => {
    const sources = shippedSources()
    expect(sources).toContain('native/napi/binding.cc')
    expect(sources.filter((source) => source === 'native/napi/binding.cc')).toHaveLength(2)
    expect(sources.filter((source) => source.startsWith('native/testing/'))).toEqual([])
  })
})
