import { defineConfig } from 'vitest/config'

// `vitest run` tests the embedded mode (PGlite, no Redis); `vitest run --mode services`
// runs the same suite against DATABASE_URL and REDIS_URL.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
})
