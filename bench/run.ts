import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type autocannon from 'autocannon'
import { benchCeilings, type CeilingPair, ceilingsTable } from './ceilings/suite.js'
import { irisRows } from './iris-data.js'
import { type CeilingResult, measureOnnxCeiling } from './onnx-ceiling.js'
import {
  ORDER_PRODUCT_STOCK,
  ORDER_TARGET,
  orderProductSkuPrefix,
  prepareOrderData,
} from './order-data.js'
import {
  type AuthHeaders,
  apiKey,
  BENCH_ADMIN,
  bearer,
  createApiKey,
  createOrders,
  createProducts,
  getOrder,
  getProduct,
  type LoadSettings,
  listOrders,
  listProducts,
  logIn,
  MAX_ORDER_LINES,
  passwordLogins,
  predictBatch,
  predictFeatures,
  predictInputs,
  readBatchSizes,
  type Sample,
  type Scenario,
  type ScenarioResult,
  sampleScenario,
  seedProducts,
  sendOnce,
  settle,
  summarize,
} from './scenarios.js'
import {
  type AuthMode,
  ensureBuilt,
  makeDataDir,
  type RunningServer,
  removeDataDir,
  type ServerTarget,
  startServer,
  stopAllServers,
} from './server.js'
import { benchStartup, type StartupResult, startupTable } from './startup.js'

const MODES = ['embedded', 'services'] as const
type Mode = (typeof MODES)[number]
// auth: auth overhead, logins, login flood and products; orders: the order endpoints on
// ORDER_TARGET seeded orders; predict: model serving, batching and cache on and off, against
// ONNX Runtime without HTTP; ceilings: the hot routes beside the reference servers they
// are built from (bench/ceilings/), service ÷ ceiling; startup: start to ready and idle
// memory (bench/startup.ts).
const SUITES = ['auth', 'orders', 'predict', 'ceilings', 'startup'] as const
type Suite = (typeof SUITES)[number]
// Connections when --connections is not given. Predict needs enough requests in flight for
// its batcher to gather them.
const DEFAULT_CONNECTIONS: Record<Suite, number> = {
  auth: 10,
  orders: 10,
  predict: 64,
  ceilings: 64,
  startup: 0,
}
// Starts with an existing data directory per mode; the startup suite reports their median.
const STARTUP_RUNS = 3
const SEED_COUNT = 200
// Unrecorded load before each measurement, so JIT compilation and cold caches stay out of it.
const WARMUP_SECONDS = 1
// Length of one slice when scenarios take turns (see `interleaved`).
const SLICE_SECONDS = 1
// Not a secret: it guards throwaway bench databases only. It must stay the same from run to
// run, because services mode keeps its database and its first admin.
// Rows the batcher may gather into one inference call: as many as 64 connections keep in
// flight, so a full batch is possible. The ONNX ceiling runs batches of the same size.
const PREDICT_BATCH_ROWS = 64
// Instances of one batch prediction request.
const PREDICT_BATCH_INSTANCES = 100
// Measured time of each ONNX Runtime loop of the ceiling.
const CEILING_SECONDS = 3
const IRIS_MODEL_PATH = fileURLToPath(new URL('../models/iris.onnx', import.meta.url))

const SCENARIO = {
  off: 'GET /v1/products/{id}, auth off',
  jwtOnly: 'GET /v1/products/{id}, bearer, no user lookup',
  bearer: 'GET /v1/products/{id}, bearer',
  apiKey: 'GET /v1/products/{id}, API key',
  logins: 'POST /v1/auth/token, password grant',
  floodWithBearer: 'POST /v1/auth/token, wrong password (flood beside bearer GETs)',
  bearerInFlood: 'GET /v1/products/{id}, bearer, during the flood',
  floodWithApiKey: 'POST /v1/auth/token, wrong password (flood beside API-key GETs)',
  apiKeyInFlood: 'GET /v1/products/{id}, API key, during the flood',
} as const

const PREDICT_SCENARIO = {
  featuresOn: 'POST /v1/predict, batching on',
  featuresOff: 'POST /v1/predict, batching off',
  inputsOn: 'POST /v1/models/iris/predict, batching on',
  inputsOff: 'POST /v1/models/iris/predict, batching off',
  batch: `POST /v1/models/iris/predict/batch, ${PREDICT_BATCH_INSTANCES} rows, batching on`,
  cacheHit: 'POST /v1/models/iris/predict, cache on, same input every time',
} as const

