import { defineConfig } from 'vitest/config'

// `npm run test:faults`: stops, kills and freezes private PostgreSQL and Redis servers (and
// the API itself) under load. Self-contained: it needs the PostgreSQL and Redis binaries,
// not the shared servers, and never touches them.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.fault.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
})
