import { defineConfig } from 'vitest/config'

// `npm run test:scale`: the deployment files, checked offline, and two API processes behind
// Debian's nginx with the repository's nginx.conf, scraped by Debian's Prometheus. Runs
// against DATABASE_URL and REDIS_URL (a database of its own, made and dropped on that server)
// and needs `npm run build` first, which the npm script does.
export default defineConfig({
  test: {
    include: ['test/scale/**/*.scale.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    // Two instances, a worker, nginx and Prometheus start in one hook; a loaded CI machine
    // has taken minutes.
    hookTimeout: 420_000,
    reporters: ['default'],
  },
})
