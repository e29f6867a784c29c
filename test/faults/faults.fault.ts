import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../processes.js'
import {
  type PrivatePostgres,
  type PrivateRedis,
  startPrivatePostgres,
  startPrivateRedis,
} from './servers.js'

/**
 * The service against its dependencies failing, through a real listening API process under a
 * bounded load of order placements with Idempotency-Keys: PostgreSQL stopped at once and
 * restarted, Redis frozen (SIGSTOP) and stopped, and the API itself sent SIGTERM. The steps
 * run in order on one API process; the figures printed at the end are the README's.
 */

const WORKERS = 8
const REDIS_COMMAND_TIMEOUT_MS = 300
/** What a request may wait on Redis, frozen: two commands in a row at most (the login limits). */
const REDIS_WAIT_BOUND_MS = 2 * REDIS_COMMAND_TIMEOUT_MS
/** Scheduling slack on a shared machine: the API and this load share the same cores. */
const SLACK_MS = 1000
const INITIAL_STOCK = 1_000_000
/** Short, so that keys left in progress by the outage are settled within the test. */
const IDEMPOTENCY_LEASE_MS = 2000
const ADMIN = { email: 'faults-admin@example.com', password: 'a fault-test admin password' }

interface Api {
  url: string
  child: ChildProcess
  /** Exits nobody asked for: a crash. */
  crashes: number
  stopping: boolean
  exit: Promise<number | null>
}

let postgres: PrivatePostgres
let redis: PrivateRedis
let api: Api
let sql: pg.Client
let token: string
let customerId: string
let productId: string

const figures = {
  attempts: 0,
  acknowledged: 0,
  persisted: 0,
  lost: 0,
  settledAfterLease: 0,
  apiRestarts: 0,
  longestWaitDuringRedisFreezeMs: 0,
}
/** Every order the API acknowledged (201 or its replay), by Idempotency-Key. */
const acknowledged = new Map<string, string>()
/** Keys whose request met a database outage (503), the only ones allowed to stay in progress. */
const metOutage = new Set<string>()

async function startApi(env: Record<string, string>): Promise<Api> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'error',
      MODELS_REGISTER_SHIPPED: 'false',
      RATE_LIMIT_MAX: '1000000',
      LOGIN_RATE_LIMIT_MAX: '1000000',
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
      REDIS_COMMAND_TIMEOUT_MS: String(REDIS_COMMAND_TIMEOUT_MS),
      SHUTDOWN_DRAIN_MS: '500',
      IDEMPOTENCY_LEASE_MS: String(IDEMPOTENCY_LEASE_MS),
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const started: Api = {
    url: `http://127.0.0.1:${port}`,
    child,
    crashes: 0,
    stopping: false,
    exit: new Promise((resolve) => {
      child.on('exit', (code) => {
        if (!started.stopping) started.crashes++
        resolve(code)
      })
    }),
  }
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error('the API exited at start')
    const health = await fetch(`${started.url}/health`).catch(() => undefined)
    if (health?.ok) return started
    if (Date.now() > deadline) throw new Error('the API did not start')
    await sleep(200)
  }
}

interface Answer {
  status: number
  ms: number
  headers: Headers
  body: string
  /** A network error instead of an answer, e.g. ECONNREFUSED. */
  error?: string
}

async function send(path: string, init: RequestInit = {}, timeoutMs = 30_000): Promise<Answer> {
  const started = performance.now()
  try {
    const response = await fetch(`${api.url}${path}`, {
      ...init,
      signal: AbortSignal.timeout(timeoutMs),
    })
    const body = await response.text()
    return {
      status: response.status,
      ms: performance.now() - started,
      headers: response.headers,
      body,
    }
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause
    return {
      status: 0,
      ms: performance.now() - started,
      headers: new Headers(),
      body: '',
      error: cause?.code ?? (error as Error).name,
    }
  }
}