/** Rows one request of a predict scenario carries, for rows/s. */
const ROWS_PER_REQUEST: Record<string, number> = {
  [PREDICT_SCENARIO.batch]: PREDICT_BATCH_INSTANCES,
}

/**
 * The predict suite's servers differ in these settings only. Each is set on every server, so
 * a value in the environment or a local .env cannot leak into the comparison; an empty value
 * reads as unset (MODEL_BATCHING: no per-model override).
 */
const PREDICT_SERVER_ENV = {
  common: {
    MODELS_REGISTER_SHIPPED: 'true',
    MODEL_BATCHING: '',
    INFERENCE_MAX_WAIT_MS: '2',
    INFERENCE_INTRA_OP_THREADS: '1',
  },
  batching: { INFERENCE_MAX_BATCH_SIZE: String(PREDICT_BATCH_ROWS), PREDICTION_CACHE_TTL_MS: '0' },
  noBatching: { INFERENCE_MAX_BATCH_SIZE: '1', PREDICTION_CACHE_TTL_MS: '0' },
  cache: {
    INFERENCE_MAX_BATCH_SIZE: String(PREDICT_BATCH_ROWS),
    PREDICTION_CACHE_TTL_MS: '60000',
  },
} as const

interface Row extends ScenarioResult {
  mode: Mode
}

interface Summary {
  mode: Mode
  bearerVsOff: number
  apiKeyVsOff: number
  noLookupVsOff: number
  loginsPerSecond: number
  bearerP99Ms: { alone: number; inFlood: number }
  apiKeyP99Ms: { alone: number; inFlood: number }
}

interface PredictSummary {
  mode: Mode
  /** Batching on ÷ off, req/s, per endpoint. */
  featuresOnVsOff: number
  inputsOnVsOff: number
  batchRowsPerSecond: number
  /** Cache hits ÷ the same endpoint with the cache off (batching on both). */
  cacheHitVsOff: number
  /** Mean rows of one inference call on each server, from its /metrics. */
  rowsPerCall: RowsPerCall
}

/** By server of the predict suite; the cache server runs (almost) none. */
type RowsPerCall = Record<'batching' | 'noBatching' | 'batch', number>

interface Options {
  modes: Mode[]
  suites: Suite[]
  durationSeconds: number
  /** From --connections; unset, each suite takes its DEFAULT_CONNECTIONS. */
  connections: number | undefined
}

interface Run {
  id: string
  /** One per run, shared by its servers, so the no-lookup baseline accepts the real tokens. */
  jwtSecret: string
}

/** The loads running right now, so an interrupt can stop them before the servers. */
const activeLoads = new Set<autocannon.Instance>()
/** Data directories prepared outside a server, so an interrupt can remove them too. */
const preparedDataDirs = new Set<string>()
let interrupted = false
const trackLoad = (instance: autocannon.Instance) => {
  activeLoads.add(instance)
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string', default: 'both' },
      suite: { type: 'string', default: 'all' },
      duration: { type: 'string', default: '10' },
      connections: { type: 'string' },
    },
  })
  const modes: Mode[] =
    values.mode === 'both' ? [...MODES] : MODES.filter((mode) => mode === values.mode)
  if (modes.length === 0) throw new Error(`--mode must be embedded, services or both`)
  const suites: Suite[] =
    values.suite === 'all' ? [...SUITES] : SUITES.filter((suite) => suite === values.suite)
  if (suites.length === 0) throw new Error(`--suite must be ${SUITES.join(', ')} or all`)
  return {
    modes,
    suites,
    durationSeconds: positiveInteger('--duration', values.duration),
    connections:
      values.connections === undefined
        ? undefined
        : positiveInteger('--connections', values.connections),
  }
}

function loadFor(options: Options, suite: Suite): LoadSettings {
  return {
    durationSeconds: options.durationSeconds,
    connections: options.connections ?? DEFAULT_CONNECTIONS[suite],
  }
}

