// An engine's socket ids wrap after 2^32 sockets; an id still in use must be passed over, or the new socket
// would share the old one's place in the I/O thread's tables (freed while listed: a use after free) and in
// JavaScript's. SocketIds alone (native/engine/socket_ids.h), built here with ASan and UBSan.
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '../..')

describe('socket ids', () => {
  it('skip 0 and every id still in use when they wrap', () => {
    const binary = join(mkdtempSync(join(tmpdir(), 'volley-socket-ids-')), 'check')
    execFileSync('g++', ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-fsanitize=address,undefined', '-Inative',
      'test/engine/harness/socket_ids_check.cc', '-o', binary], { cwd: root })
    const result = JSON.parse(execFileSync(binary, { encoding: 'utf8' })) as Record<string, number>
    // 2^32 - 1 is the highest; then 1 (held open) and 3 (not yet forgotten) are passed over, 2 (forgotten) is not.
    expect(result).toEqual({ first: 1, second: 2, last: 2 ** 32 - 2, highest: 2 ** 32 - 1, wrapped: 2, next: 4, fromZero: 1 })
  }, 60_000)
})
