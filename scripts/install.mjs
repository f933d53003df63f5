#!/usr/bin/env node
// npm's install step: keep the prebuild where it loads, else build the addon from source (node-gyp-build).
// Where neither works (no prebuild for this platform, no compiler or no libsodium.a) the install still
// succeeds: Server, Client and datagram sockets run on the pure-TypeScript fallback engine, and say so once
// at run time. A failed install would take the whole dependency tree down with it, fallback and all.
// VOLLEY_REQUIRE_ADDON=1 makes a failed build fail the install, for deployments that must run natively.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'

// npm runs the script in the package's directory; node-gyp-build resolves from there as the package does.
const require = createRequire(join(process.cwd(), 'package.json'))
const build = spawnSync(process.execPath, [require.resolve('node-gyp-build/bin.js')], { stdio: 'inherit' })
if (build.status === 0) process.exit(0)

const why = build.error ? build.error.message : build.signal ? `signal ${build.signal}` : `exit status ${build.status}`
const strict = process.env.VOLLEY_REQUIRE_ADDON === '1'
process.stderr.write(
  `\nvolley: no prebuilt addon fits this platform and building one failed (${why}).\n` +
    (strict
      ? 'VOLLEY_REQUIRE_ADDON=1 is set, so the install fails.\n'
      : 'Server, Client and datagram sockets will run on the pure-TypeScript fallback engine (node:dgram, libsodium-wrappers).\n') +
    'To build the native addon: install a C++17 compiler, make, python3 and a static libsodium (Debian: libsodium-dev), then `npm rebuild volley`.\n\n',
)
process.exit(strict ? 1 : 0)
