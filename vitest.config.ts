import { defineConfig } from 'vitest/config'

// `vitest run` tests the embedded mode (PGlite, no Redis); `vitest run --mode services`
// runs the same suite against DATABASE_URL and REDIS_URL.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'clients/*/test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    // Measured by `npm test` (`--coverage`), not by single-file runs, which would fall short
    // of the threshold by design.
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      exclude: ['src/**/*.test.ts'],
      reporter: ['text-summary', 'json-summary'],
      thresholds: { lines: 91 },
      // A failing test must not hide the figure.
      reportOnFailure: true,
    },
  },
})
