import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { context, trace } from '@opentelemetry/api'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { insertProduct } from '../../test/catalog.js'
import {
  buildTestApp,
  createTestDatabase,
  createTestUser,
  injectAs,
  SERVICES_MODE,
  type TestApp,
  unique,
} from '../../test/helpers.js'
import { modelUpload, shippedCard } from '../../test/models.js'
import { startOtlpReceiver } from '../../test/otlp-receiver.js'
import { answerAsIris, startFakeUpstream } from '../../test/upstreams.js'
import { customers } from '../db/schema/index.js'
import type { InferenceBackend } from '../modules/models/runtime/backend.js'
import {
  startTracing,
  type Tracing,
  traceInference,
  traceQuery,
  tracingEnabled,
} from './tracing.js'

/** The headers a loopback HTTP server received, one entry per request. */
async function startEchoServer() {
  const received: IncomingHttpHeaders[] = []
  const server = createServer((request, response) => {
    received.push(request.headers)
    response.end('ok')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { received, url: `http://127.0.0.1:${port}/`, close: () => server.close() }
}

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN = '00f067aa0ba902b7'

let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>
let tracing: Tracing
let t: TestApp

beforeAll(async () => {
  receiver = await startOtlpReceiver()
  const started = await startTracing({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_SERVICE_NAME: 'orderflow-test',
  })
  if (!started) throw new Error('tracing did not start')
  tracing = started
  const database = await createTestDatabase({ traceQuery })
  t = await buildTestApp(
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      REMOTE_BACKEND_ALLOWED_HOSTS: '127.0.0.1',
      PREDICTION_CACHE_TTL_MS: '0',
    },
    { database },
  )
})

afterAll(async () => {
  await t?.close()
  await t?.database.close()
  await tracing?.shutdown()
  receiver?.close()
})

describe('tracing', () => {
  it('when no endpoint is set, then tracing stays off and nothing is loaded', async () => {
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: undefined })).toBe(false)
    expect(
      await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: undefined, OTEL_SERVICE_NAME: 'x' }),
    ).toBeNull()
  })

  it('when an order is placed under a traceparent, then its spans form one connected trace', async () => {
    const user = await createTestUser(t)
    const [customer] = await t.database.db
      .insert(customers)
      .values({ name: `Traced ${unique()}`, email: `traced-${unique().toLowerCase()}@example.com` })
      .returning()
    const product = await insertProduct(t, { sku: `TRACE-${unique()}` })

    const response = await injectAs(
      t,
      user,
    )({
      method: 'POST',
      url: '/v1/orders',
      headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
      payload: {
        customer_id: customer?.id,
        items: [{ product_id: product.id, quantity: 2 }],
      },
    })
    expect(response.statusCode).toBe(201)
    await tracing.flush()

    const inTrace = receiver.spans.filter((span) => span.traceId === CALLER_TRACE)
    const server = inTrace.find((span) => span.name === 'POST /v1/orders')
    expect(server).toBeDefined()
    // The caller's span is the server span's parent: the trace continues, it does not restart.
    expect(server?.parentSpanId).toBe(CALLER_SPAN)
    // Authentication, the order's statements: each one a child of the request's span.
    const statements = inTrace.filter((span) => span.name.startsWith('db '))
    expect(statements.length).toBeGreaterThanOrEqual(2)
    for (const statement of statements) expect(statement.parentSpanId).toBe(server?.spanId)
    // Connected: every span's parent is the caller's span or another span of this trace.
    const ids = new Set(inTrace.map((span) => span.spanId))
    for (const span of inTrace) {
      expect(span.parentSpanId === CALLER_SPAN || ids.has(span.parentSpanId ?? '')).toBe(true)
    }

    // The request's log lines carry the ids an operator looks the trace up by. The request
    // line is written after the response has gone, so it may trail the answer a little.
    await vi.waitFor(() => {
      const line = t.logs.find(
        (entry) => entry.route === '/v1/orders' && entry.method === 'POST' && entry.trace_id,
      )
      expect(
        line?.trace_id,
        JSON.stringify(t.logs.filter((entry) => entry.route === '/v1/orders')),
      ).toBe(CALLER_TRACE)
      expect(line?.span_id).toBe(server?.spanId)
    })
  })

  // Only server mode has Redis; the login limit counts there on every token request.
  it.skipIf(!SERVICES_MODE)(
    'when a login counts its attempt in Redis, then the Redis commands are children of its span',
    async () => {
      await createTestUser(t)
      await tracing.flush()
      const login = receiver.spans.findLast((span) => span.name === 'POST /v1/auth/token')
      const commands = receiver.spans.filter(
        (span) => span.name.startsWith('redis ') && span.traceId === login?.traceId,
      )
      expect(commands.length).toBeGreaterThan(0)
      for (const command of commands) expect(command.parentSpanId).toBe(login?.spanId)
    },
  )

  it('when a request has no traceparent, then it starts a trace of its own', async () => {
    const response = await t.app.inject({ url: '/health' })
    expect(response.statusCode).toBe(200)
    await tracing.flush()
    const span = receiver.spans.findLast((candidate) => candidate.name === 'GET /health')
    expect(span?.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(span?.traceId).not.toBe(CALLER_TRACE)
    expect(span?.parentSpanId ?? '').toBe('')
  })

  it('when the service calls out over HTTP inside a span, then the call carries its traceparent', async () => {
    const echo = await startEchoServer()
    const span = trace.getTracer('test').startSpan('outbound')
    try {
      await context.with(trace.setSpan(context.active(), span), async () => {
        const answer = await fetch(echo.url)
        await answer.text()
      })
    } finally {
      span.end()
      echo.close()
    }
    const { traceId, spanId } = span.spanContext()
    expect(echo.received[0]?.traceparent).toBe(`00-${traceId}-${spanId}-01`)
  })

  it('when a traced model runs, then each inference call is a child span naming the model', async () => {
    const backend: InferenceBackend = {
      name: 'fake',
      load: async () => ({
        signature: { inputs: [], outputs: [] } as never,
        run: async (feeds) => feeds,
        release: async () => {},
      }),
    }
    const model = await traceInference(backend).load(new Uint8Array(), { logId: 'iris@1.0.0' })
    const parent = trace.getTracer('test').startSpan('predict')
    await context.with(trace.setSpan(context.active(), parent), () => model.run({}))
    parent.end()
    await model.release()
    await tracing.flush()

    const inference = receiver.spans.find((span) => span.name === 'inference iris@1.0.0')
    expect(inference?.parentSpanId).toBe(parent.spanContext().spanId)
    expect(inference?.attributes).toEqual(
      expect.arrayContaining([{ key: 'orderflow.model', value: { stringValue: 'iris@1.0.0' } }]),
    )
  })

  it('when a remote backend serves a traced prediction, then the call is an inference span and carries its traceparent alone', async () => {
    const upstream = await startFakeUpstream(answerAsIris)
    try {
      const admin = await createTestUser(t, 'admin')
      const name = `remote-${unique().toLowerCase()}`
      const card = {
        ...shippedCard('iris'),
        name,
        backend: { kind: 'kserve-v2' as const, url: upstream.url, model: 'iris-upstream' },
      }
      const registered = await injectAs(
        t,
        admin,
      )({ method: 'POST', url: '/v1/models', ...(await modelUpload({ card })) })
      expect(registered.statusCode, registered.body).toBe(201)
      const response = await injectAs(
        t,
        admin,
      )({
        method: 'POST',
        url: `/v1/models/${name}/predict`,
        headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
        payload: {
          inputs: { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
        },
      })
      expect(response.statusCode, response.body).toBe(200)
      // One traceparent (two would make the backend discard both): the caller's trace,
      // continued from the inference span, the request span's child.
      await tracing.flush()
      const inTrace = receiver.spans.filter((span) => span.traceId === CALLER_TRACE)
      const server = inTrace.find((span) => span.name === 'POST /v1/models/:name/predict')
      const inference = inTrace.find((span) => span.name.startsWith(`inference ${name}@`))
      expect(server?.parentSpanId).toBe(CALLER_SPAN)
      expect(inference?.parentSpanId).toBe(server?.spanId)
      expect(inference?.attributes).toEqual(
        expect.arrayContaining([{ key: 'orderflow.backend', value: { stringValue: 'kserve-v2' } }]),
      )
      expect(upstream.seen.map((seen) => seen.headers.traceparent)).toEqual([
        `00-${CALLER_TRACE}-${inference?.spanId}-01`,
      ])
    } finally {
      await upstream.close()
    }
  })
})
