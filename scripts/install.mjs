#!/usr/bin/env node
// npm's install step: keep the prebuild where it loads, else build the addon from source (node-gyp-build).
// Where neither works (no prebuild for this platform, no compiler or no libsodium.a) the install still
// succeeds: Server, Client and datagram sockets run on the fallback engine (node:dgram, the protocol cores as
// WebAssembly), and say so once at run time. A failed install would take the whole dependency tree down with
// it, fallback and all.
// A failed build fails the step where it was asked for: `npm rebuild volley` (the run-time warning's advice),
// or VOLLEY_REQUIRE_ADDON=1, for deployments that must run natively.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..')
const strict = process.env.VOLLEY_REQUIRE_ADDON === '1' || process.env.npm_command === 'rebuild'

// The addon is made of Linux's epoll and recvmmsg: elsewhere no build is tried (it could only fail, at length).
if (process.platform !== 'linux') {
  process.stderr.write(
    `\nvolley: the native addon is for Linux (epoll, recvmmsg); on ${process.platform}, Server, Client and datagram sockets ` +
      'run on the fallback engine (node:dgram, with the protocol cores as WebAssembly).\n' +
      (strict ? `${process.env.VOLLEY_REQUIRE_ADDON === '1' ? 'VOLLEY_REQUIRE_ADDON=1 is set' : 'npm rebuild asked for the addon'}, so this step fails.\n` : '') +
      '\n',
  )
  process.exit(strict ? 1 : 0)
}

let why
try {
  const bin = createRequire(join(packageRoot, 'package.json')).resolve('node-gyp-build/bin.js')
  const build = spawnSync(process.execPath, [bin], { cwd: packageRoot, stdio: 'inherit' })
  if (build.status === 0) process.exit(0)
  why = build.error ? build.error.message : build.signal ? `signal ${build.signal}` : `exit status ${build.status}`
} catch (error) {
  why = `node-gyp-build could not run: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`
}
process.stderr.write(
  `\nvolley: no prebuilt addon fits this platform and building one failed (${why}).\n` +
    (strict
      ? `${process.env.VOLLEY_REQUIRE_ADDON === '1' ? 'VOLLEY_REQUIRE_ADDON=1 is set' : 'npm rebuild asked for the addon'}, so this step fails.\n`
      : 'Server, Client and datagram sockets will run on the fallback engine (node:dgram, with the protocol cores as WebAssembly).\n') +
    'To build the native addon: install a C++17 compiler, make, python3 and a static libsodium (Debian: libsodium-dev), then `npm rebuild volley`.\n\n',
)
process.exit(strict ? 1 : 0)