function positiveInteger(flag: string, value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${flag} must be a positive integer`)
  return parsed
}

/** Services mode needs a real Postgres; Redis is optional, as it is for the service itself. */
function servicesTarget(): ServerTarget | string {
  const databaseUrl = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL
  const redisUrl = process.env.BENCH_REDIS_URL || process.env.REDIS_URL
  if (!databaseUrl) return 'neither BENCH_DATABASE_URL nor DATABASE_URL is set'
  return redisUrl ? { databaseUrl, redisUrl } : { databaseUrl }
}

/** A scenario and the server it runs against. */
type Target = [RunningServer, Scenario]

/**
 * One mode. The auth overhead compares the real server (auth on) with two baselines built
 * the same way, which differ only in who resolves the caller; every GET sends the same
 * bearer header, so the baselines get the same bytes and skip only the checks.
 */
async function benchAuth(mode: Mode, target: ServerTarget, load: LoadSettings, run: Run) {
  const rows: Row[] = []
  const record = (results: ScenarioResult[]) => {
    if (!interrupted) rows.push(...results.map((result) => ({ mode, ...result })))
  }
  const start = (auth: AuthMode) =>
    startServer(target, {
      auth,
      admin: { email: BENCH_ADMIN.username, password: BENCH_ADMIN.password },
      jwtSecret: run.jwtSecret,
    })

  const server = await start('on')
  console.error(`${mode}: ready in ${(server.startupMs / 1000).toFixed(1)} s at ${server.baseUrl}`)
  try {
    const token = await logIn(server.baseUrl, BENCH_ADMIN).catch((error: Error) => {
      // ADMIN_EMAIL only creates the first admin: a database with another one never gets ours.
      throw new Error(`${error.message} (a reused database needs the bench's own admin)`)
    })
    const asBearer = bearer(token)
    const asKey = apiKey(await createApiKey(server.baseUrl, asBearer, `bench ${run.id}`))
    const ids = await seedProducts(server.baseUrl, asBearer, `BENCH-${run.id}`, SEED_COUNT)

    const off = await start('off')
    const noLookup = await start('jwt-only')
    try {
      const seed = (baseline: RunningServer, tag: string) =>
        seedProducts(baseline.baseUrl, asBearer, `BENCH-${run.id}-${tag}`, SEED_COUNT)
      const offIds = await seed(off, 'OFF')
      const noLookupIds = await seed(noLookup, 'JWT')
      record(
        await interleaved(mode, load, [
          [off, getProduct(SCENARIO.off, offIds, asBearer)],
          [noLookup, getProduct(SCENARIO.jwtOnly, noLookupIds, asBearer)],
          [server, getProduct(SCENARIO.bearer, ids, asBearer)],
          [server, getProduct(SCENARIO.apiKey, ids, asKey)],
        ]),
      )
    } finally {
      await Promise.all([off.stop(), noLookup.stop()])
    }

    record(await together(mode, load, [[server, passwordLogins(SCENARIO.logins, BENCH_ADMIN)]]))
    // Worst case for the rest of the API: every guess costs a full argon2id verification,
    // as it would from many addresses each staying under the real login limit.
    const guess = { ...BENCH_ADMIN, password: 'a wrong password' }
    const floods = [
      [SCENARIO.floodWithBearer, getProduct(SCENARIO.bearerInFlood, ids, asBearer)],
      [SCENARIO.floodWithApiKey, getProduct(SCENARIO.apiKeyInFlood, ids, asKey)],
    ] as const
    for (const [flood, get] of floods) {
      record(
        await together(mode, load, [
          [server, passwordLogins(flood, guess, 400)],
          [server, get],
        ]),
      )
    }

    record(await together(mode, load, [[server, listProducts(asBearer)]]))
    // Last on purpose: every write grows the table that the list scenario counts.
    record(await together(mode, load, [[server, createProducts(asBearer, `BENCH-${run.id}-W`)]]))
    return { rows, startupMs: server.startupMs }
  } finally {
    await server.stop()
  }
}

/**
 * The order endpoints on ORDER_TARGET seeded orders of 3 items each. The data is seeded
 * before the server starts (embedded: a fresh data directory every run; services: only the
 * shortfall), and the scenarios run one at a time, the write last because it grows the
 * table that the list counts.
 */
