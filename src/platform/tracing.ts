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
  request: { addHeader(name: string, value: string): unknown }
}

/**
 * Adds `traceparent` to every request made with undici or Node's fetch (which is undici), so
 * a remote model backend continues the caller's trace. undici announces each request on this
 * diagnostics channel before sending it, in the caller's async context.
 */
function propagateToOutboundHttp(): () => void {
  const onCreate = (message: unknown) => {
    const carrier: Record<string, string> = {}
    propagation.inject(context.active(), carrier)
    for (const [name, value] of Object.entries(carrier)) {
      ;(message as UndiciRequestCreate).request.addHeader(name, value)
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

/** An inference backend whose every `run` (one micro-batch) is a span. */
export function traceInference(backend: InferenceBackend): InferenceBackend {
  return {
    name: backend.name,
    async load(bytes, options) {
      const model = await backend.load(bytes, options)
      const name = options?.logId ?? 'model'
      const traced: LoadedModel = {
        signature: model.signature,
        run: (feeds) =>
          inSpan(
            `inference ${name}`,
            { 'orderflow.model': name, 'orderflow.backend': backend.name },
            () => model.run(feeds),
          ),
        release: () => model.release(),
      }
      return traced
    },
  }
}
