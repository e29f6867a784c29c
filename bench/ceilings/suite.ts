/**
 * The ceilings suite: each hot route of the service beside the reference server it is built
 * from (bench/ceilings/*), both under the same load in alternating slices of one run, so
 * the ratio compares the same moments of a noisy machine. The reference servers take the
 * service's paths and bodies, so both get the very same requests.
 *
 * The node-postgres ceiling always needs a PostgreSQL server: in embedded mode it runs
 * against the services database when one is configured, and the ratio then reads
 * "embedded service ÷ server ceiling"; without one, those rows have no ceiling.
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { irisRows } from '../iris-data.js'
import {
  ORDER_PRODUCT_STOCK,
  type OrderData,
  orderProductSkuPrefix,
  prepareOrderData,
} from '../order-data.js'
import {
  bearer,
  createOrders,
  getOrder,
  type LoadSettings,
  listOrders,
  logIn,
  MAX_ORDER_LINES,
  predictBatch,
  predictFeatures,
  type Scenario,
  type ScenarioResult,
  seedProducts,
  sendOnce,
} from '../scenarios.js'
import {
  makeDataDir,
  type RunningServer,
  removeDataDir,
  type ServerTarget,
  startCeiling,
  startServer,
} from '../server.js'

/** Rows of one batch request, and of one ONNX Runtime run of its ceiling. */
export const CEILING_BATCH_ROWS = 32
const IRIS_MODEL_PATH = fileURLToPath(new URL('../../models/iris.onnx', import.meta.url))
/** As the service's default DATABASE_POOL_MAX, so both hold the same connections. */
const POOL_MAX = '10'

/** One scenario: the service and its reference server. */
export interface CeilingPair {
  mode: string
  scenario: string
  ceiling: string
  service: ScenarioResult
  /** Undefined when the reference server could not run (no PostgreSQL server). */
  reference: ScenarioResult | undefined
}

type Target = [RunningServer, Scenario]

export interface CeilingsContext {
  mode: string
  /** The service's database: embedded (no URL) or the server. */
  target: ServerTarget
  /** The PostgreSQL server the node-postgres ceiling uses; unset skips it. */
  postgresUrl: string | undefined
  load: LoadSettings
  run: { id: string; jwtSecret: string }
  admin: { email: string; password: string }
  /** Runs the targets in alternating slices after a warm-up; one result each, in order. */
  measure: (targets: readonly Target[]) => Promise<ScenarioResult[]>
  /** Data directories in use, so an interrupt can remove them. */
  preparedDataDirs: Set<string>
  log: (line: string) => void
}

