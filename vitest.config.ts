import { defineConfig } from 'vitest/config'

/**
 * Suites that build C or C++ programs of their own (g++, gcc, libsodium-dev) or read binaries (objdump): not
 * in npm test, which needs nothing but npm install; npm run test:toolchain runs them (vitest.toolchain.config.ts).
 */
export const toolchainSuites = 'test/**/*.toolchain.test.ts'

/** Suites that start a redis-server of their own (Debian's, on PATH): npm run test:redis (vitest.redis.config.ts). */
export const redisSuites = 'test/**/*.redis.test.ts'

/**
 * Suites whose outcome cannot depend on the Node release: the delivery core computed on fake clocks, with
 * no socket, timer or stream. .ci/run's runs on Node 22, 24 and 26 (VOLLEY_TEST_MATRIX=1) leave them out:
 * about a minute a release. npm test runs them all.
 */
const releaseIndependentSuites = ['test/delivery/delivery-core.test.ts']
const releaseMatrix = process.env['VOLLEY_TEST_MATRIX'] === '1'

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Network tests share two cores with the I/O threads: run files one after another.
    fileParallelism: false,
    projects: [
      { extends: true, test: { name: 'volley', include: ['test/**/*.test.ts'], exclude: [toolchainSuites, redisSuites, ...(releaseMatrix ? releaseIndependentSuites : [])] } },
      // Channels over loopback, Server and Client on the fallback engine (its suites of their own are in the first project).
      { extends: true, test: { name: 'fallback-engine', include: ['test/delivery/channels.test.ts', 'test/delivery/channels-mismatch.test.ts'], env: { VOLLEY_ENGINE: 'fallback' } } },
    ],
  },
})
