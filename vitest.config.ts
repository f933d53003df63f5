import { defineConfig } from 'vitest/config'

/**
 * Suites that build C or C++ programs of their own (g++, gcc, libsodium-dev; emscripten for a testing build of
 * the WebAssembly cores), load the test bindings' addon (`npm run build:native` builds it) or read binaries
 * (objdump): not in npm test, which needs nothing but npm install; npm run test:toolchain runs them
 * (vitest.toolchain.config.ts).
 */
export const toolchainSuites = 'test/**/*.toolchain.test.ts'

/** Suites that start a redis-server of their own (Debian's, on PATH): npm run test:redis (vitest.redis.config.ts). */
export const redisSuites = 'test/**/*.redis.test.ts'

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    setupFiles: ['test/setup/process-warnings.ts'],
    // Four files at a time, on two cores: most of a network test's time is spent waiting (timers, round trips,
    // child processes), so the whole run takes a third of the time one file at a time took, at the same CPU.
    maxWorkers: 4,
    projects: [
      { extends: true, test: { name: 'volley', include: ['test/**/*.test.ts'], exclude: [toolchainSuites, redisSuites] } },
      // Channels over loopback, Server and Client on the fallback engine (its suites of their own are in the first project).
      { extends: true, test: { name: 'fallback-engine', include: ['test/delivery/channels.test.ts', 'test/delivery/channels-mismatch.test.ts'], env: { VOLLEY_ENGINE: 'fallback' } } },
    ],
  },
})
