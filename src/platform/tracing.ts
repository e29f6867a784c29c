import diagnostics from 'node:diagnostics_channel'
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Command, Redis } from 'ioredis'
import type { Config } from '../config.js'
import type { QueryTracer } from '../db/client.js'
import type { JobRow } from '../db/schema/index.js'
import type { InferenceBackend, LoadedModel } from '../modules/models/runtime/backend.js'

/**
 * OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set. Only the API package
 * (a few kilobytes, no-op without a provider) is imported up front; the SDK and the exporter
 * load in `startTracing`, so a service without an endpoint pays nothing for them.
 *
 * Spans are made here rather than by OpenTelemetry's auto-instrumentations, which patch
 * modules as they are `require`d: this code base is ESM, and those hooks see neither its
 * imports of `pg` and `ioredis` nor Fastify's routes without a loader flag on every start.
 */

const TRACER = 'orderflow'

export function tracingEnabled(config: Pick<Config, 'OTEL_EXPORTER_OTLP_ENDPOINT'>): boolean {
  return Boolean(config.OTEL_EXPORTER_OTLP_ENDPOINT)
}

export interface Tracing {
  /** Sends the spans still buffered; the tests call it before reading the receiver. */
  flush(): Promise<void>
  /** Flushes and stops exporting; the process calls it on its way out. */
  shutdown(): Promise<void>
}

/**
 * Registers the global tracer provider (batching OTLP/HTTP JSON exporter), the
 * AsyncLocalStorage context manager and the W3C trace-context propagator, or does nothing
 * without an endpoint. Call it once per process, before `buildApp`.
 */
