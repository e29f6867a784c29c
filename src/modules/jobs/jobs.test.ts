import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createTestUser,
  injectAs,
  SERVICES_MODE,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import { buildJobsTestApp, countRows, eventually, type JobsTestApp } from '../../../test/jobs.js'
import { formBody } from '../../../test/models.js'
import { enqueueJob } from './repository.js'
import type { Job } from './schemas.js'

describe('jobs API', () => {
  let t: JobsTestApp
  let alice: TestUser
  let bob: TestUser
  let viewer: TestUser

  beforeAll(async () => {
    t = await buildJobsTestApp()
    alice = await createTestUser(t)
    bob = await createTestUser(t)
    viewer = await createTestUser(t, 'viewer')
  })
  afterAll(() => t?.close())

  const start = (owner: TestUser | null, params: Record<string, unknown> = {}) =>
    t.app.jobs.enqueue({
      type: 'test_effect',
      params: { key: unique(), ...params },
      owner_id: owner?.id ?? null,
    })

  const fetchJob = async (id: string, as: TestUser = alice) =>
    (await injectAs(t, as)({ method: 'GET', url: `/v1/jobs/${id}` })).json() as Job

  const finished = (id: string, as: TestUser = alice) =>
    eventually(
      async () => {
        const job = await fetchJob(id, as)
        return ['succeeded', 'failed', 'cancelled'].includes(job.status) && job
      },
      20_000,
      `job ${id} to end`,
    )

  describe('POST /v1/jobs', () => {
    it('when a user starts a dataset export, then it answers 202 with the queued job and its Location', async () => {
      const form = new FormData()
      form.append('file', new Blob(['sku,quantity\nA-1,3\nB-2,5\n']), 'stock.csv')
      const uploaded = await injectAs(
        t,
        alice,
      )({ method: 'POST', url: '/v1/datasets', ...(await formBody(form)) })
      expect(uploaded.statusCode, uploaded.body).toBe(201)
      const dataset = uploaded.json().id as string
      const response = await injectAs(
        t,
        alice,
      )({
        method: 'POST',
        url: '/v1/jobs',
        payload: { type: 'dataset_export', params: { dataset_id: dataset, format: 'csv' } },
      })
      expect(response.statusCode).toBe(202)
      const job = response.json() as Job
      expect(response.headers.location).toBe(`/v1/jobs/${job.id}`)
      expect(job).toMatchObject({
        type: 'dataset_export',
        owner_id: alice.id,
        request_id: response.headers['x-request-id'],
      })
      expect((await finished(job.id)).status).toBe('succeeded')
    })

    it('when a user tries to start an internal job type, then 422 and nothing is queued', async () => {
      const before = await countRows(t.database.db, 'jobs', sql`type = 'email'`)
      for (const type of ['email', 'housekeeping', 'dataset_import', 'no_such_type']) {
        const response = await injectAs(
          t,
          alice,
        )({
          method: 'POST',
          url: '/v1/jobs',
          payload: { type, params: {} },
        })
        expect(response.statusCode).toBe(422)
        expect(response.headers['content-type']).toContain('application/problem+json')
      }
      expect(await countRows(t.database.db, 'jobs', sql`type = 'email'`)).toBe(before)
    })

    it('when the params do not fit the type, then 422 names the field', async () => {
      const response = await injectAs(
        t,
        alice,
      )({
        method: 'POST',
        url: '/v1/jobs',
        payload: { type: 'dataset_export', params: { dataset_id: 'nope', format: 'xlsx' } },
      })
      expect(response.statusCode).toBe(422)
      expect(response.json().code).toBe('VALIDATION_FAILED')
    })

    it('when a viewer tries to start a job, then 403', async () => {
      const response = await injectAs(
        t,
        viewer,
      )({
        method: 'POST',
        url: '/v1/jobs',
        payload: {
          type: 'dataset_export',
          params: { dataset_id: crypto.randomUUID(), format: 'csv' },
        },
      })
      expect(response.statusCode).toBe(403)
    })
  })

  describe('ownership', () => {
    it('when another user asks for a job, then every job route answers 404 as for a missing job', async () => {
      const job = await start(alice)
      await finished(job.id)
      const asBob = injectAs(t, bob)
      for (const [method, url] of [
        ['GET', `/v1/jobs/${job.id}`],
        ['POST', `/v1/jobs/${job.id}/cancel`],
        ['GET', `/v1/jobs/${job.id}/events`],
      ] as const) {
        const response = await asBob({ method, url })
        expect(response.statusCode, `${method} ${url}`).toBe(404)
        expect(response.json().code).toBe('JOB_NOT_FOUND')
      }
      const missing = await asBob({ method: 'GET', url: `/v1/jobs/${crypto.randomUUID()}` })
      expect(missing.json().code).toBe('JOB_NOT_FOUND')
    })

    it('when users list jobs, then each sees their own and viewers see everyone’s', async () => {
      const mine = await start(alice)
      const theirs = await start(bob)
      await finished(mine.id)
      await finished(theirs.id, bob)
      const ids = async (as: TestUser) =>
        (
          (await injectAs(t, as)({ method: 'GET', url: '/v1/jobs?page_size=100' })).json()
            .items as Job[]
        ).map((j) => j.id)
      expect(await ids(alice)).toContain(mine.id)
      expect(await ids(alice)).not.toContain(theirs.id)
      expect(await ids(bob)).not.toContain(mine.id)
      expect(await ids(viewer)).toEqual(expect.arrayContaining([mine.id, theirs.id]))
    })

    it('when a list is filtered by status and type, then only matching jobs come back', async () => {
      const job = await start(alice, { poison: true })
      await finished(job.id)
      const page = (
        await injectAs(t, alice)({ method: 'GET', url: '/v1/jobs?status=failed' })
      ).json()
      expect(page.items.map((j: Job) => j.id)).toContain(job.id)
      expect(page.items.every((j: Job) => j.status === 'failed')).toBe(true)
      const emails = (
        await injectAs(t, alice)({ method: 'GET', url: '/v1/jobs?type=email' })
      ).json()
      expect(emails.items.every((j: Job) => j.type === 'email')).toBe(true)
      expect(emails.items.map((j: Job) => j.id)).not.toContain(job.id)
      const bad = await injectAs(t, alice)({ method: 'GET', url: '/v1/jobs?status=sleeping' })
      expect(bad.statusCode).toBe(422)
    })
  })

  describe('running', () => {
    it('when a job succeeds, then its result, progress 1 and its effect are recorded once', async () => {
      const job = await start(alice, { steps: 2 })
      const done = await finished(job.id)
      expect(done).toMatchObject({ status: 'succeeded', progress: 1, attempts: 1, error: null })
      expect(done.result).toMatchObject({ attempt: 1 })
      expect(await countRows(t.database.db, 'test_job_effects', sql`job_id = ${job.id}`)).toBe(1)
    })

    it('when an attempt fails, then the job is retried and succeeds on a later attempt', async () => {
      const job = await start(alice, { fail_times: 1 })
      const done = await finished(job.id)
      expect(done).toMatchObject({ status: 'succeeded', attempts: 2 })
      expect(await countRows(t.database.db, 'test_job_runs', sql`job_id = ${job.id}`)).toBe(2)
    })

    it('when every attempt fails, then the job fails after its last attempt and the others keep flowing', async () => {
      const poison = await start(alice, { fail_times: 99 })
      const permanent = await start(alice, { poison: true })
      const healthy = await start(alice)
      expect(await finished(poison.id)).toMatchObject({
        status: 'failed',
        attempts: 3,
        error: { code: 'JOB_FAILED' },
      })
      expect(await finished(permanent.id)).toMatchObject({
        status: 'failed',
        attempts: 1,
        error: { code: 'POISON' },
      })
      expect((await finished(healthy.id)).status).toBe('succeeded')
      expect(await countRows(t.database.db, 'test_job_runs', sql`job_id = ${poison.id}`)).toBe(3)
    })

    it('when jobs ran, then /metrics counts them by type and outcome and shows jobs by status', async () => {
      const job = await start(alice)
      await finished(job.id)
      const source = SERVICES_MODE
        ? await fetch(`http://127.0.0.1:${t.worker?.address.port}/metrics`).then((r) => r.text())
        : (await t.app.inject({ method: 'GET', url: '/metrics' })).body
      expect(source).toMatch(/jobs_total\{type="test_effect",outcome="succeeded"\} [1-9]/)
      expect(source).toMatch(/job_duration_seconds_count\{type="test_effect"\} [1-9]/)
      const api = (await t.app.inject({ method: 'GET', url: '/metrics' })).body
      expect(api).toMatch(/jobs_by_status\{status="succeeded"\} [1-9]/)
    })
  })

  describe('cancel', () => {
    it('when a running job is cancelled, then it stops at its next checkpoint and ends cancelled', async () => {
      const job = await start(alice, { steps: 200, step_ms: 20 })
      await eventually(async () => (await fetchJob(job.id)).progress > 0, 20_000, 'progress')
      const response = await injectAs(
        t,
        alice,
      )({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` })
      expect(response.statusCode).toBe(200)
      expect(response.json().cancel_requested).toBe(true)
      const done = await finished(job.id)
      expect(done.status).toBe('cancelled')
      expect(done.progress).toBeLessThan(1)
      expect(await countRows(t.database.db, 'test_job_effects', sql`job_id = ${job.id}`)).toBe(0)
    })

    it('when a finished job is cancelled, then 409 JOB_FINISHED and it stays as it was', async () => {
      const job = await start(alice)
      await finished(job.id)
      const response = await injectAs(
        t,
        alice,
      )({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` })
      expect(response.statusCode).toBe(409)
      expect(response.json()).toMatchObject({
        code: 'JOB_FINISHED',
        status: 409,
        job_status: 'succeeded',
      })
      expect((await fetchJob(job.id)).status).toBe('succeeded')
    })

    it('when a queued job is cancelled, then it ends cancelled without running', async () => {
      if (SERVICES_MODE) {
        // Nothing takes jobs in server mode without a worker; the last test of the file.
        await t.worker?.close()
        t.worker = null
      }
      const id = await t.database.db.transaction(async (tx) => {
        const row = await enqueueJob(tx, {
          type: 'test_effect',
          params: { key: unique() },
          owner_id: alice.id,
        })
        // Not due for an hour: the embedded runner leaves it queued.
        await tx.execute(
          sql`UPDATE jobs SET run_after = now() + interval '1 hour' WHERE id = ${row.id}`,
        )
        return row.id
      })
      const response = await injectAs(t, alice)({ method: 'POST', url: `/v1/jobs/${id}/cancel` })
      expect(response.json()).toMatchObject({ status: 'cancelled', cancel_requested: true })
      expect(await countRows(t.database.db, 'test_job_runs', sql`job_id = ${id}`)).toBe(0)
      const again = await injectAs(t, alice)({ method: 'POST', url: `/v1/jobs/${id}/cancel` })
      expect(again.statusCode).toBe(409)
    })
  })
})