async function benchOrders(mode: Mode, target: ServerTarget, load: LoadSettings, run: Run) {
  const rows: Row[] = []
  const dataDir = await makeDataDir()
  preparedDataDirs.add(dataDir)
  try {
    console.error(`${mode}: making sure the bench admin owns ${ORDER_TARGET} orders`)
    const data = await prepareOrderData(
      { databaseUrl: target.databaseUrl, dataDir },
      { email: BENCH_ADMIN.username, password: BENCH_ADMIN.password },
    )
    console.error(
      `${mode}: deleted ${data.removed} orders of earlier runs, ` +
        (data.seeded > 0
          ? `seeded ${data.seeded} in ${data.seedSeconds.toFixed(1)} s`
          : 'seeded none (enough already)'),
    )
    const server = await startServer(
      { ...target, dataDir },
      {
        auth: 'on',
        admin: { email: BENCH_ADMIN.username, password: BENCH_ADMIN.password },
        jwtSecret: run.jwtSecret,
      },
    )
    console.error(
      `${mode}: ready in ${(server.startupMs / 1000).toFixed(1)} s at ${server.baseUrl}`,
    )
    try {
      const asBearer = bearer(await logIn(server.baseUrl, BENCH_ADMIN))
      const productIds = await seedProducts(
        server.baseUrl,
        asBearer,
        orderProductSkuPrefix(run.id),
        // Twice the rows that the orders in flight lock at once (see `createOrders`).
        2 * load.connections * MAX_ORDER_LINES,
        ORDER_PRODUCT_STOCK,
      )
      const scenarios = [
        getOrder(data.orderIds, asBearer),
        listOrders(asBearer),
        createOrders(asBearer, data.customerId, productIds),
      ]
      for (const scenario of scenarios) {
        const results = await together(mode, load, [[server, scenario]])
        if (!interrupted) rows.push(...results.map((result) => ({ mode, ...result })))
      }
      return rows
    } finally {
      await server.stop()
    }
  } finally {
    await removeDataDir(dataDir)
    preparedDataDirs.delete(dataDir)
  }
}

/** A server of the predict suite, with the credentials its scenarios send. */
interface PredictServer {
  server: RunningServer
  auth: AuthHeaders
  cacheOn: boolean
}

/**
 * Model serving, on servers that differ only in PREDICT_SERVER_ENV: batching on, batching
 * off, and the prediction cache on. The batch endpoint has a batching server of its own, so
 * that the batch sizes each server reports belong to one kind of request. The six scenarios
 * take turns in short slices (see `interleaved`), so each ratio compares the same moments of
 * a noisy machine.
 */
async function benchPredict(mode: Mode, target: ServerTarget, load: LoadSettings, run: Run) {
  const pool = irisRows()
  const running: RunningServer[] = []
  // One at a time: in services mode the first registers the shipped models that all share.
  const start = async (env: Record<string, string>, cacheOn: boolean): Promise<PredictServer> => {
    const server = await startServer(target, {
      auth: 'on',
      admin: { email: BENCH_ADMIN.username, password: BENCH_ADMIN.password },
      jwtSecret: run.jwtSecret,
      env: { ...PREDICT_SERVER_ENV.common, ...env },
    })
    running.push(server)
    console.error(
      `${mode}: ready in ${(server.startupMs / 1000).toFixed(1)} s at ${server.baseUrl}`,
    )
    return { server, auth: bearer(await logIn(server.baseUrl, BENCH_ADMIN)), cacheOn }
  }
  try {
    const on = await start(PREDICT_SERVER_ENV.batching, false)
    const off = await start(PREDICT_SERVER_ENV.noBatching, false)
    const batch = await start(PREDICT_SERVER_ENV.batching, false)
    const cache = await start(PREDICT_SERVER_ENV.cache, true)
    const targets: Target[] = [
      [on.server, predictFeatures(PREDICT_SCENARIO.featuresOn, pool, on.auth)],
      [off.server, predictFeatures(PREDICT_SCENARIO.featuresOff, pool, off.auth)],
      [on.server, predictInputs(PREDICT_SCENARIO.inputsOn, pool, on.auth)],
      [off.server, predictInputs(PREDICT_SCENARIO.inputsOff, pool, off.auth)],
      [
        batch.server,
        predictBatch(PREDICT_SCENARIO.batch, pool, PREDICT_BATCH_INSTANCES, batch.auth),
      ],
      [cache.server, predictInputs(PREDICT_SCENARIO.cacheHit, pool.slice(0, 1), cache.auth)],
    ]
    await checkPredictions(targets, [on, off, batch, cache], pool)
    const counted = { batching: on, noBatching: off, batch }
    const before = await batchSizes(counted)
    const results = await interleaved(mode, load, targets)
    const after = await batchSizes(counted)
    const perCall = (server: keyof RowsPerCall) => {
      const rows = after[server].rows - before[server].rows
      return Number((rows / (after[server].calls - before[server].calls)).toFixed(1))
    }
    const rowsPerCall = {
      batching: perCall('batching'),
      noBatching: perCall('noBatching'),
      batch: perCall('batch'),
    }
    return { rows: results.map((result): Row => ({ mode, ...result })), rowsPerCall }
  } finally {
    await Promise.all(running.map((server) => server.stop()))
  }
}

/** The iris rows and inference calls each server has counted so far. */
async function batchSizes(servers: Record<keyof RowsPerCall, PredictServer>) {
  const read = (name: keyof RowsPerCall) => readBatchSizes(servers[name].server.baseUrl, 'iris')
  const [batching, noBatching, batch] = await Promise.all([
    read('batching'),
    read('noBatching'),
    read('batch'),
  ])
  return { batching, noBatching, batch }
}

