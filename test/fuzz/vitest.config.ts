import { defineConfig } from 'vitest/config'

// `npm run test:fuzz` (embedded) and `npm run test:fuzz -- --mode services` read the same
// environment as the suite: the same global setup provides the database mode and template.
export default defineConfig({
  test: {
    include: ['test/fuzz/**/*.fuzz.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 240_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
})