export async function startTracing(
  config: Pick<Config, 'OTEL_EXPORTER_OTLP_ENDPOINT' | 'OTEL_SERVICE_NAME'>,
): Promise<Tracing | null> {
  const endpoint = config.OTEL_EXPORTER_OTLP_ENDPOINT
  if (!endpoint) return null
  const [
    { BasicTracerProvider, BatchSpanProcessor },
    { OTLPTraceExporter },
    asyncHooks,
    core,
    res,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
  ])
  const exporter = new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` })
  const provider = new BasicTracerProvider({
    resource: res.resourceFromAttributes({ 'service.name': config.OTEL_SERVICE_NAME }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 })],
  })
  context.setGlobalContextManager(new asyncHooks.AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new core.W3CTraceContextPropagator())
  trace.setGlobalTracerProvider(provider)
  const unsubscribe = propagateToOutboundHttp()
  return {
    flush: () => provider.forceFlush(),
    async shutdown() {
      unsubscribe()
      await provider.shutdown()
    },
  }
}

interface UndiciRequestCreate {
  /** Names and values in turn: `['accept', 'application/json', ...]`. */
  request: { headers: string[]; addHeader(name: string, value: string): unknown }
}

/**
 * Adds `traceparent` to every request made with undici or Node's fetch (which is undici), so
 * a remote model backend continues the caller's trace. undici announces each request on this
 * diagnostics channel before sending it, in the caller's async context. A header the caller
 * set itself is left alone: a second `traceparent` would make the receiver discard both.
 */
function propagateToOutboundHttp(): () => void {
  const onCreate = (message: unknown) => {
    const { request } = message as UndiciRequestCreate
    const present = new Set(
      request.headers.filter((_, index) => index % 2 === 0).map((name) => name.toLowerCase()),
    )
    const carrier: Record<string, string> = {}
    propagation.inject(context.active(), carrier)
    for (const [name, value] of Object.entries(carrier)) {
      if (!present.has(name)) request.addHeader(name, value)
    }
  }
  diagnostics.subscribe('undici:request:create', onCreate)
  return () => diagnostics.unsubscribe('undici:request:create', onCreate)
}

const spans = new WeakMap<FastifyRequest, { span: Span; context: Context }>()

/**
 * A server span per request: it continues the caller's `traceparent` when there is one, is
 * the active context of the hooks and the handler (so database, Redis and inference spans
 * become its children), and is named after the route template, never the raw URL.
 */
export const httpTracing = fp(
  async (app: FastifyInstance) => {
    const tracer = trace.getTracer(TRACER)
    app.addHook('onRequest', (request, reply, done) => {
      const parent = propagation.extract(ROOT_CONTEXT, request.headers)
      const route = request.routeOptions.url ?? 'unmatched'
      const span = tracer.startSpan(
        `${request.method} ${route}`,
        {
          kind: SpanKind.SERVER,
          attributes: {
            'http.request.method': request.method,
            'http.route': route,
            'url.path': request.url.split('?')[0] ?? '',
            'http.request.id': request.id,
          },
        },
        parent,
      )
      const active = trace.setSpan(parent, span)
      spans.set(request, { span, context: active })
      const { traceId, spanId } = span.spanContext()
      // Every line of this request names its trace; the context is gone by the time the
      // request line is written (on response), so the ids ride on the request's logger.
      request.log = request.log.child({ trace_id: traceId, span_id: spanId })
      reply.log = request.log
      context.with(active, done)
    })
    // The body arrives on socket events that ran outside the request's context; the
    // handler is entered again inside it.
    app.addHook('preHandler', (request, _reply, done) => {
      const entry = spans.get(request)
      if (entry) context.with(entry.context, done)
      else done()
    })
    app.addHook('onError', (request, _reply, error, done) => {
      spans.get(request)?.span.recordException(error)
      done()
    })
    app.addHook('onResponse', (request, reply, done) => {
      const entry = spans.get(request)
      if (entry) {
        entry.span.setAttribute('http.response.status_code', reply.statusCode)
        if (reply.statusCode >= 500) entry.span.setStatus({ code: SpanStatusCode.ERROR })
        entry.span.end()
        spans.delete(request)
      }
      done()
    })
  },
  { name: 'http-tracing' },
)

/** Runs `work` in a client span that ends when it settles, marked failed when it throws. */
export async function inSpan<T>(
  name: string,
  attributes: Record<string, string | number>,
  work: () => Promise<T>,
): Promise<T> {
  const span = trace.getTracer(TRACER).startSpan(name, { kind: SpanKind.CLIENT, attributes })
  try {
    return await context.with(trace.setSpan(context.active(), span), work)
  } catch (error) {
    span.recordException(error as Error)
    span.setStatus({ code: SpanStatusCode.ERROR })
    throw error
  } finally {
    span.end()
  }
}

/** A span per SQL statement; the text is cut short, and parameters are never recorded. */
export const traceQuery: QueryTracer = (sql, run) => {
  // Background statements (model syncs, reconciliations) would each start a trace of one span.
  if (!trace.getActiveSpan()) return run()
  const statement = sql.trimStart()
  const operation = /^\w+/.exec(statement)?.[0]?.toUpperCase() ?? 'QUERY'
  return inSpan(
    `db ${operation}`,
    { 'db.system.name': 'postgresql', 'db.query.text': statement.slice(0, 1000) },
    run,
  )
}

/**
 * A span per Redis command, made in `sendCommand`, the door every ioredis command passes
 * (scripts and the breaker's calls included). Keys and arguments are not recorded.
 */
export function traceRedis(redis: Redis): void {
  const send = redis.sendCommand.bind(redis)
  redis.sendCommand = ((command: Command, stream?: Parameters<Redis['sendCommand']>[1]) => {
    if (!trace.getActiveSpan()) return send(command, stream)
    void inSpan(
      `redis ${command.name.toUpperCase()}`,
      { 'db.system.name': 'redis', 'db.operation.name': command.name },
      () => command.promise,
    ).catch(() => {})
    return send(command, stream)
  }) as Redis['sendCommand']
}

/** A loaded model whose every `run` (one micro-batch) is a span naming it and its backend. */
export function traceModel(model: LoadedModel, name: string, backend: string): LoadedModel {
  return {
    signature: model.signature,
    run: (feeds) =>
      inSpan(`inference ${name}`, { 'orderflow.model': name, 'orderflow.backend': backend }, () =>
        model.run(feeds),
      ),
    release: () => model.release(),
  }
}

/** An inference backend whose every loaded model is traced (see `traceModel`). */
export function traceInference(backend: InferenceBackend): InferenceBackend {
  return {
    name: backend.name,
    async load(bytes, options) {
      const model = await backend.load(bytes, options)
      return traceModel(model, options?.logId ?? 'model', backend.name)
    },
  }
}

/** A job's recorded W3C trace context: the columns of the same name in `jobs`. */
export type JobTraceContext = Pick<JobRow, 'traceparent' | 'tracestate'>

const NO_TRACE_CONTEXT: JobTraceContext = { traceparent: null, tracestate: null }

/**
 * Records a job inside a producer span, `job enqueue <type>`, and hands `record` that span's
 * trace context to store on the row, so the job's run continues the trace wherever it runs.
 * Outside a trace (tracing off, a schedule) nothing is traced and no context is stored.
 */
export async function traceJobEnqueue<T extends { id: string }>(
  type: string,
  record: (traceContext: JobTraceContext) => Promise<T>,
): Promise<T> {
  if (!trace.getActiveSpan()) return record(NO_TRACE_CONTEXT)
  const span = trace.getTracer(TRACER).startSpan(`job enqueue ${type}`, {
    kind: SpanKind.PRODUCER,
    attributes: { 'messaging.operation.type': 'create', 'orderflow.job.type': type },
  })
  const active = trace.setSpan(context.active(), span)
  const carrier: Record<string, string> = {}
  propagation.inject(active, carrier)
  try {
    const row = await context.with(active, () =>
      record({ traceparent: carrier.traceparent ?? null, tracestate: carrier.tracestate ?? null }),
    )
    span.setAttribute('orderflow.job.id', row.id)
    return row
  } catch (error) {
    span.recordException(error as Error)
    span.setStatus({ code: SpanStatusCode.ERROR })
    throw error
  } finally {
    span.end()
  }
}

/** The context a job's recorded trace context continues; the root for a job recorded outside one. */
function jobParent(row: JobTraceContext): Context {
  if (!row.traceparent) return ROOT_CONTEXT
  const carrier: Record<string, string> = { traceparent: row.traceparent }
  if (row.tracestate) carrier.tracestate = row.tracestate
  return propagation.extract(ROOT_CONTEXT, carrier)
}

type Delivery<R> = (rows: R[]) => Promise<void>

/**
 * The outbox relay's hand-over to the queue, traced: a `job publish <type>` span per relayed
 * job that was recorded in a trace, a child of its enqueue span. One span per job rather than
 * per batch, as a batch mixes jobs of unrelated traces.
 */
export function traceJobDelivery<R extends JobTraceContext & Pick<JobRow, 'id' | 'type'>>(
  deliver: Delivery<R>,
  destination: string,
): Delivery<R> {
  const tracer = trace.getTracer(TRACER)
  return async (rows) => {
    const publishing = rows
      .filter((row) => row.traceparent)
      .map((row) =>
        tracer.startSpan(
          `job publish ${row.type}`,
          {
            kind: SpanKind.PRODUCER,
            attributes: {
              'messaging.operation.type': 'send',
              'messaging.system': 'bullmq',
              'messaging.destination.name': destination,
              'messaging.batch.message_count': rows.length,
              'orderflow.job.id': row.id,
              'orderflow.job.type': row.type,
            },
          },
          jobParent(row),
        ),
      )
    try {
      await deliver(rows)
    } catch (error) {
      for (const span of publishing) {
        span.recordException(error as Error)
        span.setStatus({ code: SpanStatusCode.ERROR })
      }
      throw error
    } finally {
      for (const span of publishing) span.end()
    }
  }
}

/**
 * Runs one delivery of a job in a consumer span, `job run <type>`, the child of the span that
 * recorded the job (so the request that caused it and the run share a trace, across processes),
 * or the root of a trace of its own for a job recorded outside one. `run` answers the outcome;
 * a failure or a retry marks the span failed.
 */
export async function traceJobRun<T extends { outcome: string }>(
  row: JobTraceContext & Pick<JobRow, 'id' | 'type' | 'attempts'>,
  run: () => Promise<T>,
): Promise<T> {
  const parent = jobParent(row)
  const span = trace.getTracer(TRACER).startSpan(
    `job run ${row.type}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.operation.type': 'process',
        'orderflow.job.id': row.id,
        'orderflow.job.type': row.type,
        'orderflow.job.attempt': row.attempts,
      },
    },
    parent,
  )
  try {
    const result = await context.with(trace.setSpan(parent, span), run)
    span.setAttribute('orderflow.job.outcome', result.outcome)
    if (result.outcome === 'failed' || result.outcome === 'retry') {
      span.setStatus({ code: SpanStatusCode.ERROR })
    }
    return result
  } catch (error) {
    span.recordException(error as Error)
    span.setStatus({ code: SpanStatusCode.ERROR })
    throw error
  } finally {
    span.end()
  }
}

/**
 * The `traceparent` an outbound call carries: the active span's while tracing records, so the
 * remote side's spans become children of this service's, else the caller's own, passed on.
 */
export function outboundTraceparent(callers: string | undefined): string | undefined {
  if (!trace.getActiveSpan()?.isRecording()) return callers
  const carrier: Record<string, string> = {}
  propagation.inject(context.active(), carrier)
  return carrier.traceparent ?? callers
}

/** The active span's ids for a log line, or nothing outside a recorded trace. */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan()
  if (!span?.isRecording()) return {}
  const { traceId, spanId } = span.spanContext()
  return { trace_id: traceId, span_id: spanId }
}

/**
 * Runs `work` outside any trace: background work that a request merely woke (a relay pass, a
 * runner's pick) serves many requests' jobs and must not be filed under the one that woke it.
 */
export function untraced<T>(work: () => T): T {
  return context.with(ROOT_CONTEXT, work)
}
