/**
 * `npm run bench -- --suite ingest [--size-mb 200] [--predict-rows 100000] [--mode both]`:
 * dataset ingest and batch prediction, in this process.
 *
 * - A generated 10-column CSV is uploaded over HTTP (multipart, streamed from disk) to a
 *   server built by `buildApp`, and imported inline (DATASET_INLINE_MAX_BYTES above the
 *   file's size, so the time is the import's, not a job queue's). Rows/s, MB/s and the
 *   process's RSS growth (sampled every 50 ms) per mode.
 * - `psql \copy` of the same file into a table of the same types, in the same run: the
 *   PostgreSQL ceiling of a CSV load (server mode's database).
 * - A `batch_predict` over a dataset of `--predict-rows` iris rows, beside ONNX Runtime alone
 *   running the same model in batches of PREDICT_BATCH_MAX rows.
 */
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createReadStream, createWriteStream, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import type { JobContext } from '../src/modules/jobs/handlers.js'
import { irisRows } from './iris-data.js'
import { measureOnnxCeiling } from './onnx-ceiling.js'

const IRIS_MODEL_PATH = fileURLToPath(new URL('../models/iris.onnx', import.meta.url))
const ADMIN = { email: 'ingest-bench@example.com', password: 'ingest-bench-password-1' }
const PREDICT_BATCH_MAX = 1000

type Mode = 'embedded' | 'services'

interface IngestFigure {
  what: string
  rows: number
  seconds: number
  megabytes: number
  rssGrowthMb: number | null
}

async function generateCsv(path: string, megabytes: number): Promise<number> {
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

function multipartBody(path: string, boundary: string): Readable {
  return Readable.from(
    (async function* () {
      yield Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.csv"\r\n` +
          'Content-Type: text/csv\r\n\r\n',
      )
      yield* createReadStream(path, { highWaterMark: 256 * 1024 })
      yield Buffer.from(`\r\n--${boundary}--\r\n`)
    })(),
  )
}

/** The largest RSS seen while `work` runs, minus the RSS before it. */
async function withRss<T>(work: () => Promise<T>): Promise<{ value: T; growthMb: number }> {
  global.gc?.()
  const before = process.memoryUsage().rss
  let peak = before
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 50)
  try {
    const value = await work()
    peak = Math.max(peak, process.memoryUsage().rss)
    return { value, growthMb: (peak - before) / 1024 / 1024 }
  } finally {
    clearInterval(timer)
  }
}

async function benchMode(mode: Mode, csvPath: string, rows: number, predictRows: number) {
  const dataDir = await mkdtemp(join(tmpdir(), `ingest-bench-${mode}-`))
  const size = statSync(csvPath).size
  const config = loadConfig(
    {
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      DATA_DIR: dataDir,
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      DATASET_INLINE_MAX_BYTES: String(size + 1),
      DATASET_MAX_BYTES: String(Math.max(size + 1, 1_073_741_824)),
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
    const token = await login(address)
    const boundary = `bench${randomUUID()}`
    const started = performance.now()
    const { value: response, growthMb } = await withRss(async () => {
      const answer = await fetch(`${address}/v1/datasets`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
        },
        body: Readable.toWeb(multipartBody(csvPath, boundary)) as ReadableStream,
        duplex: 'half',
      } as RequestInit)
      return {
        status: answer.status,
        body: (await answer.json()) as { id: string; row_count: number },
      }
    })
    const seconds = (performance.now() - started) / 1000
    if (response.status !== 201)
      throw new Error(`upload answered ${response.status}: ${JSON.stringify(response.body)}`)
    if (response.body.row_count !== rows)
      throw new Error(`imported ${response.body.row_count} of ${rows} rows`)
    figures.push({
      what: `${mode}: POST /v1/datasets (upload + inline import)`,
      rows,
      seconds,
      megabytes: size / 1024 / 1024,
      rssGrowthMb: growthMb,
    })
    figures.push(await benchPredict(app, mode, token, address, predictRows))
  } finally {
    await app.close()
    await rm(dataDir, { recursive: true, force: true })
  }
  return figures
}

async function login(address: string): Promise<string> {
  const answer = await fetch(`${address}/v1/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'password',
      username: ADMIN.email,
      password: ADMIN.password,
    }),
  })
  return ((await answer.json()) as { access_token: string }).access_token
}

async function benchPredict(
  app: Awaited<ReturnType<typeof buildApp>>,
  mode: Mode,
  token: string,
  address: string,
  rows: number,
): Promise<IngestFigure> {
  const pool = irisRows()
  const lines = ['sepal_length,sepal_width,petal_length,petal_width']
  for (let i = 0; i < rows; i++) lines.push((pool[i % pool.length] as number[]).join(','))
  const form = new FormData()
  form.append('file', new Blob([`${lines.join('\n')}\n`]), 'iris.csv')
  const uploaded = await fetch(`${address}/v1/datasets`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
  })
  const dataset = (await uploaded.json()) as { id: string }
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
      figures.push(...(await benchMode(mode, csvPath, rows, predictRows)))
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
