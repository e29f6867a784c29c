/**
 * `npm run bench -- --suite jobs [--jobs 400] [--gap-ms 50]`: enqueue-to-start latency of the
 * job queue in server mode — from the transaction that records a job to the moment a worker
 * process marks it running — with the API's outbox relay in this process and one real
 * worker process (`src/worker.ts`) on the same PostgreSQL and Redis.
 *
 * Jobs are `housekeeping` runs (a few short DELETEs), enqueued one at a time `--gap-ms` apart
 * so that the figure is the queue's latency, not time spent behind other jobs. Both ends are
 * PostgreSQL's `now()` (the job's `created_at` and `started_at`), so one clock measures them.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import type { JobRow } from '../src/db/schema/index.js'
import type { JobSystem } from '../src/modules/jobs/system.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

async function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const port = env.WORKER_PORT
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the worker exited with ${child.exitCode}`)
    const ready = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.ok,
      () => false,
    )
    if (ready) return child
    if (Date.now() > deadline) throw new Error('the worker did not start within 60 s')
    await sleep(200)
  }
}

export async function runJobLatencySuite(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      suite: { type: 'string' },
      jobs: { type: 'string', default: '400' },
      'gap-ms': { type: 'string', default: '50' },
      mode: { type: 'string' },
      duration: { type: 'string' },
      connections: { type: 'string' },
    },
  })
  const databaseUrl = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL
  const redisUrl = process.env.REDIS_URL
  if (!databaseUrl || !redisUrl) {
    console.log('jobs: skipped, server mode needs DATABASE_URL and REDIS_URL')
    return
  }
  const count = Number(values.jobs)
  const gapMs = Number(values['gap-ms'])
  const dataDir = await mkdtemp(join(tmpdir(), 'job-latency-bench-'))
  const env = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    // A queue of this run's own: no other worker takes its jobs.
    QUEUE_PREFIX: `bench-jobs-${Date.now().toString(36)}`,
    HOUSEKEEPING_INTERVAL_MS: '0',
    WORKER_PORT: String(20_000 + Math.floor(Math.random() * 20_000)),
    WORKER_CONCURRENCY: '4',
  }
  const app = await buildApp(loadConfig(env, null))
  let worker: ChildProcess | undefined
  try {
    await app.ready()
    worker = await startWorker(env)
    const ids: string[] = []
    for (let i = 0; i < count; i++) {
      const row = await app.jobs.enqueue({
        type: 'housekeeping',
        params: {},
        owner_id: null,
        request_id: null,
      })
      ids.push(row.id)
      await sleep(gapMs)
    }
    // buildApp hands out the whole job system, typed narrower for routes.
    const jobs = app.jobs as JobSystem
    const deadline = Date.now() + 120_000
    let rows: JobRow[] = []
    for (;;) {
      rows = (await Promise.all(ids.map((id) => jobs.repository.findById(id)))).filter(
        (row): row is JobRow => row !== null,
      )
      if (rows.every((r) => r.status !== 'queued' && r.status !== 'running')) break
      if (Date.now() > deadline) break
      await sleep(200)
    }
    const started = rows.filter((r) => r.startedAt !== null)
    const sorted = (values: number[]) => values.sort((a, b) => a - b)
    const toStart = sorted(
      started.map((r) => (r.startedAt as Date).getTime() - r.createdAt.getTime()),
    )
    const toQueue = sorted(
      started
        .filter((r) => r.enqueuedAt !== null)
        .map((r) => (r.enqueuedAt as Date).getTime() - r.createdAt.getTime()),
    )
    const failed = rows.filter((r) => r.status !== 'succeeded').length
    console.log(
      `\nJob latency bench ${new Date().toISOString()} | ${count} housekeeping jobs, ${gapMs} ms apart, 1 worker process (concurrency 4), ${started.length} started, ${failed} not succeeded`,
    )
    console.log('| from the recording transaction to | p50 ms | p90 ms | p99 ms | max ms |')
    console.log('| --- | ---: | ---: | ---: | ---: |')
    for (const [what, values] of [
      ['handed to BullMQ by the outbox relay', toQueue],
      ['started by the worker', toStart],
    ] as const) {
      console.log(
        `| ${what} | ${percentile(values, 50)} | ${percentile(values, 90)} | ${percentile(values, 99)} | ${values.at(-1)} |`,
      )
    }
  } finally {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM')
      await once(worker, 'exit')
    }
    await app.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}
