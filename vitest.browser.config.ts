import { defineConfig } from 'vitest/config'

// `npm run test:browser`: the web console in Debian's Chromium, driven by playwright-core,
// against a real service per test file (embedded; `--mode services` for PostgreSQL and Redis).
export default defineConfig({
  test: {
    include: ['test/browser/**/*.browser.ts'],
    globalSetup: ['test/global-setup.ts', 'test/browser/build-console.ts'],
    pool: 'forks',
    // Two files at a time at most: each runs a browser and a service on a 2-core machine.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 90_000,
    // A page waits for the service (a job, a generation): patience for a loaded CI machine.
    expect: { poll: { timeout: 20_000, interval: 100 } },
    hookTimeout: 120_000,
    reporters: ['default'],
  },
})
