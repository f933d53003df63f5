// The engine's AEAD wrapper (native/protocol/netcode/aead.cc) driven by a small C++ program built here with ASan and
// UBSan (test/engine/harness/aead_check.cc): it needs g++ and libsodium-dev, so it runs with
// npm run test:toolchain (test/netcode/packet-aead.toolchain.test.ts: the rest, through the test bindings).
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

describe("the engine's AEAD wrapper, built on its own", () => {
  it('wraps libsodium\'s AEAD at every size with any associated data, in place too, writes no plaintext when it refuses, and gives RFC 8439\'s example', () => {
    const root = join(import.meta.dirname, '../..')
    const binary = join(mkdtempSync(join(tmpdir(), 'volley-aead-')), 'aead_check')
    const sources = ['test/engine/harness/aead_check.cc', 'native/protocol/netcode/aead.cc']
    execFileSync('g++', ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-fsanitize=address,undefined', '-Inative', ...sources, '-l:libsodium.a', '-o', binary], { cwd: root })
    const result = JSON.parse(execFileSync(binary, { encoding: 'utf8', timeout: 30_000 })) as Record<string, unknown>
    // 1,201 plaintext sizes (0 to 1200) × 3 associated data sizes; per case a flipped bit, a flipped byte of
    // the associated data where there is any (2,383 cases) and the size one short where there is a body (3,600).
    expect(result).toEqual({ cases: 3603, failures: 0, forgeriesRefused: 3603 + 2383 + 3600, noPlaintextOnForgery: true, untouchedOutOfRange: true, rangeRefused: true, rfc8439: true })
  }, 60_000)
})