function login(username = ADMIN.email, password = ADMIN.password) {
  return send('/v1/auth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  })
}

function placeOrder(key: string) {
  figures.attempts++
  return send('/v1/orders', {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'idempotency-key': key,
    },
    // The key in the notes tells which key each persisted order came from.
    body: JSON.stringify({
      customer_id: customerId,
      items: [{ product_id: productId, quantity: 1 }],
      notes: key,
    }),
  })
}

interface LoadResult {
  statuses: Map<string, number>
  longestMs: number
  answers: { at: number; answer: Answer }[]
}

/**
 * WORKERS clients, each placing orders one after the other with a new key, and retrying a
 * key on 503, 409 (in progress) or a network error as a careful client would, until it is
 * acknowledged or `maxTries` is spent. Runs until `stop` resolves.
 */
function startLoad(maxTries = 30) {
  let stopped = false
  const result: LoadResult = { statuses: new Map(), longestMs: 0, answers: [] }
  const worker = async () => {
    while (!stopped) {
      const key = randomUUID()
      for (let attempt = 0; attempt < maxTries; attempt++) {
        const answer = await placeOrder(key)
        const label = answer.error ?? String(answer.status)
        result.statuses.set(label, (result.statuses.get(label) ?? 0) + 1)
        result.longestMs = Math.max(result.longestMs, answer.ms)
        result.answers.push({ at: Date.now(), answer })
        if (answer.status === 201) {
          acknowledged.set(key, JSON.parse(answer.body).id)
          break
        }
        if (answer.status === 503) metOutage.add(key)
        if (answer.status !== 503 && answer.status !== 409 && answer.status !== 0) break
        if (stopped && attempt >= 3) break
        await sleep(Number(answer.headers.get('retry-after') ?? 0) * 100 || 100)
      }
    }
  }
  const workers = Array.from({ length: WORKERS }, worker)
  return {
    result,
    async stop() {
      stopped = true
      await Promise.all(workers)
      return result
    },
  }
}

async function waitUntilReady(timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if ((await send('/ready')).status === 200) return
    await sleep(200)
  }
  throw new Error('the API did not become ready again')
}

async function connectSql() {
  const client = new pg.Client({ connectionString: postgres.url })
  client.on('error', () => {})
  await client.connect()
  return client
}

beforeAll(async () => {
  ;[postgres, redis] = await Promise.all([startPrivatePostgres(), startPrivateRedis()])
  api = await startApi({ DATABASE_URL: postgres.url, REDIS_URL: redis.url })
  const tokens = await login()
  expect(tokens.status, tokens.body).toBe(200)
  token = JSON.parse(tokens.body).access_token
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  const customer = await send('/v1/customers', {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ name: 'Fault Test', email: 'fault-test@example.com' }),
  })
  expect(customer.status, customer.body).toBe(201)
  customerId = JSON.parse(customer.body).id
  const product = await send('/v1/products', {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({
      sku: 'FAULT-1',
      name: 'Fault lamp',
      price: '1.00',
      stock: INITIAL_STOCK,
    }),
  })
  expect(product.status, product.body).toBe(201)
  productId = JSON.parse(product.body).id
})

afterAll(async () => {
  if (api && api.child.exitCode === null) {
    api.stopping = true
    api.child.kill('SIGKILL')
  }
  await sql?.end().catch(() => {})
  await Promise.all([postgres?.close(), redis?.close()])
  figures.apiRestarts = api?.crashes ?? 0
  console.log(`fault test figures: ${JSON.stringify(figures)}`)
})

