/**
 * `npm run bench -- --suite ingest [--size-mb 200] [--predict-rows 100000] [--mode both]`:
 * dataset ingest and batch prediction, in this process.
 *
 * - A generated 10-column CSV is uploaded over HTTP (multipart, streamed from disk by a child
 *   process, bench/upload-client.ts) to a server built by `buildApp` in this process, and
 *   imported inline (DATASET_INLINE_MAX_BYTES above the file's size, so the time is the
 *   import's, not a job queue's). Rows/s, MB/s and this process's RSS growth (sampled every
 *   50 ms): the server's alone, since the client runs elsewhere.
 * - `psql \copy` of the same file into a table of the same types, in the same run: the
 *   PostgreSQL ceiling of a CSV load (server mode's database).
 * - A `batch_predict` over a dataset of `--predict-rows` iris rows, beside ONNX Runtime alone
 *   running the same model in batches of PREDICT_BATCH_MAX rows.
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { finished } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import type { JobContext } from '../src/modules/jobs/handlers.js'
import { irisRows } from './iris-data.js'
import { measureOnnxCeiling } from './onnx-ceiling.js'
import { BENCH_ADMIN, logIn } from './scenarios.js'

const IRIS_MODEL_PATH = fileURLToPath(new URL('../models/iris.onnx', import.meta.url))
const UPLOAD_CLIENT = fileURLToPath(new URL('./upload-client.ts', import.meta.url))
const PREDICT_BATCH_MAX = 1000

type Mode = 'embedded' | 'services'

interface IngestFigure {
  what: string
  rows: number
  seconds: number
  megabytes: number
  rssGrowthMb: number | null
}

export async function generateCsv(path: string, megabytes: number): Promise<number> {
  const out = createWriteStream(path)
  const target = megabytes * 1024 * 1024
  const cities = ['Oslo', 'Bergen', 'Trondheim', 'Stavanger', 'Tromsø', 'Bodø']
  let written = 0
  let rows = 0
  const header = 'id,name,city,amount,quantity,active,day,seen_at,score,note\n'
  out.write(header)
  written += header.length
  while (written < target) {
    let chunk = ''
    for (let k = 0; k < 2000; k++) {
      rows++
      const i = rows
      chunk +=
        `${i},name-${i % 9973},${cities[i % cities.length]},${((i * 7919) % 100000) / 100},` +
        `${i % 50},${i % 3 === 0},2024-${String((i % 12) + 1).padStart(2, '0')}-${String((i % 28) + 1).padStart(2, '0')},` +
        `2024-05-01T${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00Z,` +
        `${(i % 1000) / 7},"note ${i}, with a comma"\n`
    }
    written += Buffer.byteLength(chunk)
    if (!out.write(chunk)) await once(out, 'drain')
  }
  out.end()
  await finished(out)
  return rows
}

/** The iris rows the batch prediction reads, as a CSV file like any upload. */
async function writeIrisCsv(path: string, rows: number): Promise<void> {
  const pool = irisRows()
  const out = createWriteStream(path)
  out.write('sepal_length,sepal_width,petal_length,petal_width\n')
  for (let i = 0; i < rows; i++) {
    if (!out.write(`${(pool[i % pool.length] as number[]).join(',')}\n`)) await once(out, 'drain')
  }
  out.end()
  await finished(out)
}

interface UploadAnswer {
  status: number
  body: { id: string; row_count: number }
  /** From the request's first byte to the answer's last, timed by the client. */
  seconds: number
}

/**
 * Uploads a file from a child process (bench/upload-client.ts), so that the streaming
 * client's memory is not counted in this process's RSS, which is the server's.
 */
async function upload(address: string, token: string, path: string): Promise<UploadAnswer> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', UPLOAD_CLIENT, `${address}/v1/datasets`, token, path],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    output += text
  })
  const [code] = await once(child, 'exit')
  if (code !== 0) throw new Error(`the upload client exited with ${code}`)
  const answer = JSON.parse(output) as UploadAnswer
  // The inline limit is set above both files, so any other answer is a failed import.
  if (answer.status !== 201)
    throw new Error(`upload answered ${answer.status}: ${JSON.stringify(answer.body)}`)
  return answer
}

