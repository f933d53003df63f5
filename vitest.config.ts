import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Network tests share two cores with the I/O threads: run files one after another.
    fileParallelism: false,
  },
})