/**
 * One request of each scenario, and the same input twice on each server, before any load: a
 * server that answers otherwise than the contract, or caches when it should not, would make
 * every figure of the suite measure something else.
 */
async function checkPredictions(
  targets: readonly Target[],
  servers: readonly PredictServer[],
  pool: readonly (readonly number[])[],
) {
  for (const [server, scenario] of targets) {
    const answer = await sendOnce<{ predictions?: unknown; errors?: unknown }>(
      server.baseUrl,
      scenario,
    )
    if (scenario.name !== PREDICT_SCENARIO.batch) continue
    const { predictions, errors } = answer
    if (
      !Array.isArray(predictions) ||
      predictions.length !== PREDICT_BATCH_INSTANCES ||
      !Array.isArray(errors) ||
      errors.length > 0
    ) {
      throw new Error(`${scenario.name} answered ${JSON.stringify(answer).slice(0, 300)}`)
    }
  }
  for (const { server, auth, cacheOn } of servers) {
    const repeat = predictInputs('the same input twice', pool.slice(-1), auth)
    await sendOnce(server.baseUrl, repeat)
    const { cached } = await sendOnce<{ cached?: unknown }>(server.baseUrl, repeat)
    if (cached !== cacheOn) {
      throw new Error(
        `${server.baseUrl} answered the same input twice with cached: ${cached}, expected ${cacheOn}`,
      )
    }
  }
}

async function warmUp(load: LoadSettings, targets: readonly Target[]) {
  const warmup = { ...load, durationSeconds: WARMUP_SECONDS }
  await Promise.all(
    targets.map(async ([server, scenario]) => {
      await sampleScenario(server.baseUrl, scenario, warmup, trackLoad)
      await settle(server.baseUrl, scenario)
    }),
  )
}

/** Runs the scenarios at the same time, each on its own connections, after a warm-up. */
async function together(mode: Mode, load: LoadSettings, targets: readonly Target[]) {
  if (interrupted) return []
  await warmUp(load, targets)
  if (interrupted) return []
  const names = targets.map(([, scenario]) => scenario.name).join(' + ')
  console.error(`${mode}: ${names} for ${load.durationSeconds} s`)
  const samples = await Promise.all(
    targets.map(([server, scenario]) => sampleScenario(server.baseUrl, scenario, load, trackLoad)),
  )
  activeLoads.clear()
  return targets.map(([, scenario], i) => summarize(scenario, [samples[i] as Sample]))
}

/**
 * Runs the scenarios one after another in short slices, round after round, starting each
 * round one scenario later: on a shared machine a burst of foreign load then lands on all
 * of them alike, instead of on whichever happened to run at that moment. Each scenario
 * still gets `durationSeconds` in all.
 */
async function interleaved(mode: Mode, load: LoadSettings, targets: readonly Target[]) {
  if (interrupted) return []
  for (const target of targets) await warmUp(load, [target])
  const rounds = Math.max(1, Math.floor(load.durationSeconds / SLICE_SECONDS))
  const slice = { ...load, durationSeconds: load.durationSeconds / rounds }
  console.error(
    `${mode}: ${targets.map(([, scenario]) => scenario.name).join(', ')}: ` +
      `${rounds} rounds of ${slice.durationSeconds.toFixed(1)} s each`,
  )
  const samples = targets.map((): Sample[] => [])
  for (let round = 0; round < rounds && !interrupted; round++) {
    for (let step = 0; step < targets.length && !interrupted; step++) {
      const index = (round + step) % targets.length
      const [server, scenario] = targets[index] as Target
      samples[index]?.push(await sampleScenario(server.baseUrl, scenario, slice, trackLoad))
      // Outside the timed slices, so that the next slice meets none of this one's requests:
      // neither another server's slice, whose CPU they would take, nor, with two scenarios,
      // this server's own next slice (a round ends and the next begins on the same server),
      // which would find twice the connections' requests in flight.
      await settle(server.baseUrl, scenario)
    }
  }
  activeLoads.clear()
  return interrupted ? [] : targets.map(([, scenario], i) => summarize(scenario, samples[i] ?? []))
}