describe('faults under a load of order placements', () => {
  it('when PostgreSQL stops at once and restarts, then the API stays up, answers 503 with Retry-After meanwhile and recovers; no acknowledged order is lost or doubled, each has its audit row, stock adds up, only keys that met the outage stay in progress, and each of those is settled by a retry once its lease ends', async () => {
    const load = startLoad()
    await sleep(1500)
    await postgres.stopImmediately()
    await sleep(500)
    const during = await Promise.all([send('/health'), send('/ready'), send('/v2/health/ready')])
    await sleep(1500)
    await postgres.start()
    await waitUntilReady()
    await sleep(1500)
    const result = await load.stop()

    expect(api.crashes).toBe(0)
    expect(during.map((answer) => answer.status)).toEqual([200, 503, 503])
    const outage = result.answers.filter(({ answer }) => answer.status === 503)
    expect(outage.length).toBeGreaterThan(0)
    for (const { answer } of outage) {
      expect(answer.headers.get('retry-after')).toMatch(/^\d+$/)
      expect(answer.headers.get('content-type')).toContain('application/problem+json')
      expect(answer.body).not.toMatch(/select|insert|Failed query|terminat/i)
    }
    // Only answers a careful client retries: no 500, no dropped connection.
    expect([...result.statuses.keys()].filter((s) => !['201', '409', '503'].includes(s))).toEqual(
      [],
    )

    sql = await connectSql()
    const orders = await sql.query<{ id: string; notes: string }>(
      'select id, notes from orders where customer_id = $1',
      [customerId],
    )
    const persisted = new Set(orders.rows.map((row) => row.id))
    const lost = [...acknowledged.values()].filter((id) => !persisted.has(id))
    expect(lost).toEqual([])
    const perKey = new Map<string, number>()
    for (const row of orders.rows) perKey.set(row.notes, (perKey.get(row.notes) ?? 0) + 1)
    expect([...perKey.entries()].filter(([, count]) => count > 1)).toEqual([])

    const withoutAudit = await sql.query(
      `select o.id from orders o where o.customer_id = $1 and not exists (
         select 1 from audit_events a
         where a.resource_type = 'order' and a.resource_id = o.id::text and a.action = 'create')`,
      [customerId],
    )
    expect(withoutAudit.rows).toEqual([])
    const stock = await sql.query<{ stock: number; taken: string }>(
      `select p.stock, (select coalesce(sum(quantity), 0) from order_items where product_id = p.id) as taken
       from products p where p.id = $1`,
      [productId],
    )
    expect(stock.rows[0]?.stock).toBe(INITIAL_STOCK - Number(stock.rows[0]?.taken))

    // A key stays in progress only when its request met the outage: either it answered 503,
    // or its order committed and was acknowledged while storing the answer failed (a retry
    // after the lease then learns the order from Location).
    const inProgress = await sql.query<{ key: string; committed: boolean }>(
      'select key, committed_at is not null as committed from idempotency_keys where status_code is null',
    )
    for (const { key, committed } of inProgress.rows) {
      expect(metOutage.has(key) || (committed && acknowledged.has(key)), key).toBe(true)
    }

    // Once the lease is over, a retry learns each outcome: an order that committed without
    // its answer is named by Location and not placed again; one that rolled back is placed.
    await sleep(IDEMPOTENCY_LEASE_MS)
    for (const { key } of inProgress.rows) {
      const answer = await placeOrder(key)
      if (answer.status === 201) {
        acknowledged.set(key, JSON.parse(answer.body).id)
        continue
      }
      expect(answer.status, answer.body).toBe(409)
      expect(JSON.parse(answer.body).code).toBe('IDEMPOTENCY_ANSWER_LOST')
      const placed = orders.rows
        .filter((row) => row.notes === key)
        .map((row) => `/v1/orders/${row.id}`)
      expect(placed).toEqual([answer.headers.get('location')])
    }
    const settled = await sql.query<{ notes: string; count: string }>(
      'select notes, count(*) from orders where customer_id = $1 group by notes having count(*) > 1',
      [customerId],
    )
    expect(settled.rows).toEqual([])
    const stillInProgress = await sql.query(
      'select key from idempotency_keys where status_code is null and committed_at is null',
    )
    expect(stillInProgress.rows).toEqual([])
    figures.settledAfterLease = inProgress.rowCount ?? 0

    figures.acknowledged = acknowledged.size
    figures.persisted = persisted.size
    figures.lost = lost.length
    console.log(
      `PostgreSQL stop: ${JSON.stringify(Object.fromEntries(result.statuses))}, ` +
        `${inProgress.rowCount} key(s) left in progress after a 503`,
    )
  })

  it('when Redis freezes (SIGSTOP), then orders are served unthrottled, logins answer 503 and no request waits longer than two Redis command timeouts; when Redis stops, the same; when it returns, logins work again', async () => {
    redis.freeze()
    const load = startLoad()
    const probes: Answer[] = []
    const until = Date.now() + 3000
    while (Date.now() < until) {
      probes.push(
        ...(await Promise.all([login(), send('/v1/products'), send('/ready'), send('/health')])),
      )
    }
    const frozen = await load.stop()
    redis.thaw()

    const longest = Math.max(frozen.longestMs, ...probes.map((answer) => answer.ms))
    figures.longestWaitDuringRedisFreezeMs = Math.round(longest)
    expect(api.crashes).toBe(0)
    expect([...frozen.statuses.keys()]).toEqual(['201'])
    const [logins, anonymous, ready, health] = [0, 1, 2, 3].map((i) =>
      probes.filter((_, index) => index % 4 === i).map((answer) => answer.status),
    )
    expect(new Set(logins)).toEqual(new Set([503]))
    expect(new Set(anonymous)).toEqual(new Set([401]))
    expect(new Set(ready)).toEqual(new Set([503]))
    expect(new Set(health)).toEqual(new Set([200]))
    expect(longest).toBeLessThan(REDIS_WAIT_BOUND_MS + SLACK_MS)

    await redis.stop()
    const stoppedLoad = startLoad()
    await sleep(500)
    const stoppedLogin = await login()
    const stoppedResult = await stoppedLoad.stop()
    expect(stoppedLogin.status).toBe(503)
    expect([...stoppedResult.statuses.keys()]).toEqual(['201'])
    expect(stoppedResult.longestMs).toBeLessThan(REDIS_WAIT_BOUND_MS + SLACK_MS)

    await redis.start()
    await waitUntilReady()
    expect((await login()).status).toBe(200)
    console.log(
      `Redis freeze: ${frozen.answers.length} orders, ${probes.length} probes, longest wait ${Math.round(longest)} ms`,
    )
  })

  it('when the API gets SIGTERM under load, then the requests in flight finish, later ones answer 503 or find the socket closed, and it exits 0', async () => {
    const load = startLoad(1)
    await sleep(1000)
    const signalledAt = Date.now()
    api.stopping = true
    api.child.kill('SIGTERM')
    const code = await api.exit
    const result = await load.stop()

    expect(code).toBe(0)
    const after = result.answers.filter(({ at }) => at >= signalledAt).map(({ answer }) => answer)
    // A connection the server accepted but had read no request from when it closed is reset
    // (ECONNRESET, or undici's UND_ERR_SOCKET): like a refused one, nothing of it ran, and a
    // load balancer would have stopped sending during the drain. No 5xx but 503, no timeout.
    const closedSocket = new Set(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET'])
    const failures = after.filter(
      (answer) =>
        !(
          answer.status === 201 ||
          answer.status === 503 ||
          (answer.error !== undefined && closedSocket.has(answer.error))
        ),
    )
    expect(failures.map((answer) => answer.error ?? answer.status)).toEqual([])

    const orders = await sql.query<{ id: string }>('select id from orders where customer_id = $1', [
      customerId,
    ])
    const persisted = new Set(orders.rows.map((row) => row.id))
    const lost = [...acknowledged.values()].filter((id) => !persisted.has(id))
    expect(lost).toEqual([])
    figures.acknowledged = acknowledged.size
    figures.persisted = persisted.size
    figures.lost = lost.length
    console.log(`SIGTERM: ${JSON.stringify(Object.fromEntries(result.statuses))}`)
  })
})