export async function benchCeilings(context: CeilingsContext): Promise<CeilingPair[]> {
  const { mode, target, postgresUrl, load, run, admin, log } = context
  const dataDir = await makeDataDir()
  context.preparedDataDirs.add(dataDir)
  const running: RunningServer[] = []
  try {
    log(`${mode}: preparing the seeded orders`)
    const data = await prepareOrderData({ databaseUrl: target.databaseUrl, dataDir }, admin)
    // In services mode the ceiling reads the service's own database.
    const postgresData =
      postgresUrl === undefined
        ? undefined
        : postgresUrl === target.databaseUrl
          ? data
          : await prepareOrderData({ databaseUrl: postgresUrl, dataDir }, admin)

    const service = await startServer(
      { ...target, dataDir },
      {
        auth: 'on',
        admin,
        jwtSecret: run.jwtSecret,
        // The default level, so each request writes its log line, as in production.
        logFile: join(dataDir, 'server.log'),
        env: {
          MODELS_REGISTER_SHIPPED: 'true',
          // The ceilings cache nothing; the service's cache would answer the rotating inputs.
          PREDICTION_CACHE_TTL_MS: '0',
          // The same for the order read: whether its 10,000 rotating ids come round again
          // within the TTL depends on the throughput itself, so with the cache on the figure
          // jumps between "every read a hit" and "every read a miss" as the machine's load
          // moves it across that line, and says nothing about the read path.
          READ_CACHE_TTL_MS: '0',
          // The ceiling queues every row in flight; the default bound (256) would answer
          // the 32-row batches of 64 connections with 503 instead of work.
          PREDICT_QUEUE_MAX: String(load.connections * CEILING_BATCH_ROWS),
        },
      },
    )
    running.push(service)
    log(`${mode}: service ready in ${(service.startupMs / 1000).toFixed(1)} s`)
    const auth = bearer(
      await logIn(service.baseUrl, { username: admin.email, password: admin.password }),
    )
    // Twice the rows that the orders in flight lock at once (see `createOrders`).
    const productCount = 2 * load.connections * MAX_ORDER_LINES
    const productIds = await seedProducts(
      service.baseUrl,
      auth,
      `${orderProductSkuPrefix(run.id)}-CEILINGS-${mode.toUpperCase()}`,
      productCount,
      ORDER_PRODUCT_STOCK,
    )

    const start = async (script: string, env?: Record<string, string>) => {
      const server = await startCeiling(script, env)
      running.push(server)
      return server
    }
    const hello = await start('fastify-hello.ts')
    const onnx = await start('onnx-http.ts', { MODEL_PATH: IRIS_MODEL_PATH })
    const orders =
      postgresData && postgresUrl
        ? {
            server: await start('orders-pg.ts', {
              DATABASE_URL: postgresUrl,
              DATABASE_POOL_MAX: POOL_MAX,
              CREATED_BY: postgresData.adminId,
            }),
            data: postgresData,
            productIds: await seedPostgresProducts(
              postgresUrl,
              `${orderProductSkuPrefix(run.id)}-PG-${mode.toUpperCase()}`,
              productCount,
            ),
          }
        : undefined

    const pool = irisRows()
    const batchName = `POST /v1/models/iris/predict/batch, ${CEILING_BATCH_ROWS} rows`
    const placing = (customerData: OrderData, ids: readonly string[]): Scenario => ({
      ...createOrders(auth, customerData.customerId, ids),
      expectStatus: 201,
    })
    const pairs: [string, Scenario, RunningServer | undefined, Scenario | undefined][] = [
      ['bare Fastify', health(), hello, health()],
      [
        'node:http + ONNX Runtime, 1 row a run',
        predictFeatures('POST /v1/predict', pool, auth),
        onnx,
        predictFeatures('POST /v1/predict', pool, auth),
      ],
      [
        `node:http + ONNX Runtime, ${CEILING_BATCH_ROWS} rows a run`,
        predictBatch(batchName, pool, CEILING_BATCH_ROWS, auth),
        onnx,
        predictBatch(batchName, pool, CEILING_BATCH_ROWS, auth),
      ],
      [
        'node:http + pg: the order with its lines, 1 prepared statement',
        getOrder(data.orderIds, auth),
        orders?.server,
        orders && getOrder(orders.data.orderIds, auth),
      ],
      [
        'node:http + pg: page and capped count at once, then the estimate',
        listOrders(auth),
        orders?.server,
        orders && listOrders(auth),
      ],
      // Last: every write grows the table that the page counts.
      [
        'node:http + pg: lock, then one WITH, in one transaction',
        placing(data, productIds),
        orders?.server,
        orders && placing(orders.data, orders.productIds),
      ],
    ]

    const results: CeilingPair[] = []
    for (const [ceiling, scenario, reference, referenceScenario] of pairs) {
      const targets: Target[] = [[service, scenario]]
      if (reference && referenceScenario) targets.push([reference, referenceScenario])
      // One answer from each before any load: a wrong answer would make the ratio meaningless.
      for (const [server, each] of targets) await sendOnce(server.baseUrl, each)
      const [serviceResult, referenceResult] = await context.measure(targets)
      if (!serviceResult) break // interrupted
      results.push({
        mode,
        scenario: scenario.name,
        ceiling,
        service: serviceResult,
        reference: referenceResult,
      })
    }
    return results
  } finally {
    await Promise.all(running.map((server) => server.stop()))
    await removeDataDir(dataDir)
    context.preparedDataDirs.delete(dataDir)
  }
}

function health(): Scenario {
  return { name: 'GET /health', request: { method: 'GET', path: '/health' } }
}

/**
 * Products for the ceiling's orders, written straight to PostgreSQL: in embedded mode the
 * ones seeded through the service live in PGlite. Their skus share the run's order-product
 * prefix, so the next run's clean-up finds the orders placed with them.
 */
async function seedPostgresProducts(url: string, skuPrefix: string, count: number) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO products (sku, name, price, stock)
       SELECT $1 || '-' || i, 'Bench product', 19.99, $2 FROM generate_series(1, $3) AS i
       RETURNING id`,
      [skuPrefix, ORDER_PRODUCT_STOCK, count],
    )
    return rows.map((row) => row.id)
  } finally {
    await client.end()
  }
}

/** Service and ceiling side by side, with service ÷ ceiling in req/s. */
export function ceilingsTable(pairs: readonly CeilingPair[]): string {
  const lines = [
    '| mode | scenario | service req/s | service p99 ms | ceiling | ceiling req/s | ceiling p99 ms | service ÷ ceiling |',
    '| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |',
  ]
  for (const { mode, scenario, ceiling, service, reference } of pairs) {
    const ratio = reference
      ? (service.requestsPerSecond / reference.requestsPerSecond).toFixed(2)
      : '—'
    lines.push(
      `| ${mode} | ${scenario} | ${service.requestsPerSecond.toFixed(0)} | ${service.p99Ms} | ` +
        `${ceiling} | ${reference ? reference.requestsPerSecond.toFixed(0) : 'not run'} | ` +
        `${reference ? reference.p99Ms : '—'} | ${ratio} |`,
    )
  }
  return lines.join('\n')
}
