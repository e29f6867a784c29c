/**
 * `node --expose-gc --import tsx bench/import-cpu.ts [--size-mb 50] [--runs 3]
 * [--mode services|embedded]` (server mode when DATABASE_URL is set): the
 * importer and row store alone on a file of the ingest suite's shape, without HTTP, so that
 * an import's own cost can be compared between two versions of the code on a shared machine.
 * Per run: the import's wall time, this process's CPU (`process.cpuUsage()`: the main thread
 * and, embedded, the PGlite thread), its peak RSS growth, the time until the rows are
 * loaded and the time after (index, ANALYZE, statistics), and in server mode the CPU of the
 * import's PostgreSQL backends (from /proc: only when PostgreSQL runs on this machine) and
 * `psql \copy` of the same file just before. Compare versions by running them alternately;
 * wall-clock figures on a loaded machine say little.
 */
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
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

/** The pool's backends, as the database lists them (application_name set by the pool). */
function backendPids(url: string): number[] {
  const sql =
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'orderflow'"
  const answer = spawnSync('psql', [url, '-Atc', sql], { encoding: 'utf8' })
  return answer.stdout.split('\n').filter(Boolean).map(Number)
}

/** utime + stime of a process in seconds, 0 when it is gone or not readable. */
function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/**
 * The CPU the pool's backends spent while `work` ran: those alive before and after it (a
 * backend opened during the run counts from zero; one closed during it is missed, which the
 * pool's 30 s idle timeout makes unlikely).
 */
async function backendCpu<T>(url: string | undefined, work: () => Promise<T>) {
  if (!url) return { value: await work(), seconds: Number.NaN }
  const before = new Map(backendPids(url).map((pid) => [pid, processCpuSeconds(pid)]))
  const value = await work()
  let seconds = 0
  for (const pid of backendPids(url)) seconds += processCpuSeconds(pid) - (before.get(pid) ?? 0)
  return { value, seconds }
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
  const rowStore = createRowStore(database)
  let finishing = 0
  let finishSeconds = 0
  // The time after the load: index, ANALYZE and statistics.
  const store: typeof rowStore = {
    ...rowStore,
    async finishTable(...args) {
      finishing = performance.now()
      try {
        return await rowStore.finishTable(...args)
      } finally {
        finishSeconds = (performance.now() - finishing) / 1000
      }
    },
  }
  const path = join(work, 'bench.csv')
  const rows = await generateCsv(path, Number(values['size-mb']))
  console.log(
    '| run | rows | import s | of which after the load s | CPU s | database CPU s | RSS growth MB | psql \\copy s | load |',
  )
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (let run = 1; run <= Number(values.runs); run++) {
    const copy = url ? psqlCopySeconds(url, path).toFixed(2) : ''
    const id = randomUUID()
    const started = performance.now()
    const cpu = process.cpuUsage()
    const {
      value: { value: outcome, growthMb },
      seconds: databaseCpu,
    } = await backendCpu(url, () =>
      withRss(() =>
        importFile(store, id, {
          path,
          format: 'csv',
          delimiter: ',',
          encoding: 'utf-8',
          maxLineBytes: 1024 * 1024,
          onError: 'fail',
          maxColumns: 500,
        }),
      ),
    )
    const used = process.cpuUsage(cpu)
    const seconds = (performance.now() - started) / 1000
    await store.dropTable(id)
    if (outcome.rowCount !== rows) throw new Error(`imported ${outcome.rowCount} of ${rows} rows`)
    console.log(
      `| ${run} | ${rows} | ${seconds.toFixed(2)} | ${finishSeconds.toFixed(2)} | ` +
        `${((used.user + used.system) / 1e6).toFixed(2)} | ${databaseCpu.toFixed(2)} | ` +
        `${growthMb.toFixed(0)} | ${copy} | ${loadavg()[0]?.toFixed(1)} |`,
    )
  }
} finally {
  await database.close()
  await rm(work, { recursive: true, force: true })
}
