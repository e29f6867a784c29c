import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  SERVICES_MODE,
  type TestApp,
  type TestUser,
  testConfig,
  unique,
} from '../../../test/helpers.js'
import { formBody, registerVersion, shippedBytes, shippedCard } from '../../../test/models.js'
import { datasetJobDeps } from '../../app.js'
import type { JobType } from '../jobs/contract.js'
import type { JobContext } from '../jobs/handlers.js'
import { createJobSystem, type JobSystem } from '../jobs/system.js'
import { createModelRepository } from '../models/repository.js'
import { createOnnxBackend } from '../models/runtime/onnx-backend.js'
import { createModelServing } from '../models/serving/model-serving.js'
import { outputDatasetId, registerDatasetJobs } from './jobs.js'
import { rowsTable } from './row-store.js'

let t: TestApp
let dataDir: string
let alice: TestUser
let bob: TestUser
let asAlice: ReturnType<typeof injectAs>
let asBob: ReturnType<typeof injectAs>
/** Server mode runs jobs in a worker process; here, a worker-role job system in the test. */
let worker: { jobs: JobSystem; close(): Promise<void> } | undefined

const env = () => ({
  DATA_DIR: dataDir,
  DATASET_INLINE_MAX_BYTES: '2048',
  // A queue of this file's own: no other test's worker takes these jobs.
  QUEUE_PREFIX: `ds-jobs-${unique().toLowerCase()}`,
  JOBS_POLL_INTERVAL_MS: '50',
  JOB_RETRY_BASE_MS: '50',
  HOUSEKEEPING_INTERVAL_MS: '0',
  MODELS_REGISTER_SHIPPED: 'true',
})

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dataset-jobs-test-'))
  const settings = env()
  // Its own database: the shipped models it registers are global state.
  t = await buildTestApp(settings, { privateDatabase: true })
  if (SERVICES_MODE) worker = await startWorker(settings)
  ;[alice, bob] = await Promise.all([createTestUser(t, 'user'), createTestUser(t, 'user')])
  asAlice = injectAs(t, alice)
  asBob = injectAs(t, bob)
})
afterAll(async () => {
  await worker?.close()
  await t.close()
  await rm(dataDir, { recursive: true, force: true })
})

async function startWorker(settings: Record<string, string>) {
  const config = testConfig(settings)
  const metrics = new Registry()
  const serving = createModelServing({
    config,
    models: createModelRepository(t.database.db),
    backend: createOnnxBackend({ intraOpNumThreads: 1 }),
    redis: null,
    metrics,
    log: t.app.log,
  })
  await serving.server.start()
  const jobs = createJobSystem({
    role: 'worker',
    db: t.database.db,
    inTransaction: (work) => t.database.db.transaction(work),
    redis: null,
    settings: config,
    metrics,
    log: t.app.log,
  })
  registerDatasetJobs(jobs.registry, datasetJobDeps(config, t.database, serving))
  await jobs.start()
  return {
    jobs,
    async close() {
      await jobs.close()
      await serving.close()
    },
  }
}

