import type { AddressInfo } from 'node:net'
import { context, trace } from '@opentelemetry/api'
import { eq } from 'drizzle-orm'
import { SMTPServer } from 'smtp-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { insertProduct } from '../../../test/catalog.js'
import { createTestUser, injectAs, SERVICES_MODE, unique } from '../../../test/helpers.js'
import { buildJobsTestApp, eventually, type JobsTestApp } from '../../../test/jobs.js'
import { type ExportedSpan, startOtlpReceiver } from '../../../test/otlp-receiver.js'
import { customers, jobs } from '../../db/schema/index.js'
import { startTracing, type Tracing } from '../../platform/tracing.js'

/** OTLP's SpanKind numbers (the JSON encoding keeps the protobuf enum). */
const KIND = { server: 2, producer: 4, consumer: 5 }
const STATUS_ERROR = 2

/** A real SMTP server on loopback that accepts every message. */
async function startSmtp() {
  let accepted = 0
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      stream.resume()
      stream.on('end', () => {
        accepted++
        callback()
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.server.address() as AddressInfo
  return {
    url: `smtp://127.0.0.1:${port}`,
    accepted: () => accepted,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c'
const CALLER_SPAN = 'b7ad6b7169203331'
const CALLER_STATE = 'vendor=opaque-value'

let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>
let smtp: Awaited<ReturnType<typeof startSmtp>>
let tracing: Tracing
let t: JobsTestApp

beforeAll(async () => {
  receiver = await startOtlpReceiver()
  smtp = await startSmtp()
  const started = await startTracing({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_SERVICE_NAME: 'orderflow-test',
  })
  if (!started) throw new Error('tracing did not start')
  tracing = started
  // Services mode: a worker (the code of `npm run worker`) runs the job; it knows the request
  // only through the job's row, as a worker in another process would.
  t = await buildJobsTestApp({ SMTP_URL: smtp.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url })
})

afterAll(async () => {
  await t?.close()
  await tracing?.shutdown()
  await smtp?.close()
  receiver?.close()
})

const jobRow = async (id: string) => {
  const [row] = await t.database.db.select().from(jobs).where(eq(jobs.id, id))
  return row
}

/** Waits until the receiver holds spans matching `pick`, flushing the exporter meanwhile. */
async function spansWhere(pick: (span: ExportedSpan) => boolean, count = 1) {
  return eventually(
    async () => {
      await tracing.flush()
      const found = receiver.spans.filter(pick)
      return found.length >= count ? found : undefined
    },
    20_000,
    'the exported spans',
  )
}

describe('job tracing', { timeout: 90_000 }, () => {
  it('when a request places an order, then the email job it enqueues runs in the request trace', async () => {
    const user = await createTestUser(t)
    const [customer] = await t.database.db
      .insert(customers)
      .values({ name: `Traced ${unique()}`, email: `traced-${unique().toLowerCase()}@example.com` })
      .returning()
    const product = await insertProduct(t, { sku: `JOBTRACE-${unique()}` })
    const sentBefore = smtp.accepted()

    const response = await injectAs(
      t,
      user,
    )({
      method: 'POST',
      url: '/v1/orders',
      headers: {
        traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
        tracestate: CALLER_STATE,
      },
      payload: { customer_id: customer?.id, items: [{ product_id: product.id, quantity: 1 }] },
    })
    expect(response.statusCode).toBe(201)
    const [job] = await t.database.db
      .select()
      .from(jobs)
      .where(eq(jobs.dedupeKey, `email:order_confirmation:${response.json().id}`))
    if (!job) throw new Error('the order queued no email job')
    await eventually(async () => (await jobRow(job.id))?.status === 'succeeded', 30_000, 'the job')
    expect(smtp.accepted()).toBe(sentBefore + 1)

    const [run] = await spansWhere((span) => span.name === 'job run email')
    const inTrace = receiver.spans.filter((span) => span.traceId === CALLER_TRACE)
    const server = inTrace.find((span) => span.name === 'POST /v1/orders')
    const enqueue = inTrace.find((span) => span.name === 'job enqueue email')
    expect(server?.parentSpanId).toBe(CALLER_SPAN)
    // Recorded inside the order's transaction, during the request.
    expect(enqueue).toMatchObject({ kind: KIND.producer, parentSpanId: server?.spanId })
    // The row carries the enqueue span's context, the caller's tracestate with it.
    expect(job.traceparent).toBe(`00-${CALLER_TRACE}-${enqueue?.spanId}-01`)
    expect(job.tracestate).toBe(CALLER_STATE)
    // The run continues the trace from the row: a consumer child of the enqueue span.
    expect(run).toMatchObject({
      traceId: CALLER_TRACE,
      parentSpanId: enqueue?.spanId,
      kind: KIND.consumer,
      traceState: CALLER_STATE,
    })
    expect(run?.attributes).toEqual(
      expect.arrayContaining([
        { key: 'orderflow.job.id', value: { stringValue: job.id } },
        { key: 'orderflow.job.outcome', value: { stringValue: 'succeeded' } },
      ]),
    )
    if (SERVICES_MODE) {
      // The outbox relay's hand-over to BullMQ is a producer span of the same job.
      const publish = inTrace.find((span) => span.name === 'job publish email')
      expect(publish).toMatchObject({ kind: KIND.producer, parentSpanId: enqueue?.spanId })
    }
    // Connected: every span's parent is the caller's span or another span of this trace.
    const ids = new Set(inTrace.map((span) => span.spanId))
    for (const span of inTrace) {
      expect(span.parentSpanId === CALLER_SPAN || ids.has(span.parentSpanId ?? ''), span.name).toBe(
        true,
      )
    }
  })

  it('when a traced job fails an attempt, then each attempt is a run span of the same enqueue', async () => {
    const parent = trace.getTracer('test').startSpan('caller')
    const row = await context.with(trace.setSpan(context.active(), parent), () =>
      t.app.jobs.enqueue({
        type: 'test_effect',
        params: { key: `retry-${unique()}`, fail_times: 1 },
        owner_id: null,
      }),
    )
    parent.end()
    const { traceId } = parent.spanContext()
    await eventually(async () => (await jobRow(row.id))?.status === 'succeeded', 30_000, 'the job')

    const runs = await spansWhere(
      (span) => span.traceId === traceId && span.name === 'job run test_effect',
      2,
    )
    const [enqueue] = await spansWhere(
      (span) => span.traceId === traceId && span.name === 'job enqueue test_effect',
    )
    expect(enqueue?.parentSpanId).toBe(parent.spanContext().spanId)
    expect(runs.map((span) => span.parentSpanId)).toEqual([enqueue?.spanId, enqueue?.spanId])
    const attempt = (span: ExportedSpan) =>
      span.attributes.find((attribute) => attribute.key === 'orderflow.job.attempt')?.value.intValue
    const [first, second] = [...runs].sort((a, b) => Number(attempt(a)) - Number(attempt(b)))
    expect(first?.status?.code).toBe(STATUS_ERROR)
    expect(second?.status?.code ?? 0).not.toBe(STATUS_ERROR)
  })

  it('when a job is recorded outside any trace, then its row has no trace context and its run starts a trace', async () => {
    const row = await t.app.jobs.enqueue({
      type: 'test_effect',
      params: { key: `untraced-${unique()}` },
      owner_id: null,
    })
    expect(row.traceparent).toBeNull()
    expect(row.tracestate).toBeNull()
    await eventually(async () => (await jobRow(row.id))?.status === 'succeeded', 30_000, 'the job')

    const [run] = await spansWhere(
      (span) =>
        span.name === 'job run test_effect' &&
        span.attributes.some(
          (attribute) =>
            attribute.key === 'orderflow.job.id' && attribute.value.stringValue === row.id,
        ),
    )
    expect(run?.parentSpanId ?? '').toBe('')
    // Nothing was traced where it was recorded.
    const enqueues = receiver.spans.filter(
      (span) =>
        span.name.startsWith('job enqueue') &&
        span.attributes.some((attribute) => attribute.value.stringValue === row.id),
    )
    expect(enqueues).toEqual([])
  })
})
