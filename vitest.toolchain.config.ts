// npm run test:toolchain: the suites that build C or C++ programs of their own with g++ or gcc against
// libsodium-dev's static library, or read binaries with objdump (vitest.config.ts leaves them out of npm test).
import { defineConfig } from 'vitest/config'
import { toolchainSuites } from './vitest.config.ts'

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 30_000,
    fileParallelism: false,
    include: [toolchainSuites],
  },
})
