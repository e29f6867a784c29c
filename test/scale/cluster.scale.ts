import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { SMTPServer } from 'smtp-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startOtlpReceiver } from '../otlp-receiver.js'
import { freePort } from '../processes.js'
import { metricNamesUsed } from './monitoring.js'
import {
  type Api,
  createScaleDatabase,
  ROOT,
  type Running,
  requireBinary,
  requireBuild,
  runDistCli,
  scratch,
  startApi,
  startNginx,
  startPrometheus,
  startWorker,
} from './stack.js'

/**
 * Two API processes (`node dist/server.js`, as the image runs them) behind Debian's nginx
 * with the repository's nginx.conf, over one PostgreSQL and one Redis, scraped by Prometheus
 * with the repository's rules.
 */

const PREDICT_LIMIT = 20
const ADMIN_EMAIL = `scale-admin-${randomUUID().slice(0, 8)}@example.com`
const ADMIN_PASSWORD = `pw-${randomUUID()}`

let database: Awaited<ReturnType<typeof createScaleDatabase>>
let env: NodeJS.ProcessEnv
let apis: Api[] = []
let nginx: { url: string; process: Running }
let prometheus: { url: string; process: Running }
let work: ReturnType<typeof scratch>
let adminToken: string
let worker: Api
let smtp: Awaited<ReturnType<typeof startSmtp>>
let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>

/**
 * A real SMTP server on loopback. While `hold` is on, a message's DATA is never answered,
 * so the job sending it stays in the middle of its work; only answered messages count.
 */
async function startSmtp() {
  const accepted: string[] = []
  const state = { hold: false, held: 0 }
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      stream.on('data', () => {})
      stream.on('end', () => {
        if (state.hold) {
          state.held++
          return
        }
        accepted.push(...session.envelope.rcptTo.map((recipient) => recipient.address))
        callback()
      })
    },
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `smtp://127.0.0.1:${port}`,
    accepted,
    state,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** The worker's environment: the instances' own, under a service name of its own. */
const workerEnv = () => ({ ...env, OTEL_SERVICE_NAME: 'orderflow-worker' })

async function json(response: Response) {
  const text = await response.text()
  try {
    return JSON.parse(text)
  } catch {
    throw new Error(`${response.status}: ${text.slice(0, 500)}`)
  }
}

