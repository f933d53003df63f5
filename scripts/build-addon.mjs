#!/usr/bin/env node
// `volley build-addon`: builds the native addon from source where the prebuild does not load (another
// platform, another libc), with node-gyp-build, which builds nothing where it does. npm install runs no
// script of volley's (so npm has nothing to ask approval for): where no prebuild fits, Server, Client and
// datagram sockets run on the fallback engine (node:dgram, the protocol cores as WebAssembly) until this
// builds the addon. Exit status 1 when no addon could be built, with what to install.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..')
const needs = 'a C++17 compiler, make, python3 and a static libsodium (Debian: apt-get install g++ make python3 libsodium-dev)'

// The addon is made of Linux's epoll and recvmmsg: elsewhere no build is tried (it could only fail, at length).
if (process.platform !== 'linux') {
  process.stderr.write(
    `volley build-addon: the native addon is for Linux (epoll, recvmmsg); on ${process.platform}, Server, Client and ` +
      'datagram sockets run on the fallback engine (node:dgram, with the protocol cores as WebAssembly).\n',
  )
  process.exit(1)
}

let why
try {
  const bin = createRequire(join(packageRoot, 'package.json')).resolve('node-gyp-build/bin.js')
  const build = spawnSync(process.execPath, [bin], { cwd: packageRoot, stdio: 'inherit' })
  if (build.status === 0) {
    process.stderr.write('volley build-addon: the native addon loads (the prebuild, or the build in build/Release).\n')
    process.exit(0)
  }
  why = build.error ? build.error.message : build.signal ? `signal ${build.signal}` : `exit status ${build.status}`
} catch (error) {
  why = `node-gyp-build could not run: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`
}
process.stderr.write(
  `volley build-addon: no prebuilt addon fits this platform and building one failed (${why}).\n` +
    `Install ${needs}, then run \`npx volley build-addon\` again. Meanwhile Server, Client and datagram sockets ` +
    'run on the fallback engine (node:dgram, with the protocol cores as WebAssembly).\n',
)
process.exit(1)
