/**
 * `node --expose-gc --import tsx bench/import-cpu.ts [--size-mb 50] [--runs 3]
 * [--mode services|embedded]` (server mode when DATABASE_URL is set): the
 * importer and row store alone on a file of the ingest suite's shape, without HTTP, so that
 * an import's own cost can be compared between two versions of the code on a shared machine.
 * Per run: the import's wall time, this process's CPU (`process.cpuUsage()`: the main thread
 * and, embedded, the PGlite thread; PostgreSQL's own CPU is not in it), its peak RSS growth,
 * and in server mode `psql \copy` of the same file just before. Compare versions by running
 * them alternately; wall-clock figures on a loaded machine say little.
 */
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { openDatabase } from '../src/db/client.js'
import { importFile } from '../src/modules/datasets/importer.js'
import { createRowStore } from '../src/modules/datasets/row-store.js'
import { generateCsv, withRss } from './ingest.js'

const COPY_TABLE_COLUMNS =
  'id bigint, name text, city text, amount double precision, quantity bigint, active boolean, ' +
  'day date, seen_at timestamptz, score double precision, note text'

function psqlCopySeconds(url: string, path: string): number {
  const table = `import_cpu_${Date.now()}`
  const run = (sql: string) => spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qc', sql])
  run(`CREATE TABLE ${table} (${COPY_TABLE_COLUMNS})`)
  try {
    const started = performance.now()
    run(`\\copy ${table} FROM '${path}' WITH (FORMAT csv, HEADER true)`)
    return (performance.now() - started) / 1000
  } finally {
    run(`DROP TABLE IF EXISTS ${table}`)
  }
}

const { values } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '50' },
    runs: { type: 'string', default: '3' },
    mode: { type: 'string', default: process.env.DATABASE_URL ? 'services' : 'embedded' },
  },
})
const url = values.mode === 'services' ? process.env.DATABASE_URL : undefined
if (values.mode === 'services' && !url) throw new Error('server mode needs DATABASE_URL')
const work = await mkdtemp(join(tmpdir(), 'import-cpu-'))
const database = await openDatabase({
  url,
  dataDir: work,
  poolMax: 10,
  connectTimeoutMs: 10_000,
  statementTimeoutMs: 0,
})
try {
  // The rows tables live in the `datasets` schema, which migrations create with the rest.
  await database.withScriptTransaction((run) => run('CREATE SCHEMA IF NOT EXISTS datasets'))
  const store = createRowStore(database)
  const path = join(work, 'bench.csv')
  const rows = await generateCsv(path, Number(values['size-mb']))
  console.log('| run | rows | import s | CPU s | RSS growth MB | psql \\copy s | load |')
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (let run = 1; run <= Number(values.runs); run++) {
    const copy = url ? psqlCopySeconds(url, path).toFixed(2) : ''
    const id = randomUUID()
    const started = performance.now()
    const cpu = process.cpuUsage()
    const { value: outcome, growthMb } = await withRss(() =>
      importFile(store, id, {
        path,
        format: 'csv',
        delimiter: ',',
        encoding: 'utf-8',
        maxLineBytes: 1024 * 1024,
        onError: 'fail',
        maxColumns: 500,
      }),
    )
    const used = process.cpuUsage(cpu)
    const seconds = (performance.now() - started) / 1000
    await store.dropTable(id)
    if (outcome.rowCount !== rows) throw new Error(`imported ${outcome.rowCount} of ${rows} rows`)
    console.log(
      `| ${run} | ${rows} | ${seconds.toFixed(2)} | ${((used.user + used.system) / 1e6).toFixed(2)} | ` +
        `${growthMb.toFixed(0)} | ${copy} | ${loadavg()[0]?.toFixed(1)} |`,
    )
  }
} finally {
  await database.close()
  await rm(work, { recursive: true, force: true })
}
