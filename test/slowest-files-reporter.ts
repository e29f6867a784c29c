import { relative } from 'node:path'
import type { Reporter, TestModule } from 'vitest/node'

/** Files listed; a run of fewer files prints nothing, as its own summary says it all. */
const LISTED = 10

/**
 * After a whole-suite run, the files that took longest, each with its collect time (importing
 * the file and the app it builds, in a fresh process per file) apart from its tests' time.
 * Vitest's own reporter shows a file's test time but its collect time only summed over all files.
 */
export default class SlowestFilesReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    if (modules.length <= LISTED) return
    const rows = modules.map((module) => ({ module, ...module.diagnostic() }))
    rows.sort((a, b) => b.collectDuration + b.duration - (a.collectDuration + a.duration))
    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`.padStart(8)
    const lines = rows
      .slice(0, LISTED)
      .map(
        ({ module, collectDuration, duration }) =>
          `${seconds(collectDuration)} collect ${seconds(duration)} tests  ${relative(process.cwd(), module.moduleId)}`,
      )
    process.stdout.write(`\nSlowest ${LISTED} of ${modules.length} files:\n${lines.join('\n')}\n`)
  }
}
