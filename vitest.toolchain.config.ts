// npm run test:toolchain: the suites that need compilers and tools from system packages: C or C++ programs of
// their own built with g++ or gcc against libsodium-dev's static library, the test bindings' addon (`npm run
// build:native`), a testing build of the WebAssembly cores (emscripten), binaries read with objdump, and the
// agent sync schema compiled with flatc (vitest.config.ts leaves them out of npm test).
import { defineConfig } from 'vitest/config'
import { toolchainSuites } from './vitest.config.ts'

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 30_000,
    setupFiles: ['test/setup/process-warnings.ts'],
    fileParallelism: false,
    include: [toolchainSuites],
  },
})
