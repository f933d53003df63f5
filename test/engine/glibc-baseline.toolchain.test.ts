// On glibc x64 the addon needs no newer C library than Node's own binaries (glibc 2.28): native/napi/glibc_baseline.cc
// stands in for what a newer glibc would give it. The stand-ins are checked here against what they stand in
// for, in a program linked as the addon is (the same --wrap list, read from binding.gyp), and the addon that
// loads is checked for the libraries and symbol versions it needs.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { nativeInfo } from '../../src/index.ts'
// @ts-expect-error: a plain ES module of the build scripts, without types
import { checkLibraryBaseline, prebuildPath } from '../../scripts/check-prebuild.mjs'

const root = join(import.meta.dirname, '../..')
const isGlibcX64 = process.platform === 'linux' && process.arch === 'x64' && Boolean((process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime)

/** The functions each build sends to the stand-ins (binding.gyp's and CMakeLists.txt's --wrap lists). */
function wrapped(file: string): string[] {
  return [...readFileSync(join(root, file), 'utf8').matchAll(/--wrap=(\w+)/g)].map((match) => match[1]!).sort()
}

describe.runIf(isGlibcX64)('the addon on glibc x64', () => {
  it('wraps the same functions in both builds, each with a stand-in', () => {
    const gyp = wrapped('binding.gyp')
    expect(gyp).toEqual(['fstat', 'pthread_create', 'pthread_detach', 'pthread_join', 'pthread_mutex_trylock', 'pthread_setname_np'])
    expect(wrapped('CMakeLists.txt')).toEqual(gyp)
    const source = readFileSync(join(root, 'native/napi/glibc_baseline.cc'), 'utf8')
    for (const name of gyp) expect(source).toContain(`__wrap_${name}(`)
  })

  it('stand-ins do what glibc does: fstat, threads, try-lock, thread names, arc4random', () => {
    const directory = mkdtempSync(join(tmpdir(), 'volley-glibc-'))
    const binary = join(directory, 'glibc_baseline_check')
    const wraps = wrapped('binding.gyp').map((name) => `-Wl,--wrap=${name}`)
    execFileSync(
      'g++',
      ['-std=c++17', '-O1', '-Wall', '-Wextra', '-Inative', 'test/engine/harness/glibc_baseline_check.cc', 'native/napi/glibc_baseline.cc',
        '-static-libstdc++', ...wraps, '-l:libsodium.a', '-pthread', '-o', binary],
      { cwd: root },
    )
    const target = join(root, 'package.json')
    const result = JSON.parse(execFileSync(binary, [target], { encoding: 'utf8', timeout: 10_000 })) as Record<string, unknown>
    expect(result).toEqual({
      fstat: 0,
      size: statSync(target).size,
      regular: true,
      tryLockWhileHeld: false,
      tryLockWhenFree: true,
      threadName: 'volley-check',
      detachedRan: true,
      arc4randomVaries: true,
    })
    // And it reached them through glibc's old symbols, and none of libstdc++'s.
    const symbols = execFileSync('objdump', ['-T', binary], { encoding: 'utf8' })
    expect(symbols).toMatch(/\(GLIBC_2\.2\.5\)\s+__fxstat$/m)
    expect(symbols).toMatch(/\(GLIBC_2\.2\.5\)\s+pthread_create$/m)
    expect(symbols).toMatch(/\(GLIBC_2\.12\)\s+pthread_setname_np$/m)
    expect(symbols).not.toMatch(/GLIBC_2\.(29|3\d)\)\s+(fstat|pthread_\w+|__libc_single_threaded|arc4random)$/m)
    expect(symbols).not.toMatch(/GLIBCXX|CXXABI/)
  })

  it('the addon that loads needs no newer libraries than Node', () => {
    expect(checkLibraryBaseline(nativeInfo().path)).toBe(true)
  })

  it('nor does the committed prebuild', () => {
    expect(checkLibraryBaseline(prebuildPath())).toBe(true)
  })
})
