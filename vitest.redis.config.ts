// npm run test:redis: the suites that need Debian's redis-server on PATH (each starts its own on a loopback
// port); vitest.config.ts leaves them out of npm test, which needs nothing but npm install.
import { defineConfig } from 'vitest/config'
import { redisSuites } from './vitest.config.ts'

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 30_000,
    setupFiles: ['test/setup/process-warnings.ts'],
    fileParallelism: false,
    include: [redisSuites],
  },
})
