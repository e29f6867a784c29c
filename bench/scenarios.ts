import autocannon from 'autocannon'

const JSON_HEADERS = { 'content-type': 'application/json' }

export interface Scenario {
  name: string
  request: autocannon.Request
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
  non2xx: number
  /** Every status code seen with its count, so a failing scenario says how it failed. */
  statusCodes: Record<string, number>
}

function newProductBody(sku: string): string {
  return JSON.stringify({ sku, name: 'Bench product', price: '19.99', stock: 5 })
}

/** Creates `count` products one at a time and returns their ids; any non-201 aborts the run. */
export async function seedProducts(baseUrl: string, runId: string, count: number) {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${baseUrl}/v1/products`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: newProductBody(`BENCH-${runId}-${i}`),
    })
    if (response.status !== 201) {
      throw new Error(`seeding product ${i} answered ${response.status}: ${await response.text()}`)
    }
    ids.push(((await response.json()) as { id: string }).id)
  }
  return ids
}

export function scenarios(productIds: readonly string[], runId: string): Scenario[] {
  let nextId = 0
  let nextSku = 0
  return [
    {
      name: 'GET /v1/products/{id}',
      request: {
        method: 'GET',
        // Rotating over every seeded row keeps one hot row from flattering the numbers.
        setupRequest: (request) => ({
          ...request,
          path: `/v1/products/${productIds[nextId++ % productIds.length]}`,
        }),
      },
    },
    {
      name: 'GET /v1/products?page_size=20',
      request: { method: 'GET', path: '/v1/products?page_size=20' },
    },
    // Last on purpose: every write grows the table that the list scenario counts.
    {
      name: 'POST /v1/products',
      request: {
        method: 'POST',
        path: '/v1/products',
        headers: JSON_HEADERS,
        setupRequest: (request) => ({
          ...request,
          body: newProductBody(`BENCH-${runId}-W${nextSku++}`),
        }),
      },
    },
  ]
}

/** Resolves with the result; `onStart` hands out the instance so a Ctrl-C can stop it. */
export function runScenario(
  baseUrl: string,
  scenario: Scenario,
  load: LoadSettings,
  onStart: (instance: autocannon.Instance) => void = () => {},
): Promise<ScenarioResult> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: baseUrl,
        connections: load.connections,
        duration: load.durationSeconds,
        requests: [scenario.request],
      },
      (error, result) => (error ? reject(error) : resolve(summarize(scenario.name, result))),
    )
    onStart(instance)
  })
}

function summarize(scenario: string, result: autocannon.Result): ScenarioResult {
  const statusCodes: Record<string, number> = {}
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) {
    statusCodes[code] = stats.count ?? 0
  }
  return {
    scenario,
    requestsPerSecond: result.requests.mean,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    statusCodes,
  }
}