/** The largest RSS seen while `work` runs, minus the RSS before it. */
export async function withRss<T>(work: () => Promise<T>): Promise<{ value: T; growthMb: number }> {
  global.gc?.()
  const before = process.memoryUsage.rss()
  let peak = before
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss())
  }, 50)
  try {
    const value = await work()
    peak = Math.max(peak, process.memoryUsage.rss())
    return { value, growthMb: (peak - before) / 1024 / 1024 }
  } finally {
    clearInterval(timer)
  }
}

interface BenchFiles {
  csvPath: string
  rows: number
  irisPath: string
  irisRows: number
}

async function benchMode(mode: Mode, files: BenchFiles) {
  const dataDir = await mkdtemp(join(tmpdir(), `ingest-bench-${mode}-`))
  const size = statSync(files.csvPath).size
  // Both uploads import inline (201), whichever file is the larger.
  const inlineMax = Math.max(size, statSync(files.irisPath).size) + 1
  const config = loadConfig(
    {
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      DATA_DIR: dataDir,
      ADMIN_EMAIL: BENCH_ADMIN.username,
      ADMIN_PASSWORD: BENCH_ADMIN.password,
      DATASET_INLINE_MAX_BYTES: String(inlineMax),
      DATASET_MAX_BYTES: String(Math.max(inlineMax, 1_073_741_824)),
      REQUEST_TIMEOUT_MS: '300000',
      CONNECTION_TIMEOUT_MS: '600000',
      DATABASE_STATEMENT_TIMEOUT_MS: '0',
      HOUSEKEEPING_INTERVAL_MS: '0',
      PREDICT_BATCH_MAX: String(PREDICT_BATCH_MAX),
      RATE_LIMIT_MAX: '1000000000',
      LOGIN_RATE_LIMIT_MAX: '1000000000',
      ...(mode === 'services'
        ? { DATABASE_URL: process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL }
        : {}),
    },
    null,
  )
  const app = await buildApp(config, { redis: null })
  const figures: IngestFigure[] = []
  try {
    const address = await app.listen({ port: 0, host: '127.0.0.1' })
    const token = await logIn(address, BENCH_ADMIN)
    const { value: answer, growthMb } = await withRss(() => upload(address, token, files.csvPath))
    if (answer.body.row_count !== files.rows)
      throw new Error(`imported ${answer.body.row_count} of ${files.rows} rows`)
    figures.push({
      what: `${mode}: POST /v1/datasets (upload + inline import)`,
      rows: files.rows,
      seconds: answer.seconds,
      megabytes: size / 1024 / 1024,
      rssGrowthMb: growthMb,
    })
    figures.push(await benchPredict(app, mode, token, address, files))
  } finally {
    await app.close()
    await rm(dataDir, { recursive: true, force: true })
  }
  return figures
}

async function benchPredict(
  app: Awaited<ReturnType<typeof buildApp>>,
  mode: Mode,
  token: string,
  address: string,
  files: BenchFiles,
): Promise<IngestFigure> {
  const rows = files.irisRows
  const dataset = (await upload(address, token, files.irisPath)).body
  const handler = app.jobs.registry.get('batch_predict')?.handler
  if (!handler) throw new Error('batch_predict is not registered')
  const me = (await (
    await fetch(`${address}/v1/users/me`, { headers: { authorization: `Bearer ${token}` } })
  ).json()) as { id: string }
  const mapping = Object.fromEntries(
    ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'].map((name) => [name, name]),
  )
  const context: JobContext<'batch_predict'> = {
    job: {
      id: randomUUID(),
      type: 'batch_predict',
      params: { model: 'iris', dataset_id: dataset.id, mapping },
      owner_id: me.id,
      attempt: 1,
      request_id: null,
    },
    progress: async () => {},
    signal: new AbortController().signal,
    log: app.log,
  }
  const started = performance.now()
  const { value: result, growthMb } = await withRss(() => handler(context))
  const seconds = (performance.now() - started) / 1000
  if (result.rows !== rows) throw new Error(`predicted ${result.rows} of ${rows} rows`)
  return {
    what: `${mode}: batch_predict job (iris)`,
    rows,
    seconds,
    megabytes: 0,
    rssGrowthMb: growthMb,
  }
}

