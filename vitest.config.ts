import { existsSync, readFileSync } from 'node:fs'
import { configDefaults, defineConfig } from 'vitest/config'

/**
 * Test files whose outcome cannot depend on the mode, which `--mode services` therefore skips:
 * pure units (codecs, validation, config parsing, the batcher, the ONNX runtime), and
 * embedded-only machinery (PGlite's worker thread, its data directory lock). None of them
 * builds an app or opens the test database or Redis, so a second run would prove nothing and
 * cost minutes. Fails safe: a file not named here runs in both modes, and a file named here
 * that reaches for the mode's database or Redis (below) stops the run until it leaves the list.
 */
const MODE_INDEPENDENT = [
  'src/cli.test.ts',
  'src/cluster.test.ts',
  'src/config.test.ts',
  'src/db/data-dir-lock.test.ts',
  'src/db/pglite-statements.test.ts',
  'src/db/pglite-statistics.test.ts',
  'src/db/pglite-thread.test.ts',
  'src/modules/auth/access-tokens.test.ts',
  'src/modules/datasets/columns.test.ts',
  'src/modules/models/card-consistency.test.ts',
  'src/modules/models/card.test.ts',
  'src/modules/models/generation/sampler.test.ts',
  'src/modules/models/images/decode.test.ts',
  'src/modules/models/kserve/codec.test.ts',
  'src/modules/models/runtime/batcher.test.ts',
  'src/modules/models/runtime/onnx-backend.test.ts',
  'src/modules/models/runtime/test-backend.test.ts',
  'src/modules/models/serving/features.test.ts',
  'src/modules/models/shipped-models.test.ts',
  'src/modules/models/signature.test.ts',
  'src/modules/oidc/id-tokens.test.ts',
  'src/modules/oidc/provider-config.test.ts',
  'src/platform/request-metrics.test.ts',
  'src/platform/validation.test.ts',
  'src/shared/credential-cache.test.ts',
  'src/shared/limiter.test.ts',
  'test/fuzz/verdict.test.ts',
  'test/install.test.ts',
]

/** What a test uses to reach the mode's database or Redis (see test/helpers.ts). */
const USES_THE_MODE =
  /\b(SERVICES_MODE|buildTestApp|buildJobsTestApp|serveIrisLike|createTestDatabase|createPrivateTestDatabase|createJobsDatabase)\b/

for (const file of MODE_INDEPENDENT) {
  if (!existsSync(file)) throw new Error(`vitest.config.ts: ${file} is listed but does not exist`)
  const uses = USES_THE_MODE.exec(readFileSync(file, 'utf8'))?.[0]
  if (uses) {
    throw new Error(`vitest.config.ts: ${file} uses ${uses}, so it must run in both modes`)
  }
}

// `vitest run` tests the embedded mode (PGlite, no Redis); `vitest run --mode services`
// runs the suite against DATABASE_URL and REDIS_URL, less the mode-independent files.
export default defineConfig(({ mode }) => ({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'clients/*/test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...(mode === 'services' ? MODE_INDEPENDENT : [])],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // Vitest's default on 2 cores is one fork, which leaves a core idle while a file waits on
    // a child process, a timer or the database. Two forks, measured on 6 files on the 2-core CI
    // machine: 429 s instead of 566 s of wall time for the same 61 s of CPU.
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The slowest files after a whole run, so a slow CI step shows which files to look at.
    reporters: ['default', './test/slowest-files-reporter.ts'],
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
}))
