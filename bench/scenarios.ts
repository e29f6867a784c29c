import autocannon from 'autocannon'
import { irisInputs } from './iris-data.js'

const JSON_HEADERS = { 'content-type': 'application/json' }
const FORM_HEADERS = { 'content-type': 'application/x-www-form-urlencoded' }

/** Request headers that prove who the caller is. */
export type AuthHeaders = Record<string, string>

export interface Scenario {
  name: string
  request: autocannon.Request
  /** The one status this scenario is meant to get; by default any 2xx. */
  expectStatus?: number
}

export interface LoadSettings {
  durationSeconds: number
  connections: number
}

export interface ScenarioResult {
  scenario: string
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  /** Connection errors and timeouts: requests that got no response at all. */
  errors: number
  /** Responses with another status than the scenario expects. */
  unexpected: number
  /** Every status code seen with its count, so a failing scenario says how it failed. */
  statusCodes: Record<string, number>
}

export interface Login {
  username: string
  password: string
}

export function bearer(token: string): AuthHeaders {
  return { authorization: `Bearer ${token}` }
}

export function apiKey(key: string): AuthHeaders {
  return { 'x-api-key': key }
}

function newProductBody(sku: string, stock = 5): string {
  return JSON.stringify({ sku, name: 'Bench product', price: '19.99', stock })
}

function passwordGrant(login: Login): string {
  return new URLSearchParams({ grant_type: 'password', ...login }).toString()
}

/** POSTs and returns the JSON answer; any other status than `expected` aborts the run. */
async function postForJson<T>(
  url: string,
  init: { headers: Record<string, string>; body: string },
  expected: number,
  what: string,
): Promise<T> {
  const response = await fetch(url, { method: 'POST', ...init })
  if (response.status !== expected) {
    throw new Error(`${what} answered ${response.status}: ${await response.text()}`)
  }
  return (await response.json()) as T
}

/**
 * The admin every suite signs in as. `ADMIN_EMAIL` creates only a database's first admin, so
 * one bench database serves every suite only if they all use the same one.
 */
export const BENCH_ADMIN: Login = {
  username: 'bench-admin@orderflow.test',
  password: 'bench-admin-pass',
}

/** An access token from the token endpoint, as an OAuth client gets one (form-encoded). */
export async function logIn(baseUrl: string, login: Login): Promise<string> {
  const tokens = await postForJson<{ access_token: string }>(
    `${baseUrl}/v1/auth/token`,
    { headers: FORM_HEADERS, body: passwordGrant(login) },
    200,
    `logging in as ${login.username}`,
  )
  return tokens.access_token
}

export async function createApiKey(baseUrl: string, auth: AuthHeaders, name: string) {
  const created = await postForJson<{ key: string }>(
    `${baseUrl}/v1/api-keys`,
    { headers: { ...JSON_HEADERS, ...auth }, body: JSON.stringify({ name }) },
    201,
    'creating an API key',
  )
  return created.key
}

/** Creates `count` products one at a time and returns their ids; any non-201 aborts the run. */
export async function seedProducts(
  baseUrl: string,
  auth: AuthHeaders,
  skuPrefix: string,
  count: number,
  stock?: number,
) {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const product = await postForJson<{ id: string }>(
      `${baseUrl}/v1/products`,
      { headers: { ...JSON_HEADERS, ...auth }, body: newProductBody(`${skuPrefix}-${i}`, stock) },
      201,
      `seeding product ${i}`,
    )
    ids.push(product.id)
  }
  return ids
}

/** GETs `${collection}/{id}`, rotating over every id so no hot row flatters the figure. */
function getEach(
  name: string,
  collection: string,
  ids: readonly string[],
  auth: AuthHeaders,
): Scenario {
  let next = 0
  return {
    name,
    request: {
      method: 'GET',
      headers: auth,
      setupRequest: (request) => ({
        ...request,
        path: `${collection}/${ids[next++ % ids.length]}`,
      }),
    },
  }
}

export function getProduct(name: string, ids: readonly string[], auth: AuthHeaders): Scenario {
  return getEach(name, '/v1/products', ids, auth)
}

export function getOrder(ids: readonly string[], auth: AuthHeaders): Scenario {
  return getEach('GET /v1/orders/{id}', '/v1/orders', ids, auth)
}