function psqlCopy(csvPath: string, rows: number): IngestFigure | string {
  const url = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL
  if (!url) return 'no DATABASE_URL: psql \\copy not measured'
  const table = `ingest_bench_${Date.now()}`
  const create =
    `CREATE TABLE ${table} (id bigint, name text, city text, amount double precision, quantity bigint, ` +
    'active boolean, day date, seen_at timestamptz, score double precision, note text)'
  const run = (sql: string) =>
    spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { encoding: 'utf8' })
  const made = run(create)
  if (made.status !== 0) return `psql failed: ${made.stderr.trim()}`
  try {
    const started = performance.now()
    const copied = run(`\\copy ${table} FROM '${csvPath}' WITH (FORMAT csv, HEADER true)`)
    const seconds = (performance.now() - started) / 1000
    if (copied.status !== 0) return `psql \\copy failed: ${copied.stderr.trim()}`
    return {
      what: 'psql \\copy of the same file (PostgreSQL ceiling)',
      rows,
      seconds,
      megabytes: statSync(csvPath).size / 1024 / 1024,
      rssGrowthMb: null,
    }
  } finally {
    run(`DROP TABLE IF EXISTS ${table}`)
  }
}

export async function runIngestSuite(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      suite: { type: 'string' },
      mode: { type: 'string', default: 'both' },
      'size-mb': { type: 'string', default: '200' },
      'predict-rows': { type: 'string', default: '100000' },
      duration: { type: 'string' },
      connections: { type: 'string' },
    },
  })
  const sizeMb = Number(values['size-mb'])
  const predictRows = Number(values['predict-rows'])
  const modes: Mode[] = values.mode === 'both' ? ['embedded', 'services'] : [values.mode as Mode]
  const work = await mkdtemp(join(tmpdir(), 'ingest-bench-'))
  try {
    const csvPath = join(work, 'bench.csv')
    console.error(`generating a ${sizeMb} MB 10-column CSV`)
    const rows = await generateCsv(csvPath, sizeMb)
    const irisPath = join(work, 'iris.csv')
    await writeIrisCsv(irisPath, predictRows)
    const files: BenchFiles = { csvPath, rows, irisPath, irisRows: predictRows }
    const figures: IngestFigure[] = []
    const notes: string[] = []
    const copy = psqlCopy(csvPath, rows)
    if (typeof copy === 'string') notes.push(copy)
    else figures.push(copy)
    for (const mode of modes) {
      if (mode === 'services' && !(process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL)) {
        notes.push('services: skipped, neither BENCH_DATABASE_URL nor DATABASE_URL is set')
        continue
      }
      console.error(`${mode}: uploading ${rows} rows`)
      figures.push(...(await benchMode(mode, files)))
    }
    const [ceiling] = (
      await measureOnnxCeiling({
        modelPath: IRIS_MODEL_PATH,
        rows: irisRows(),
        batchRows: PREDICT_BATCH_MAX,
        seconds: 3,
      })
    ).filter((result) => result.rowsPerRun === PREDICT_BATCH_MAX)
    const copyFigure = typeof copy === 'string' ? undefined : copy
    console.log(
      `\nIngest bench ${new Date().toISOString()} | ${rows} rows, ${(statSync(csvPath).size / 1024 / 1024).toFixed(1)} MB`,
    )
    console.log('| what | rows | s | rows/s | MB/s | ÷ psql \\copy | RSS growth MB |')
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
    for (const f of figures) {
      const perSecond = f.rows / f.seconds
      const ratio = copyFigure && f.megabytes > 0 ? (copyFigure.seconds / f.seconds).toFixed(2) : ''
      console.log(
        `| ${f.what} | ${f.rows} | ${f.seconds.toFixed(2)} | ${Math.round(perSecond)} | ` +
          `${f.megabytes > 0 ? (f.megabytes / f.seconds).toFixed(1) : ''} | ${ratio} | ${f.rssGrowthMb === null ? '' : f.rssGrowthMb.toFixed(0)} |`,
      )
    }
    if (ceiling) {
      console.log(
        `| ONNX Runtime alone, ${PREDICT_BATCH_MAX} rows a run (ceiling of batch_predict) | | | ${Math.round(ceiling.rowsPerSecond)} | | | |`,
      )
    }
    for (const note of notes) console.log(`\n${note}`)
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}
