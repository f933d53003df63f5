// The native server core driven by small C++ programs built here (test/engine/harness/): what it leaves in
// memory it gives back, and what it allocates. They need g++ and libsodium-dev, so they run with
// npm run test:toolchain (test/netcode/server-core.toolchain.test.ts: the rest, through the test bindings).
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

describe('the native core with many handshakes at once', () => {
  it('gives back no memory that holds one of their keys', () => {
    // Its table of handshakes grew by moving them, and the blocks it left held their keys: the first
    // handshake's turned up in 6 of them, while it was still pending (test/engine/harness/handshake_keys_check.cc).
    const root = join(import.meta.dirname, '../..')
    const binary = join(mkdtempSync(join(tmpdir(), 'volley-handshake-keys-')), 'check')
    const sources = ['server', 'connect_token', 'packet', 'challenge_token', 'aead', 'server_address'].map((name) => `native/protocol/netcode/${name}.cc`)
    execFileSync('g++', ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-Inative', 'test/engine/harness/handshake_keys_check.cc', ...sources, 'native/util/address.cc', '-l:libsodium.a', '-o', binary], { cwd: root })
    expect(JSON.parse(execFileSync(binary, { encoding: 'utf8' }))).toEqual({ challenges: 40, freedWithKey: 0 })
  }, 60_000)
})

describe('the native core disconnecting clients over and over', () => {
  it('sends its redundant disconnect packets without allocating once its queues have grown', () => {
    // Eight clients connected (real ClientCores) and disconnected three times; the third time's 80 farewell
    // packets took 16 allocations while the queue was a std::deque (test/engine/harness/farewell_allocations_check.cc).
    const root = join(import.meta.dirname, '../..')
    const binary = join(mkdtempSync(join(tmpdir(), 'volley-farewell-allocations-')), 'check')
    const sources = ['server', 'client', 'connect_token', 'packet', 'challenge_token', 'aead', 'server_address'].map((name) => `native/protocol/netcode/${name}.cc`)
    execFileSync('g++', ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-Inative', '-I.', 'test/engine/harness/farewell_allocations_check.cc', ...sources, 'native/util/address.cc', '-l:libsodium.a', '-o', binary], { cwd: root })
    expect(JSON.parse(execFileSync(binary, { encoding: 'utf8' }))).toEqual({ connected: 24, farewellPackets: 80, allocations: 0 })
  }, 60_000)
})