/** The first page, newest first: the list an order screen opens on, each order with its items. */
export function listOrders(auth: AuthHeaders): Scenario {
  return {
    name: 'GET /v1/orders?page_size=20',
    request: { method: 'GET', path: '/v1/orders?page_size=20', headers: auth },
  }
}

/** The most lines an order of `createOrders` has. */
export const MAX_ORDER_LINES = 3

/**
 * One unit each of 1 to MAX_ORDER_LINES products. Order n buys from slot n × MAX_ORDER_LINES
 * of `productIds` on, so the orders in flight lock disjoint product rows when there are at
 * least MAX_ORDER_LINES products per connection: the figure is the write path's, not a queue
 * on a hot row. The products need stock for every order of the run.
 */
export function createOrders(
  auth: AuthHeaders,
  customerId: string,
  productIds: readonly string[],
): Scenario {
  let next = 0
  return {
    name: 'POST /v1/orders',
    request: {
      method: 'POST',
      path: '/v1/orders',
      headers: { ...JSON_HEADERS, ...auth },
      setupRequest: (request) => {
        const order = next++
        const lines = Math.min(1 + (order % MAX_ORDER_LINES), productIds.length)
        const items = Array.from({ length: lines }, (_, line) => ({
          product_id: productIds[(order * MAX_ORDER_LINES + line) % productIds.length],
          quantity: 1,
        }))
        return { ...request, body: JSON.stringify({ customer_id: customerId, items }) }
      },
    },
  }
}

export function listProducts(auth: AuthHeaders): Scenario {
  return {
    name: 'GET /v1/products?page_size=20',
    request: { method: 'GET', path: '/v1/products?page_size=20', headers: auth },
  }
}

export function createProducts(auth: AuthHeaders, skuPrefix: string): Scenario {
  let next = 0
  return {
    name: 'POST /v1/products',
    request: {
      method: 'POST',
      path: '/v1/products',
      headers: { ...JSON_HEADERS, ...auth },
      setupRequest: (request) => ({ ...request, body: newProductBody(`${skuPrefix}-${next++}`) }),
    },
  }
}

/** The password grant, over and over: each one costs an argon2id verification. */
export function passwordLogins(name: string, login: Login, expectStatus = 200): Scenario {
  return {
    name,
    expectStatus,
    request: {
      method: 'POST',
      path: '/v1/auth/token',
      headers: FORM_HEADERS,
      body: passwordGrant(login),
    },
  }
}

/**
 * POSTs the bodies in turn. They are serialised up front: the load generator shares the
 * machine with the server, so it should spend its time sending, not building JSON.
 */
function postEach(
  name: string,
  path: string,
  bodies: readonly string[],
  auth: AuthHeaders,
): Scenario {
  let next = 0
  return {
    name,
    expectStatus: 200,
    request: {
      method: 'POST',
      path,
      headers: { ...JSON_HEADERS, ...auth },
      setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
    },
  }
}

/**
 * `POST /v1/predict`, rotating over `rows` (iris measurements): requests in flight carry
 * different rows, so a batch gathers distinct inputs.
 */
export function predictFeatures(
  name: string,
  rows: readonly (readonly number[])[],
  auth: AuthHeaders,
): Scenario {
  const bodies = rows.map((features) => JSON.stringify({ features }))
  return postEach(name, '/v1/predict', bodies, auth)
}

/** `POST /v1/models/{model}/predict` with named inputs, rotating over `rows` as above. */
export function predictInputs(
  name: string,
  rows: readonly (readonly number[])[],
  auth: AuthHeaders,
): Scenario {
  const bodies = rows.map((row) => JSON.stringify({ inputs: irisInputs(row) }))
  return postEach(name, '/v1/models/iris/predict', bodies, auth)
}

/** `POST /v1/models/{model}/predict/batch`, `instances` consecutive rows of the pool each. */
export function predictBatch(
  name: string,
  rows: readonly (readonly number[])[],
  instances: number,
  auth: AuthHeaders,
): Scenario {
  const bodies = rows.map((_, start) =>
    JSON.stringify({
      instances: Array.from({ length: instances }, (_, i) =>
        irisInputs(rows[(start + i) % rows.length] ?? []),
      ),
    }),
  )
  return postEach(name, '/v1/models/iris/predict/batch', bodies, auth)
}