async function upload(content: string, fields: Record<string, string> = {}) {
  const form = new FormData()
  for (const [key, value] of Object.entries(fields)) form.append(key, value)
  form.append('file', new Blob([content]), 'upload.csv')
  return asAlice({ method: 'POST', url: '/v1/datasets', ...(await formBody(form)) })
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, ms = 20_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await read()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const datasetOf = async (id: string) => (await asAlice({ url: `/v1/datasets/${id}` })).json()
interface JobBody {
  id: string
  type: string
  status: string
  progress: number
  result: { dataset_id: string; path: string; [key: string]: unknown }
  error: { code: string; message: string }
}
const jobOf = async (id: string): Promise<JobBody> =>
  (await asAlice({ url: `/v1/jobs/${id}` })).json()
const finished = (job: JobBody) => !['queued', 'running'].includes(job.status)

async function tableExists(datasetId: string) {
  const result = await t.database.db.execute(sql`SELECT to_regclass(${rowsTable(datasetId)}) AS t`)
  return (result as unknown as { rows: { t: unknown }[] }).rows[0]?.t !== null
}

function bigCsv(rows: number, bad?: number) {
  const lines = ['id,label,value']
  for (let i = 1; i <= rows; i++) lines.push(i === bad ? `${i},oops` : `${i},row-${i},${i / 4}`)
  return `${lines.join('\n')}\n`
}

describe('imports larger than the inline limit', () => {
  it('when a file is above DATASET_INLINE_MAX_BYTES, then 202 with an import job, and the dataset becomes ready', async () => {
    const response = await upload(bigCsv(400))
    expect(response.statusCode, response.body).toBe(202)
    const body = response.json()
    expect(body.dataset.status).toBe('importing')
    expect(response.headers.location).toBe(`/v1/datasets/${body.dataset.id}`)
    const job = await until(() => jobOf(body.job_id), finished)
    expect(job).toMatchObject({ type: 'dataset_import', status: 'succeeded', progress: 1 })
    expect(job.result).toEqual({ dataset_id: body.dataset.id, rows: 400, skipped: 0 })
    const dataset = await datasetOf(body.dataset.id)
    expect(dataset).toMatchObject({ status: 'ready', row_count: 400 })
    expect(dataset.columns.map((c: { type: string }) => c.type)).toEqual([
      'integer',
      'string',
      'number',
    ])
    const rows = await asAlice({ url: `/v1/datasets/${body.dataset.id}/rows?filter[id][eq]=400` })
    expect(rows.json().items).toEqual([{ id: 400, label: 'row-400', value: 100 }])
    expect(readdirSync(join(dataDir, 'uploads')).filter((f) => f.endsWith('.upload'))).toEqual([])
  })

  it('when a large file has a bad line, then the dataset ends failed with the line, and no rows remain', async () => {
    const response = await upload(bigCsv(400, 123))
    expect(response.statusCode).toBe(202)
    const { dataset, job_id } = response.json()
    const job = await until(() => jobOf(job_id), finished)
    expect(job.status).toBe('failed')
    expect(job.error.code).toBe('DATASET_IMPORT_FAILED')
    const failed = await datasetOf(dataset.id)
    expect(failed.status).toBe('failed')
    expect(failed.error.bad_lines).toEqual([
      { line: 124, column: null, reason: 'has 2 fields; the header has 3' },
    ])
    expect(await tableExists(dataset.id)).toBe(false)
    const rows = await asAlice({ url: `/v1/datasets/${dataset.id}/rows` })
    expect(rows.statusCode).toBe(409)
    expect(rows.json().code).toBe('DATASET_NOT_READY')
  })
})

const IRIS_INPUTS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const

function irisCsv(rows: number) {
  const lines = ['sl,sw,pl,pw,tag']
  for (let i = 0; i < rows; i++) {
    // Every 50th row is out of the model's range: refused, with its error in the row.
    const sl = i % 50 === 7 ? 99 : 4 + ((i * 37) % 40) / 10
    lines.push(
      `${sl},${2 + ((i * 11) % 25) / 10},${1 + ((i * 53) % 60) / 10},${((i * 29) % 25) / 10},t${i}`,
    )
  }
  return `${lines.join('\n')}\n`
}

async function createdDataset(content: string) {
  const form = new FormData()
  form.append('file', new Blob([content]), 'iris.csv')
  const response = await asAlice({ method: 'POST', url: '/v1/datasets', ...(await formBody(form)) })
  expect([201, 202]).toContain(response.statusCode)
  const body = response.json()
  const id = body.id ?? body.dataset.id
  await until(
    () => datasetOf(id),
    (d) => d.status !== 'importing',
  )
  return id as string
}

const mapping = { sepal_length: 'sl', sepal_width: 'sw', petal_length: 'pl', petal_width: 'pw' }

describe('batch predictions', () => {
  it('when a dataset is predicted as a job, then every row equals its single prediction, and refused rows carry their error', async () => {
    const input = await createdDataset(irisCsv(240))
    const started = await asAlice({
      method: 'POST',
      url: '/v1/jobs',
      payload: { type: 'batch_predict', params: { model: 'iris', dataset_id: input, mapping } },
    })
    expect(started.statusCode, started.body).toBe(202)
    const job = await until(() => jobOf(started.json().id), finished, 60_000)
    expect(job.status, JSON.stringify(job.error)).toBe('succeeded')
    expect(job.result).toMatchObject({ rows: 240, errors: 5 })
    const output = await datasetOf(job.result.dataset_id)
    expect(output.columns.map((c: { name: string }) => c.name)).toEqual([
      'sl',
      'sw',
      'pl',
      'pw',
      'tag',
      'prediction',
      'probability_setosa',
      'probability_versicolor',
      'probability_virginica',
      'error',
    ])
    const rows: Record<string, unknown>[] = []
    let cursor: string | null = null
    do {
      const page: { items: Record<string, unknown>[]; next_cursor: string | null } = (
        await asAlice({
          url: `/v1/datasets/${output.id}/rows?page_size=100${cursor ? `&cursor=${cursor}` : ''}`,
        })
      ).json()
      rows.push(...page.items)
      cursor = page.next_cursor
    } while (cursor)
    expect(rows).toHaveLength(240)
    for (const row of rows) {
      const inputs = Object.fromEntries(
        IRIS_INPUTS.map((name, i) => [name, row[['sl', 'sw', 'pl', 'pw'][i] as string]]),
      )
      const single = await asAlice({
        method: 'POST',
        url: '/v1/models/iris/predict',
        payload: { inputs },
      })
      if (single.statusCode === 422) {
        expect(row.prediction).toBeNull()
        expect(row.error).toContain('sepal_length')
        continue
      }
      const expected = single.json()
      expect(row.prediction).toBe(String(expected.prediction))
      expect(row.error).toBeNull()
      for (const [label, p] of Object.entries(expected.probabilities as Record<string, number>)) {
        expect(row[`probability_${label}`] as number).toBeCloseTo(p, 5)
      }
    }
  })

  it('when a prediction job dies half-way and runs again, then its dataset exists once and whole', async () => {
    const input = await createdDataset(irisCsv(120))
    const registry = (worker?.jobs ?? t.app.jobs).registry
    const handler = registry.get('batch_predict')?.handler
    if (!handler) throw new Error('batch_predict is not registered')
    const jobId = crypto.randomUUID()
    const context = (
      progress: JobContext<'batch_predict'>['progress'],
    ): JobContext<'batch_predict'> => ({
      job: {
        id: jobId,
        type: 'batch_predict' as JobType as 'batch_predict',
        params: { model: 'iris', dataset_id: input, mapping },
        owner_id: alice.id,
        attempt: 1,
        request_id: null,
      },
      progress,
      signal: new AbortController().signal,
      log: t.app.log,
    })
    let calls = 0
    await expect(
      handler(
        context(async () => {
          if (++calls === 1) throw new Error('killed')
        }),
      ),
    ).rejects.toThrow('killed')
    expect(await tableExists(outputDatasetId(jobId))).toBe(false)
    const first = await handler(context(async () => {}))
    const again = await handler(context(async () => {}))
    expect(again).toEqual(first)
    expect(first).toMatchObject({ dataset_id: outputDatasetId(jobId), rows: 120 })
    const count = await t.database.db.execute(
      sql`SELECT count(*)::int AS n FROM datasets WHERE job_id = ${jobId}`,
    )
    expect((count as unknown as { rows: { n: number }[] }).rows[0]?.n).toBe(1)
    expect((await datasetOf(first.dataset_id)).row_count).toBe(120)
  })

  it('when a prediction job pins a version, then that version answers, not the active one', async () => {
    const admin = await createTestUser(t, 'admin')
    await registerVersion(
      t,
      admin,
      { ...shippedCard('iris'), version: '2.0.0' },
      shippedBytes('iris'),
    )
    const model = (await asAlice({ url: '/v1/models/iris' })).json()
    const pinned = model.versions.find((v: { active: boolean }) => !v.active).version as string
    const input = await createdDataset(irisCsv(20))
    const typedAsNumber = await asAlice({
      method: 'POST',
      url: '/v1/jobs',
      payload: {
        type: 'batch_predict',
        params: { model: 'iris', version: 2, dataset_id: input, mapping },
      },
    })
    expect(typedAsNumber.statusCode).toBe(422)
    const started = await asAlice({
      method: 'POST',
      url: '/v1/jobs',
      payload: {
        type: 'batch_predict',
        params: { model: 'iris', version: pinned, dataset_id: input, mapping },
      },
    })
    expect(started.statusCode, started.body).toBe(202)
    const job = await until(() => jobOf(started.json().id), finished, 60_000)
    expect(job.status, JSON.stringify(job.error)).toBe('succeeded')
    expect((await datasetOf(job.result.dataset_id)).name).toContain(`(iris ${pinned} predictions)`)
    const unknown = await asAlice({
      method: 'POST',
      url: '/v1/jobs',
      payload: {
        type: 'batch_predict',
        params: { model: 'iris', version: '9.9.9', dataset_id: input, mapping },
      },
    })
    const failed = await until(() => jobOf(unknown.json().id), finished, 60_000)
    expect(failed.status).toBe('failed')
    expect(failed.error.code).toBe('MODEL_VERSION_NOT_FOUND')
  })

  it('when the model is not a model name, then 422 names the field and no job is recorded', async () => {
    const input = await createdDataset(irisCsv(5))
    const names = ['Iris', 'iris/../x', 'iris model', '-iris', 'x'.repeat(65)]
    for (const model of names) {
      const refused = await asAlice({
        method: 'POST',
        url: '/v1/jobs',
        payload: { type: 'batch_predict', params: { model, dataset_id: input, mapping } },
      })
      expect(refused.statusCode, model).toBe(422)
      expect(refused.headers['content-type']).toContain('application/problem+json')
      expect(JSON.stringify(refused.json().errors), model).toContain('model')
    }
    const recorded = await t.database.db.execute(
      sql`SELECT count(*)::int AS n FROM jobs WHERE params->>'model' IN ${names}`,
    )
    expect((recorded as unknown as { rows: { n: number }[] }).rows[0]?.n).toBe(0)
  })

  it('when another user predicts over a dataset that is not theirs, then the job fails as not found', async () => {
    const input = await createdDataset(irisCsv(10))
    const started = await asBob({
      method: 'POST',
      url: '/v1/jobs',
      payload: { type: 'batch_predict', params: { model: 'iris', dataset_id: input, mapping } },
    })
    expect(started.statusCode).toBe(202)
    const job = await until(
      async () => (await asBob({ url: `/v1/jobs/${started.json().id}` })).json(),
      finished,
    )
    expect(job.status).toBe('failed')
    expect(job.error.code).toBe('DATASET_NOT_FOUND')
  })
})

describe('exports', () => {
  it('when a dataset is exported as a job, then the file holds every row', async () => {
    const input = await createdDataset('a,b\n1,=x\n2,y\n')
    const started = await asAlice({
      method: 'POST',
      url: '/v1/jobs',
      payload: { type: 'dataset_export', params: { dataset_id: input, format: 'csv' } },
    })
    expect(started.statusCode).toBe(202)
    const job = await until(() => jobOf(started.json().id), finished)
    expect(job.status, JSON.stringify(job.error)).toBe('succeeded')
    expect(job.result).toMatchObject({ dataset_id: input, format: 'csv', rows: 2 })
    expect(existsSync(job.result.path)).toBe(true)
    expect(readFileSync(job.result.path, 'utf8')).toBe("a,b\r\n1,'=x\r\n2,y\r\n")
  })
})