async function token(base: string, username: string, password: string): Promise<string> {
  const response = await fetch(`${base}/v1/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }),
  })
  const body = await json(response)
  if (response.status !== 200) throw new Error(`login: ${JSON.stringify(body)}`)
  return body.access_token
}

/** A fresh user made by the admin, logged in: rate limits count per user. */
async function newUser(): Promise<{ authorization: string }> {
  const email = `scale-${randomUUID().slice(0, 12)}@example.com`
  const password = `pw-${randomUUID()}`
  const base = apis[0]?.url as string
  const created = await fetch(`${base}/v1/users`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ email, password, full_name: 'Scale Test' }),
  })
  if (created.status !== 201) throw new Error(`create user: ${await created.text()}`)
  return { authorization: `Bearer ${await token(base, email, password)}` }
}

/** http_requests_total of one instance, all series added up. */
async function requestsServed(api: Api): Promise<number> {
  const text = await (await fetch(`${api.url}/metrics`)).text()
  let total = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('http_requests_total{')) total += Number(line.split(' ').at(-1))
  }
  return total
}

/** An order for a new customer, through `base`; its confirmation email is a job of the user's. */
async function placeOrder(
  user: { authorization: string },
  base: string,
  orderHeaders: Record<string, string> = {},
) {
  const headers = { ...user, 'content-type': 'application/json' }
  const customerEmail = `c-${randomUUID().slice(0, 8)}@example.com`
  const customer = await json(
    await fetch(`${base}/v1/customers`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'Scale Customer', email: customerEmail }),
    }),
  )
  const product = await json(
    await fetch(`${base}/v1/products`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        sku: `SCALE-${randomUUID().slice(0, 8).toUpperCase()}`,
        name: 'Lamp',
        price: '10.00',
        stock: 10,
      }),
    }),
  )
  const order = await fetch(`${base}/v1/orders`, {
    method: 'POST',
    headers: { ...headers, ...orderHeaders },
    body: JSON.stringify({
      customer_id: customer.id,
      items: [{ product_id: product.id, quantity: 1 }],
    }),
  })
  expect(order.status).toBe(201)
  const jobs = await json(await fetch(`${base}/v1/jobs?type=email`, { headers: user }))
  const jobId = jobs.items[0]?.id as string
  expect(jobId).toBeDefined()
  return { jobId, customerEmail: customerEmail.toLowerCase() }
}

const IRIS_INPUTS = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }

function predict(base: string, headers: Record<string, string>, inputs = IRIS_INPUTS) {
  return fetch(`${base}/v1/models/iris/predict`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ inputs }),
  })
}

beforeAll(async () => {
  requireBuild()
  requireBinary('nginx', 'nginx-light')
  requireBinary('prometheus', 'prometheus')
  work = scratch('orderflow-scale-')
  database = await createScaleDatabase()
  smtp = await startSmtp()
  receiver = await startOtlpReceiver()
  env = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    DATABASE_URL: database.url,
    REDIS_URL: process.env.REDIS_URL,
    JWT_SECRET: randomUUID() + randomUUID(),
    MIGRATE_ON_START: 'false',
    TRUST_PROXY: '1',
    DATABASE_POOL_MAX: '4',
    // Four processes start at once; on a loaded 2-core machine PostgreSQL has taken longer
    // than the 5 s default to accept their first connections, and the instance gave up.
    DATABASE_CONNECT_TIMEOUT_MS: '30000',
    PREDICT_RATE_LIMIT_MAX: String(PREDICT_LIMIT),
    RATE_LIMIT_MAX: '100000',
    // Every test user logs in from 127.0.0.1 through the same address limit.
    LOGIN_RATE_LIMIT_MAX: '10000',
    RATE_LIMIT_SYNC_INTERVAL_MS: '50',
    // Predictions must reach the model on both instances, not a cached answer.
    PREDICTION_CACHE_TTL_MS: '0',
    // Long enough for nginx to see the refused connections of a closing instance.
    SHUTDOWN_DRAIN_MS: '1000',
    SHUTDOWN_GRACE_MS: '10000',
    SMTP_URL: smtp.url,
    // A queue of this run's own in the shared Redis; a killed worker's job is stalled
    // after 2 s instead of 30.
    QUEUE_PREFIX: `scale${process.pid}`,
    WORKER_LOCK_MS: '2000',
    JOB_RETRY_BASE_MS: '100',
    // Every process exports its spans to one receiver, as they would to a collector.
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  }
  // As compose and the Kubernetes Job do: the migrate command first, then the instances.
  expect(runDistCli(['migrate'], env)).toMatch(/Migrated|up to date/)
  runDistCli(['create-admin', '--email', ADMIN_EMAIL], { ...env, ADMIN_PASSWORD })
  // Settled one by one, so afterAll stops an instance that came up beside one that did not.
  const started = await Promise.allSettled([startApi(env), startApi(env)])
  apis = started.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []))
  const failed = started.find((outcome) => outcome.status === 'rejected')
  if (failed) throw failed.reason
  worker = await startWorker(workerEnv())
  nginx = await startNginx(
    apis.map((api) => api.port),
    work.dir,
  )
  prometheus = await startPrometheus(
    apis.map((api) => api.port),
    work.dir,
  )
  adminToken = await token(nginx.url, ADMIN_EMAIL, ADMIN_PASSWORD)
}, 420_000)

afterAll(async () => {
  await Promise.all([
    ...apis.map((api) => api.process.stop()),
    worker?.process.stop(),
    nginx?.process.stop('SIGQUIT'),
    prometheus?.process.stop(),
  ])
  await database?.drop()
  await smtp?.close()
  receiver?.close()
  work?.cleanUp()
}, 60_000)

describe('two API instances behind nginx', () => {
  it('when requests go through nginx, then both instances answer some of them', async () => {
    const before = await Promise.all(apis.map(requestsServed))
    const user = await newUser()
    // Concurrent, so least_conn has a busy instance to avoid.
    await Promise.all(
      Array.from({ length: 40 }, async () => {
        const response = await fetch(`${nginx.url}/v1/orders?page_size=1`, { headers: user })
        expect(response.status).toBe(200)
        await response.arrayBuffer()
      }),
    )
    const after = await Promise.all(apis.map(requestsServed))
    // Each scrape of /metrics counts once more on its own instance; more than that is traffic.
    expect((after[0] as number) - (before[0] as number)).toBeGreaterThan(1)
    expect((after[1] as number) - (before[1] as number)).toBeGreaterThan(1)
  })

  it('when one caller predicts on both instances in turn, then the rate limit counts across them', async () => {
    const user = await newUser()
    const statuses: number[][] = [[], []]
    for (let i = 0; i < PREDICT_LIMIT * 3; i++) {
      const index = i % 2
      const response = await predict((apis[index] as Api).url, user)
      await response.arrayBuffer()
      statuses[index]?.push(response.status)
      // Slower than the reconciliation (50 ms), as traffic spread over a minute would be.
      await sleep(60)
    }
    const admitted = statuses.flat().filter((status) => status === 200).length
    // Counted per instance, each would admit PREDICT_LIMIT (40 in all); shared, about 20.
    expect(admitted).toBeGreaterThanOrEqual(PREDICT_LIMIT)
    expect(admitted).toBeLessThanOrEqual(PREDICT_LIMIT + 2)
    expect(statuses[0]).toContain(429)
    expect(statuses[1]).toContain(429)
    expect(statuses.flat().every((status) => status === 200 || status === 429)).toBe(true)
  })

  it('when a model version is activated through one instance, then both serve it', async () => {
    const card = JSON.parse(readFileSync(join(ROOT, 'models/iris.card.json'), 'utf8'))
    const version = `1.1.${Date.now() % 1_000_000}`
    const form = new FormData()
    form.set('card', JSON.stringify({ ...card, version }))
    form.set('onnx', new Blob([readFileSync(join(ROOT, 'models/iris.onnx'))]), 'iris.onnx')
    const admin = { authorization: `Bearer ${adminToken}` }
    const first = apis[0] as Api
    const second = apis[1] as Api
    const registered = await fetch(`${first.url}/v1/models`, {
      method: 'POST',
      headers: admin,
      body: form,
    })
    expect(registered.status, await registered.clone().text()).toBe(201)
    const activated = await fetch(`${first.url}/v1/models/iris/versions/${version}/activate`, {
      method: 'POST',
      headers: admin,
    })
    expect(activated.status, await activated.clone().text()).toBe(200)

    const user = await newUser()
    const served: string[] = []
    for (const api of [first, second]) {
      // The other instance hears of the activation over Redis; allow it a moment.
      let answered = ''
      for (let attempt = 0; attempt < 50 && answered !== version; attempt++) {
        const response = await predict(api.url, user)
        const body = await json(response)
        expect(response.status, JSON.stringify(body)).toBe(200)
        answered = body.version
        if (answered !== version) await sleep(100)
      }
      served.push(answered)
    }
    expect(served).toEqual([version, version])
  })

  it('when an order is retried with its Idempotency-Key through the other instance, then it is placed once', async () => {
    const user = await newUser()
    const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }
    const first = apis[0] as Api
    const second = apis[1] as Api
    const customer = await json(
      await fetch(`${first.url}/v1/customers`, {
        method: 'POST',
        headers: { ...user, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'Scale Customer',
          email: `c-${randomUUID().slice(0, 8)}@example.com`,
        }),
      }),
    )
    const product = await json(
      await fetch(`${first.url}/v1/products`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({
          sku: `SCALE-${randomUUID().slice(0, 8).toUpperCase()}`,
          name: 'Lamp',
          price: '10.00',
          stock: 10,
        }),
      }),
    )
    expect(product.id, JSON.stringify(product)).toBeDefined()
    const order = {
      method: 'POST',
      headers: { ...user, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
      body: JSON.stringify({
        customer_id: customer.id,
        items: [{ product_id: product.id, quantity: 3 }],
      }),
    }
    const placed = await fetch(`${first.url}/v1/orders`, order)
    const retried = await fetch(`${second.url}/v1/orders`, order)
    const placedBody = await json(placed)
    const retriedBody = await json(retried)
    expect(placed.status, JSON.stringify(placedBody)).toBe(201)
    expect(retried.status).toBe(201)
    expect(retriedBody.id).toBe(placedBody.id)

    const client = new pg.Client({ connectionString: database.url })
    await client.connect()
    try {
      const { rows } = await client.query(
        'select count(*)::int as orders from orders where customer_id = $1',
        [customer.id],
      )
      const stock = await client.query('select stock from products where id = $1', [product.id])
      expect(rows[0].orders).toBe(1)
      expect(stock.rows[0].stock).toBe(7)
    } finally {
      await client.end()
    }
  })

  it('when Prometheus scrapes both instances with the repository rules, then a query reads both back', async () => {
    let result: { metric: { instance: string }; value: [number, string] }[] = []
    for (let attempt = 0; attempt < 60; attempt++) {
      const response = await fetch(
        `${prometheus.url}/api/v1/query?query=${encodeURIComponent('sum by (instance) (http_requests_total)')}`,
      )
      result = (await json(response)).data.result
      if (result.length === 2) break
      await sleep(500)
    }
    expect(result.map((series) => series.metric.instance).sort()).toEqual(
      apis.map((api) => `127.0.0.1:${api.port}`).sort(),
    )
    expect(result.every((series) => Number(series.value[1]) > 0)).toBe(true)
    const rules = await json(await fetch(`${prometheus.url}/api/v1/rules`))
    const loaded = rules.data.groups.flatMap((group: { rules: { name: string }[] }) =>
      group.rules.map((rule) => rule.name),
    )
    expect(loaded).toContain('OrderFlowHighErrorRate')
    expect(loaded).toContain('OrderFlowNotReady')
  })

  it('when dashboards and alerts name a metric, then a running API or worker exports it', async () => {
    const exported = await Promise.all(
      [apis[0] as Api, worker].map(async (process) =>
        (await fetch(`${process.url}/metrics`)).text(),
      ),
    )
    const families = new Set(
      exported
        .join('\n')
        .split('\n')
        .filter((line) => line.startsWith('# TYPE '))
        .flatMap((line) => {
          const [, , name, type] = line.split(' ')
          return type === 'histogram'
            ? [`${name}_bucket`, `${name}_sum`, `${name}_count`]
            : [name as string]
        }),
    )
    const missing = [...metricNamesUsed()].filter((name) => !families.has(name))
    expect(missing).toEqual([])
  })

  it('when an order queues its email, then its job events stream through nginx over SSE and WebSocket', async () => {
    const user = await newUser()
    const { jobId } = await placeOrder(user, nginx.url)
    const sse = await fetch(`${nginx.url}/v1/jobs/${jobId}/events`, { headers: user })
    expect(sse.status).toBe(200)
    expect(sse.headers.get('content-type')).toContain('text/event-stream')
    // The stream closes when the job ends; its frames are `id`, `event` and `data` lines.
    const frames = (await sse.text())
      .split('\n\n')
      .filter((frame) => frame.includes('data:'))
      .map((frame) => ({
        event: /^event: (.*)$/m.exec(frame)?.[1],
        data: JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? '{}'),
      }))
    expect(frames.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } })

    const socket = await new Promise<{
      messages: { event: string; data: unknown }[]
      code: number
    }>((resolve, reject) => {
      const ws = new WebSocket(`${nginx.url.replace('http', 'ws')}/v1/jobs/${jobId}/ws`, {
        headers: user,
      })
      const messages: { event: string; data: unknown }[] = []
      ws.on('message', (data) => messages.push(JSON.parse(String(data))))
      ws.on('close', (code) => resolve({ messages, code }))
      ws.on('error', reject)
    })
    expect(socket.code).toBe(1000)
    expect(socket.messages.length).toBe(frames.length)
    expect(socket.messages.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } })
  })

  it('when an order is placed through nginx under a traceparent, then the worker process continues its trace', async () => {
    const user = await newUser()
    const traceId = randomUUID().replaceAll('-', '')
    const callerSpan = randomUUID().replaceAll('-', '').slice(0, 16)
    const { jobId } = await placeOrder(user, nginx.url, {
      traceparent: `00-${traceId}-${callerSpan}-01`,
    })
    // Spans leave each process in batches, once a second, so the worker's batch can arrive
    // before the API's: wait for all three rather than the last one to end.
    const named = (name: string) =>
      receiver.spans.find((span) => span.traceId === traceId && span.name === name)
    const names = ['POST /v1/orders', 'job enqueue email', 'job run email']
    for (let i = 0; i < 300 && !names.every((name) => named(name)); i++) await sleep(100)
    const server = named('POST /v1/orders')
    const enqueue = named('job enqueue email')
    const run = named('job run email')
    expect(server).toMatchObject({ service: 'orderflow', parentSpanId: callerSpan })
    expect(enqueue).toMatchObject({ service: 'orderflow', parentSpanId: server?.spanId })
    expect(run).toMatchObject({ service: 'orderflow-worker', parentSpanId: enqueue?.spanId })
    expect(run?.attributes).toContainEqual({
      key: 'orderflow.job.id',
      value: { stringValue: jobId },
    })
  })

  it('when the worker is killed mid-job, then the restarted worker completes the job, once', async () => {
    const user = await newUser()
    smtp.state.hold = true
    const heldBefore = smtp.state.held
    const { jobId, customerEmail } = await placeOrder(user, nginx.url)
    for (let i = 0; i < 300 && smtp.state.held === heldBefore; i++) await sleep(100)
    expect(smtp.state.held).toBe(heldBefore + 1)
    // SIGKILL: no graceful stop, the job is left running with its lock.
    await worker.process.stop('SIGKILL')
    smtp.state.hold = false
    worker = await startWorker(workerEnv())

    let job: { status: string; attempts: number } = { status: '', attempts: 0 }
    for (let i = 0; i < 300 && job.status !== 'succeeded'; i++) {
      job = await json(await fetch(`${nginx.url}/v1/jobs/${jobId}`, { headers: user }))
      if (job.status !== 'succeeded') await sleep(200)
    }
    expect(job.status).toBe('succeeded')
    expect(job.attempts).toBeGreaterThanOrEqual(2)
    expect(smtp.accepted.filter((address) => address === customerEmail)).toHaveLength(1)
  })

  it('when the image health check asks an instance, then it exits 0, and 1 for a closed port', async () => {
    const check = (port: number) => {
      try {
        execFileSync(process.execPath, ['deploy/healthcheck.mjs', String(port)], { cwd: ROOT })
        return 0
      } catch (error) {
        return (error as { status: number }).status
      }
    }
    expect(check((apis[0] as Api).port)).toBe(0)
    expect(check(worker.port)).toBe(0)
    expect(check(await freePort())).toBe(1)
  })

  it('when one instance gets SIGTERM under load, then no request through nginx fails', async () => {
    const user = await newUser()
    const outcomes = new Map<string, number>()
    const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
    const stopAt = Date.now() + 5000
    const clients = Array.from({ length: 6 }, async () => {
      while (Date.now() < stopAt) {
        try {
          const response = await fetch(`${nginx.url}/v1/orders?page_size=1`, { headers: user })
          await response.arrayBuffer()
          count(String(response.status))
        } catch (error) {
          count(`error: ${(error as Error).message}`)
        }
      }
    })
    await sleep(1500)
    const stopped = (apis[1] as Api).process.stop('SIGTERM')
    await Promise.all(clients)
    expect(await stopped).toBe(0)
    expect(Object.fromEntries(outcomes)).toEqual({ '200': outcomes.get('200') })
    expect(outcomes.get('200')).toBeGreaterThan(20)
  })
})