function summarizeMode(mode: Mode, rows: Row[]): Summary | undefined {
  const find = (name: string) => rows.find((row) => row.mode === mode && row.scenario === name)
  const [off, jwtOnly, withBearer, withKey, logins, bearerInFlood, keyInFlood] = [
    SCENARIO.off,
    SCENARIO.jwtOnly,
    SCENARIO.bearer,
    SCENARIO.apiKey,
    SCENARIO.logins,
    SCENARIO.bearerInFlood,
    SCENARIO.apiKeyInFlood,
  ].map(find)
  if (!off || !jwtOnly || !withBearer || !withKey || !logins || !bearerInFlood || !keyInFlood) {
    return undefined
  }
  const ratio = (row: Row) => Number((row.requestsPerSecond / off.requestsPerSecond).toFixed(2))
  return {
    mode,
    bearerVsOff: ratio(withBearer),
    apiKeyVsOff: ratio(withKey),
    noLookupVsOff: ratio(jwtOnly),
    loginsPerSecond: Number(logins.requestsPerSecond.toFixed(1)),
    bearerP99Ms: { alone: withBearer.p99Ms, inFlood: bearerInFlood.p99Ms },
    apiKeyP99Ms: { alone: withKey.p99Ms, inFlood: keyInFlood.p99Ms },
  }
}

function summarizePredict(
  mode: Mode,
  rows: Row[],
  rowsPerCall: RowsPerCall,
): PredictSummary | undefined {
  const find = (name: string) => rows.find((row) => row.mode === mode && row.scenario === name)
  const [featuresOn, featuresOff, inputsOn, inputsOff, batch, cacheHit] = [
    PREDICT_SCENARIO.featuresOn,
    PREDICT_SCENARIO.featuresOff,
    PREDICT_SCENARIO.inputsOn,
    PREDICT_SCENARIO.inputsOff,
    PREDICT_SCENARIO.batch,
    PREDICT_SCENARIO.cacheHit,
  ].map(find)
  if (!featuresOn || !featuresOff || !inputsOn || !inputsOff || !batch || !cacheHit) {
    return undefined
  }
  const ratio = (a: Row, b: Row) => Number((a.requestsPerSecond / b.requestsPerSecond).toFixed(2))
  return {
    mode,
    featuresOnVsOff: ratio(featuresOn, featuresOff),
    inputsOnVsOff: ratio(inputsOn, inputsOff),
    batchRowsPerSecond: Math.round(rowsPerSecond(batch)),
    cacheHitVsOff: ratio(cacheHit, inputsOn),
    rowsPerCall,
  }
}

function rowsPerSecond(row: Row): number {
  return row.requestsPerSecond * (ROWS_PER_REQUEST[row.scenario] ?? 1)
}

function machineFacts() {
  const cpus = os.cpus()
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuCount: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    totalMemoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    node: process.version,
    // The machine may be shared: a high load average says the numbers are noisy.
    loadAverage1m: Number(os.loadavg()[0]?.toFixed(2)),
  }
}

