import { type ChildProcess, spawn } from 'node:child_process'
import { sql } from 'drizzle-orm'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkEvictionPolicy } from '../src/modules/jobs/queue.js'
import { queueConnection } from '../src/modules/jobs/queue-connection.js'
import { createJobRepository } from '../src/modules/jobs/repository.js'
import { SERVICES_MODE, unique } from './helpers.js'
import { buildJobsTestApp, countRows, eventually, type JobsTestApp } from './jobs.js'

interface WorkerProcess {
  child: ChildProcess
  logs: Record<string, unknown>[]
  port: Promise<number>
  exited: Promise<number | null>
}

function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/job-worker.ts'], {
    env: { ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: Record<string, unknown>[] = []
  let buffer = ''
  let announce: (port: number) => void = () => {}
  const port = new Promise<number>((resolve) => {
    announce = resolve
  })
  child.stdout?.on('data', (chunk) => {
    buffer += chunk
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>
        logs.push(entry)
        if (entry.msg === 'worker listening') announce(entry.port as number)
      } catch {}
    }
  })
  child.stderr?.on('data', () => {})
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, logs, port, exited }
}

// A worker process needs PostgreSQL and Redis: server mode only.
describe.skipIf(!SERVICES_MODE)('the worker process', { timeout: 120_000 }, () => {
  let t: JobsTestApp
  const children: ChildProcess[] = []

  beforeAll(async () => {
    // The API only relays here; the spawned workers run the jobs.
    t = await buildJobsTestApp({ WORKER_LOCK_MS: '2000' }, { worker: false })
  })
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
    await t?.close()
  })

  const start = () => {
    const worker = spawnWorker({ ...t.env, LOG_LEVEL: 'info' })
    children.push(worker.child)
    return worker
  }
  const jobRow = (id: string) => createJobRepository(t.database.db).findById(id)
  const enqueue = (params: Record<string, unknown>) =>
    t.app.jobs.enqueue({
      type: 'test_effect',
      params: { key: unique(), ...params },
      owner_id: null,
    })

  it('when a worker is killed mid-job, then another worker retries it and its effect is written exactly once', async () => {
    const first = start()
    await first.port
    const job = await enqueue({ steps: 30, step_ms: 100 })
    await eventually(
      async () => ((await jobRow(job.id))?.progress ?? 0) > 0,
      30_000,
      'the job to run',
    )
    first.child.kill('SIGKILL')
    await first.exited
    const second = start()
    await second.port
    await eventually(
      async () => (await jobRow(job.id))?.status === 'succeeded',
      60_000,
      'the retry',
    )
    const runs = await countRows(t.database.db, 'test_job_runs', sql`job_id = ${job.id}`)
    expect(runs).toBeGreaterThanOrEqual(2)
    expect(await countRows(t.database.db, 'test_job_effects', sql`job_id = ${job.id}`)).toBe(1)
    expect((await jobRow(job.id))?.attempts).toBe(runs)
    second.child.kill('SIGTERM')
    await second.exited
  })

  it('when a worker gets SIGTERM during a job, then the job finishes before the worker exits', async () => {
    const worker = start()
    const port = await worker.port
    const health = await fetch(`http://127.0.0.1:${port}/health`)
    expect(health.status).toBe(200)
    const job = await enqueue({ steps: 10, step_ms: 150 })
    await eventually(
      async () => ((await jobRow(job.id))?.progress ?? 0) > 0,
      30_000,
      'the job to run',
    )
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    expect(metrics).toContain('jobs_by_status')
    expect(metrics).toContain('job_queue_depth')
    worker.child.kill('SIGTERM')
    expect(await worker.exited).toBe(0)
    const row = await jobRow(job.id)
    expect(row?.status).toBe('succeeded')
    expect(row?.attempts).toBe(1)
  })

  it('when the API is asked whether it is ready, then the queue is among its checks', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/ready' })
    expect(response.json().checks).toMatchObject({ queue: 'ok' })
  })

  it('when Redis may evict keys, then the check says so; with noeviction it stays quiet', async () => {
    const redis = queueConnection(process.env.REDIS_URL as string)
    const lines: Record<string, unknown>[] = []
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) })
    try {
      const policy = await checkEvictionPolicy(redis, log)
      const warned = lines.some((line) => String(line.msg).includes('noeviction'))
      expect(warned).toBe(policy !== 'noeviction')
    } finally {
      redis.disconnect()
    }
  })
})