/** Sends the scenario's next request once, outside the load. */
function sendNext(baseUrl: string, scenario: Scenario): Promise<Response> {
  const { setupRequest } = scenario.request
  const request = typeof setupRequest === 'function' ? setupRequest(scenario.request, {}) : null
  const { method = 'GET', path = '/', headers, body } = request ?? scenario.request
  return fetch(`${baseUrl}${path}`, {
    method,
    headers: headers as Record<string, string> | undefined,
    body: body as string | undefined,
  })
}

/**
 * Sends the scenario's next request once, outside the load, and returns the JSON answer;
 * another status than the scenario expects aborts the run. For checks before a measurement.
 */
export async function sendOnce<T>(baseUrl: string, scenario: Scenario): Promise<T> {
  const response = await sendNext(baseUrl, scenario)
  const expected = scenario.expectStatus ?? 200
  if (response.status !== expected) {
    throw new Error(`${scenario.name} answered ${response.status}: ${await response.text()}`)
  }
  return (await response.json()) as T
}

/**
 * Waits until the server has worked off what a finished sample left behind. autocannon ends a
 * sample by closing its connections, not by waiting for their answers, so up to one request
 * per connection is still queued in the server (in a model's queue, or for a database
 * connection); the next sample would otherwise meet them, with twice the connections'
 * requests in flight. One more request of the scenario queues behind them and is answered
 * after them; its status does not matter.
 */
export async function settle(baseUrl: string, scenario: Scenario): Promise<void> {
  const response = await sendNext(baseUrl, scenario)
  await response.arrayBuffer()
}

/** Rows and inference calls a server has run for `model` so far, from its batch-size histogram. */
export async function readBatchSizes(baseUrl: string, model: string) {
  const response = await fetch(`${baseUrl}/metrics`)
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`)
  const text = await response.text()
  const series = (suffix: string) => {
    const line = text
      .split('\n')
      .find((candidate) => candidate.startsWith(`model_batch_size_${suffix}{model="${model}"}`))
    return Number(line?.split(' ').at(-1) ?? Number.NaN)
  }
  return { rows: series('sum'), calls: series('count') }
}

/** What one autocannon run saw, kept raw so that runs in slices can be added up. */
export interface Sample {
  seconds: number
  latenciesMs: number[]
  errors: number
  statusCodes: Record<string, number>
}

/** Resolves with the raw sample; `onStart` hands out the instance so a Ctrl-C can stop it. */
export function sampleScenario(
  baseUrl: string,
  scenario: Scenario,
  load: LoadSettings,
  onStart: (instance: autocannon.Instance) => void = () => {},
): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const latenciesMs: number[] = []
    const instance = autocannon(
      {
        url: baseUrl,
        connections: load.connections,
        duration: load.durationSeconds,
        requests: [scenario.request],
      },
      (error, result) => {
        if (error) return reject(error)
        const statusCodes: Record<string, number> = {}
        for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) {
          statusCodes[code] = stats.count ?? 0
        }
        resolve({
          seconds: result.duration,
          latenciesMs,
          errors: result.errors,
          statusCodes,
        })
      },
    )
    instance.on('response', (_client, _status, _bytes, responseTimeMs) => {
      latenciesMs.push(responseTimeMs)
    })
    onStart(instance)
  })
}

/** One result from one or more samples of the same scenario. */
export function summarize(scenario: Scenario, samples: readonly Sample[]): ScenarioResult {
  const statusCodes: Record<string, number> = {}
  for (const sample of samples) {
    for (const [code, count] of Object.entries(sample.statusCodes)) {
      statusCodes[code] = (statusCodes[code] ?? 0) + count
    }
  }
  let unexpected = 0
  for (const [code, count] of Object.entries(statusCodes)) {
    const wanted = scenario.expectStatus ? code === String(scenario.expectStatus) : code[0] === '2'
    if (!wanted) unexpected += count
  }
  const latencies = samples.flatMap((sample) => sample.latenciesMs).sort((a, b) => a - b)
  const seconds = samples.reduce((sum, sample) => sum + sample.seconds, 0)
  return {
    scenario: scenario.name,
    requestsPerSecond: seconds > 0 ? latencies.length / seconds : 0,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    errors: samples.reduce((sum, sample) => sum + sample.errors, 0),
    unexpected,
    statusCodes,
  }
}

/** Nearest-rank percentile of sorted values, to 0.1 ms. */
function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0
  const value = sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)] ?? 0
  return Math.round(value * 10) / 10
}