function resultsTable(rows: Row[]): string {
  const lines = [
    '| mode | scenario | req/s (mean) | p50 ms | p99 ms | errors/unexpected |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ]
  for (const row of rows) {
    lines.push(
      `| ${row.mode} | ${row.scenario} | ${row.requestsPerSecond.toFixed(0)} | ${row.p50Ms} | ${row.p99Ms} | ${row.errors}/${row.unexpected} |`,
    )
  }
  return lines.join('\n')
}

function summaryTable(summaries: Summary[]): string {
  const lines = [
    '| mode | bearer ÷ off | API key ÷ off | bearer, no user lookup ÷ off | logins/s | GET p99 ms, bearer: alone → flood | GET p99 ms, API key: alone → flood |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const s of summaries) {
    lines.push(
      `| ${s.mode} | ${s.bearerVsOff} | ${s.apiKeyVsOff} | ${s.noLookupVsOff} | ${s.loginsPerSecond} | ${s.bearerP99Ms.alone} → ${s.bearerP99Ms.inFlood} | ${s.apiKeyP99Ms.alone} → ${s.apiKeyP99Ms.inFlood} |`,
    )
  }
  return lines.join('\n')
}

function predictSummaryTable(summaries: PredictSummary[]): string {
  const lines = [
    '| mode | /v1/predict: batching on ÷ off | /v1/models/iris/predict: batching on ÷ off | batch: rows/s | cache hit ÷ cache off | rows per inference call: batching on · off · batch endpoint |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const s of summaries) {
    const perCall = s.rowsPerCall
    lines.push(
      `| ${s.mode} | ${s.featuresOnVsOff} | ${s.inputsOnVsOff} | ${s.batchRowsPerSecond} | ${s.cacheHitVsOff} | ${perCall.batching} · ${perCall.noBatching} · ${perCall.batch} |`,
    )
  }
  return lines.join('\n')
}

/** The ceiling, then each predict scenario's rows/s as a fraction of it. */
function ceilingTables(ceiling: CeilingResult[], rows: Row[]): string {
  const lines = [
    '| ONNX Runtime in the bench process, no HTTP, 1 thread | rows/s | p50 ms a run | p99 ms a run |',
    '| --- | ---: | ---: | ---: |',
  ]
  for (const loop of ceiling) {
    lines.push(
      `| ${loop.name} | ${Math.round(loop.rowsPerSecond)} | ${loop.p50Ms} | ${loop.p99Ms} |`,
    )
  }
  const names: readonly string[] = Object.values(PREDICT_SCENARIO)
  lines.push(
    '',
    `| mode | scenario | rows/s | ${ceiling.map((loop) => `÷ ${loop.name}`).join(' | ')} |`,
    `| --- | --- | ---: | ${ceiling.map(() => '---:').join(' | ')} |`,
  )
  for (const row of rows.filter((candidate) => names.includes(candidate.scenario))) {
    const served = rowsPerSecond(row)
    const fractions = ceiling.map((loop) => (served / loop.rowsPerSecond).toPrecision(2))
    lines.push(
      `| ${row.mode} | ${row.scenario} | ${Math.round(served)} | ${fractions.join(' | ')} |`,
    )
  }
  return lines.join('\n')
}

/** A scenario that did not get its expected answer every time must not hide in a table. */
function problems(rows: readonly (ScenarioResult & { mode: string })[]): string[] {
  return rows
    .filter((row) => row.errors > 0 || row.unexpected > 0)
    .map((row) => {
      const codes = Object.entries(row.statusCodes)
        .map(([code, count]) => `${count}×${code}`)
        .join(', ')
      return `WARNING ${row.mode} ${row.scenario}: ${row.errors} connection errors/timeouts, ${row.unexpected} unexpected statuses (all: ${codes || 'none'})`
    })
}

async function main() {
  // The ingest suite runs its servers in this process and has options of its own.
  const argv = process.argv.slice(2)
  if (
    argv.some(
      (arg, i) => arg === '--suite=ingest' || (arg === '--suite' && argv[i + 1] === 'ingest'),
    )
  ) {
    const { runIngestSuite } = await import('./ingest.js')
    await runIngestSuite(argv)
    return
  }
  // So does the job latency suite: an API and a worker process on PostgreSQL and Redis.
  if (
    argv.some((arg, i) => arg === '--suite=jobs' || (arg === '--suite' && argv[i + 1] === 'jobs'))
  ) {
    const { runJobLatencySuite } = await import('./job-latency.js')
    await runJobLatencySuite(argv)
    return
  }
  const options = parseOptions(process.argv.slice(2))
  const run: Run = {
    // SKUs must be unique across runs: services mode keeps its rows in a shared database.
    id: `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`.toUpperCase(),
    jwtSecret: randomBytes(32).toString('hex'),
  }
  const date = new Date().toISOString()
  const machine = machineFacts()
  ensureBuilt()

  const rows: Row[] = []
  const summaries: Summary[] = []
  const predictSummaries: PredictSummary[] = []
  let ceiling: CeilingResult[] = []
  const ceilingPairs: CeilingPair[] = []
  const startupResults: StartupResult[] = []
  const startup: Partial<Record<Mode, number>> = {}
  const skipped: Partial<Record<Mode, string>> = {}
  for (const mode of options.modes) {
    const target = mode === 'embedded' ? {} : servicesTarget()
    if (typeof target === 'string') {
      skipped[mode] = target
      console.error(`${mode}: skipped, ${target}`)
      continue
    }
    if (options.suites.includes('auth')) {
      const outcome = await benchAuth(mode, target, loadFor(options, 'auth'), run)
      rows.push(...outcome.rows)
      startup[mode] = Math.round(outcome.startupMs)
      const summary = summarizeMode(mode, outcome.rows)
      if (summary) summaries.push(summary)
    }
    if (options.suites.includes('orders') && !interrupted) {
      rows.push(...(await benchOrders(mode, target, loadFor(options, 'orders'), run)))
    }
    if (options.suites.includes('predict') && !interrupted) {
      if (ceiling.length === 0) {
        console.error(`ONNX Runtime ceiling: ${CEILING_SECONDS} s per loop, no servers running`)
        ceiling = await measureOnnxCeiling({
          modelPath: IRIS_MODEL_PATH,
          rows: irisRows(),
          batchRows: PREDICT_BATCH_ROWS,
          seconds: CEILING_SECONDS,
        })
      }
      const outcome = await benchPredict(mode, target, loadFor(options, 'predict'), run)
      rows.push(...outcome.rows)
      const summary = summarizePredict(mode, outcome.rows, outcome.rowsPerCall)
      if (summary) predictSummaries.push(summary)
    }
    if (options.suites.includes('ceilings') && !interrupted) {
      const postgres = mode === 'embedded' ? servicesTarget() : target
      const load = loadFor(options, 'ceilings')
      ceilingPairs.push(
        ...(await benchCeilings({
          mode,
          target,
          postgresUrl: typeof postgres === 'string' ? undefined : postgres.databaseUrl,
          load,
          run,
          admin: { email: BENCH_ADMIN.username, password: BENCH_ADMIN.password },
          measure: (targets) => interleaved(mode, load, targets),
          preparedDataDirs,
          log: (line) => console.error(line),
        })),
      )
    }
    if (options.suites.includes('startup') && !interrupted) {
      startupResults.push(
        ...(await benchStartup({
          mode,
          target,
          runs: STARTUP_RUNS,
          log: (line) => console.error(line),
        })),
      )
    }
  }
  const connections = Object.fromEntries(
    options.suites.map((suite) => [suite, loadFor(options, suite).connections]),
  )

  console.log(
    `OrderFlow bench ${date} | ${machine.os} | ${machine.cpuCount} × ${machine.cpuModel} | ` +
      `${machine.totalMemoryGiB} GiB RAM | Node ${machine.node} | load ${machine.loadAverage1m} | ` +
      `${options.durationSeconds} s per scenario, connections: ` +
      Object.entries(connections)
        .map(([suite, count]) => `${suite} ${count}`)
        .join(', '),
  )
  if (rows.length > 0) console.log(`\n${resultsTable(rows)}`)
  if (summaries.length > 0) console.log(`\n${summaryTable(summaries)}`)
  if (predictSummaries.length > 0) console.log(`\n${predictSummaryTable(predictSummaries)}`)
  if (ceiling.length > 0) console.log(`\n${ceilingTables(ceiling, rows)}`)
  if (ceilingPairs.length > 0) {
    console.log(`\n${ceilingsTable(ceilingPairs)}`)
    const embeddedBesidePostgres = ceilingPairs.some(
      (pair) => pair.mode === 'embedded' && pair.reference && pair.ceiling.includes('pg'),
    )
    if (embeddedBesidePostgres) {
      console.log(
        '\nEmbedded rows with a node:http + pg ceiling compare the embedded service (PGlite) ' +
          'with that ceiling on the PostgreSQL server.',
      )
    }
  }
  if (startupResults.length > 0) console.log(`\n${startupTable(startupResults)}`)
  const ceilingRows = ceilingPairs.flatMap(({ mode, scenario, ceiling, service, reference }) => [
    { mode, ...service, scenario: `${scenario}, service` },
    ...(reference ? [{ mode, ...reference, scenario: `${scenario}, ${ceiling}` }] : []),
  ])
  for (const line of problems([...rows, ...ceilingRows])) console.log(line)
  for (const [mode, reason] of Object.entries(skipped)) console.log(`${mode} skipped: ${reason}`)

  // Outside the repository, so a run leaves no untracked files behind.
  const resultsDir = join(os.tmpdir(), 'orderflow-bench')
  const resultsPath = join(resultsDir, 'latest.json')
  await mkdir(resultsDir, { recursive: true })
  const report = {
    date,
    runId: run.id,
    machine,
    settings: { ...options, connections },
    startupMs: startup,
    startupSuite: startupResults,
    skipped,
    rows,
    summaries,
    predictSummaries,
    ceiling,
    ceilingPairs,
  }
  await writeFile(resultsPath, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`\nResults written to ${resultsPath}`)
  // A run that measured nothing failed; the start-up suite's figures are rows of their own.
  const measured = rows.length + ceilingPairs.length + startupResults.length
  if (measured === 0) process.exitCode = 1
}

async function interrupt(signal: NodeJS.Signals) {
  if (interrupted) return
  interrupted = true
  console.error(`${signal}: stopping the load and the servers`)
  for (const load of activeLoads) load.stop()
  await stopAllServers()
  await Promise.all([...preparedDataDirs].map(removeDataDir))
  process.exit(130)
}

process.once('SIGINT', interrupt)
process.once('SIGTERM', interrupt)

main().catch(async (error) => {
  console.error(error instanceof Error ? error.message : error)
  await stopAllServers()
  process.exit(1)
})
