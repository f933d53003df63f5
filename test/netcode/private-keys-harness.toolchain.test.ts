// The native server core's private keys, checked by a small C++ program built here
// (test/engine/harness/private_keys_check.cc): no copy of a key is left in its memory once the key is gone,
// and requests opened under the current key or under one in its grace allocate nothing. It needs g++ and
// libsodium-dev (test/netcode/private-keys.toolchain.test.ts: the rest, through the test bindings).
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

describe("the native core's private keys", () => {
  it('leave no copy behind once gone, and requests under any of them allocate nothing', () => {
    const root = join(import.meta.dirname, '../..')
    const binary = join(mkdtempSync(join(tmpdir(), 'volley-private-keys-')), 'check')
    const sources = ['server', 'connect_token', 'packet', 'challenge_token', 'aead', 'server_address'].map((name) => `native/protocol/netcode/${name}.cc`)
    execFileSync('g++', ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-Inative', '-I.', 'test/engine/harness/private_keys_check.cc', ...sources, 'native/util/address.cc', '-l:libsodium.a', '-o', binary], { cwd: root })
    expect(JSON.parse(execFileSync(binary, { encoding: 'utf8' }))).toEqual({
      // The set alone: a key whose grace ended, one dropped past the cap, one replaced with a grace of 0 (and one
      // taken back from its older place, held once), and every key once it is destroyed.
      afterExpiry: 0,
      afterCap: 0,
      afterZeroGrace: 0,
      held: 3,
      afterDestruction: 0,
      // The core holds each of its two keys once: the copies in its config are wiped.
      coreCopies: 2,
      // Each token's first request is challenged; the next 200 are opened (100 under the previous key) and refused.
      challenges: 2,
      previousKeyRequests: 101,
      tokenRefused: 200,
      allocations: 0,
      // Its grace over, the previous key is gone from the core's memory.
      keysAfterGrace: 1,
      previousLeft: 0,
    })
  }, 60_000)
})
