import type { FastifyBaseLogger } from 'fastify'
import CircuitBreaker from 'opossum'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { Agent, request } from 'undici'
import { outboundTraceparent } from '../../../platform/tracing.js'
import { UpstreamFailed, UpstreamTimeout, UpstreamUnavailable } from '../errors.js'
import type { AllowedHosts } from './allowed-hosts.js'

export interface UpstreamSettings {
  allowedHosts: Pick<AllowedHosts, 'allows'>
  connectTimeoutMs: number
  /** Deadline of a whole call, retries included; for a stream, of its answer's headers and of each gap. */
  timeoutMs: number
  /** Attempts after the first, on transient failures only. */
  retries: number
  /** The first backoff; each next one doubles, and each is jittered over [0, backoff]. */
  retryBaseMs: number
  maxResponseBytes: number
  /** How long an open breaker refuses before letting one probe through. */
  breakerResetMs: number
  /** Failed share of recent calls (percent) that opens the breaker, once `breakerMinCalls` were made. */
  breakerErrorPercent: number
  breakerMinCalls: number
  connections: number
  metrics: Registry
  log: FastifyBaseLogger
  /** For tests of the backoff: defaults to Math.random. */
  random?: () => number
}

/** Which model version a call is for: it owns the breaker and labels the metrics. */
export interface UpstreamKey {
  model: string
  version: string
}

export interface UpstreamCall {
  key: UpstreamKey
  url: string
  body: unknown
  /** Aborts the call when the client that asked for it goes away. */
  signal?: AbortSignal
  /** W3C trace context of the request that led here, passed on. */
  traceparent?: string
}

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface UpstreamStream {
  /** The answer's body, chunk by chunk; ends, or throws UpstreamFailed/UpstreamTimeout. */
  chunks: AsyncIterable<Uint8Array>
  /** Stops reading and closes the upstream connection. */
  cancel(): void
}

/** An attempt's failure, sorted into what may be retried and what the caller sees. */
class AttemptFailure extends Error {
  constructor(
    readonly outcome: 'connection' | 'status' | 'timeout' | 'invalid' | 'aborted' | 'rejected',
    message: string,
    readonly transient: boolean,
    /** An answer the upstream gave on purpose (a 4xx): it is up, so the breaker ignores it. */
    readonly healthy = false,
  ) {
    super(message)
  }
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/
const TRANSIENT_STATUSES = new Set([502, 503, 504])
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
])
/** undici's HeadersTimeoutError and BodyTimeoutError, known by code without loading undici. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])
const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 }

/**
 * Closes an answer not read to its end, which would keep its socket busy. Destroying an
 * undici body emits an abort error, which nobody is left to read.
 */
function discard(body: NodeJS.ReadableStream & { destroy(): void; readableEnded: boolean }) {
  if (body.readableEnded) return
  body.on('error', () => {})
  body.destroy()
}

function errorCode(error: unknown): string | undefined {
  for (let current = error; current instanceof Error; current = current.cause) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string') return code
  }
  return undefined
}

/**
 * Outbound calls to the inference servers that registered cards name: pooled keep-alive
 * connections (undici), a deadline per call that retries share, retries with exponential
 * backoff and full jitter on transient failures only (connection errors, 502, 503, 504; never
 * a 4xx or a timeout, which would only stretch the wait), and a circuit breaker per model
 * version, so that a dead upstream costs callers one fast 503 instead of a timeout each.
 * Answers are bounded in size and read within the deadline; nothing upstream reaches a
 * caller unchecked.
 */
export function createUpstreamClient(settings: UpstreamSettings) {
  const { log } = settings
  const random = settings.random ?? Math.random
  // undici (~5 MB of heap) is imported with the first call: most processes serve no remote model.
  let pool: Promise<{ agent: Agent; request: typeof request }> | undefined
  const connections = () => {
    pool ??= import('undici').then(({ Agent, request }) => ({
      agent: new Agent({
        connect: { timeout: settings.connectTimeoutMs },
        connections: settings.connections,
        headersTimeout: settings.timeoutMs,
        bodyTimeout: settings.timeoutMs,
      }),
      request,
    }))
    return pool
  }
  const breakers = new Map<string, CircuitBreaker<[() => Promise<unknown>], unknown>>()
  const keyOf = ({ model, version }: UpstreamKey) => `${model}@${version}`

  const duration = new Histogram({
    name: 'upstream_request_duration_seconds',
    help: 'Duration of one attempt to call a remote backend, by model, version and outcome.',
    labelNames: ['model', 'version', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [settings.metrics],
  })
  const retries = new Counter({
    name: 'upstream_retries_total',
    help: 'Attempts repeated after a transient failure of a remote backend, by model and version.',
    labelNames: ['model', 'version'],
    registers: [settings.metrics],
  })
  const shortCircuits = new Counter({
    name: 'upstream_short_circuits_total',
    help: 'Calls refused at once because the breaker of a remote backend was open.',
    labelNames: ['model', 'version'],
    registers: [settings.metrics],
  })
  new Gauge({
    name: 'upstream_breaker_state',
    help: 'Circuit breaker of each remote backend: 0 closed, 1 open, 2 half-open.',
    labelNames: ['model', 'version'],
    registers: [settings.metrics],
    collect() {
      this.reset()
      for (const [key, breaker] of breakers) {
        const [model = '', version = ''] = key.split('@')
        this.set({ model, version }, BREAKER_STATE_VALUE[stateOf(breaker)])
      }
    },
  })

  function stateOf(breaker: CircuitBreaker): BreakerState {
    if (breaker.opened) return 'open'
    return breaker.halfOpen ? 'half-open' : 'closed'
  }

  function breakerFor(key: UpstreamKey) {
    const name = keyOf(key)
    let breaker = breakers.get(name)
    if (!breaker) {
      breaker = new CircuitBreaker((attempt: () => Promise<unknown>) => attempt(), {
        // The deadline is the call's own; a second timer here would only race it.
        timeout: false,
        resetTimeout: settings.breakerResetMs,
        rollingCountTimeout: 10_000,
        volumeThreshold: settings.breakerMinCalls,
        errorThresholdPercentage: settings.breakerErrorPercent,
        // A 4xx is the upstream answering; a caller who left says nothing about it.
        errorFilter: (error: unknown) =>
          error instanceof AttemptFailure && (error.healthy || error.outcome === 'aborted'),
      })
      breaker.on('open', () => log.warn({ upstream: name }, 'remote backend failing: breaker open'))
      breaker.on('close', () => log.info({ upstream: name }, 'remote backend answers again'))
      breakers.set(name, breaker)
    }
    return breaker
  }

  function headersOf(call: UpstreamCall, accept: string): Record<string, string> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept }
    const traceparent = outboundTraceparent(call.traceparent)
    if (traceparent && TRACEPARENT.test(traceparent)) headers.traceparent = traceparent
    return headers
  }

  function classify(error: unknown, deadline: AbortSignal, caller?: AbortSignal): AttemptFailure {
    if (error instanceof AttemptFailure) return error
    if (caller?.aborted) return new AttemptFailure('aborted', 'the caller went away', false)
    const code = errorCode(error)
    if (deadline.aborted || (code && TIMEOUT_CODES.has(code))) {
      return new AttemptFailure('timeout', 'did not answer in time', false)
    }
    if (code && CONNECTION_CODES.has(code)) {
      return new AttemptFailure('connection', `connection failed (${code})`, true)
    }
    return new AttemptFailure('connection', 'the connection failed', true)
  }

  /** Reads a whole answer within the size bound. */
  async function readBounded(body: AsyncIterable<Uint8Array>, declared?: string): Promise<Buffer> {
    if (declared !== undefined && Number(declared) > settings.maxResponseBytes) {
      throw new AttemptFailure('invalid', `answered ${declared} bytes, above the limit`, false)
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of body) {
      size += chunk.byteLength
      if (size > settings.maxResponseBytes) {
        throw new AttemptFailure('invalid', 'answered more bytes than the limit', false)
      }
      chunks.push(Buffer.from(chunk))
    }
    return Buffer.concat(chunks)
  }

  /**
   * Runs `attempt` through the key's breaker, retrying transient failures with backoff while
   * the deadline allows, and turns the last failure into the problem the caller sees.
   */
  async function withRetries<T>(
    call: UpstreamCall,
    deadline: AbortSignal,
    deadlineAt: number,
    attempt: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const { model, version } = call.key
    if (!settings.allowedHosts.allows(call.url)) {
      // The allowlist changed since the card was registered: refuse before calling out.
      throw new UpstreamFailed(`The remote backend of ${model} ${version} is not an allowed host.`)
    }
    const breaker = breakerFor(call.key)
    const signal = call.signal ? AbortSignal.any([deadline, call.signal]) : deadline
    const refused = () => {
      shortCircuits.inc({ model, version })
      return new UpstreamUnavailable(
        `The remote backend of ${model} ${version} is failing; calls are paused.`,
        { retry_after_s: Math.ceil(settings.breakerResetMs / 1000) },
      )
    }
    for (let tries = 0; ; tries++) {
      if (breaker.opened) throw refused()
      const started = performance.now()
      try {
        const result = (await breaker.fire(() =>
          attempt(signal).catch((error: unknown) => {
            throw classify(error, deadline, call.signal)
          }),
        )) as T
        duration.observe({ model, version, outcome: 'ok' }, (performance.now() - started) / 1000)
        return result
      } catch (error) {
        // Half-open lets one probe through; calls meanwhile are refused like an open breaker's.
        if (errorCode(error) === 'EOPENBREAKER') throw refused()
        const failure =
          error instanceof AttemptFailure ? error : classify(error, deadline, call.signal)
        duration.observe(
          { model, version, outcome: failure.outcome },
          (performance.now() - started) / 1000,
        )
        const backoff = settings.retryBaseMs * 2 ** tries * random()
        const retry =
          failure.transient &&
          tries < settings.retries &&
          performance.now() + backoff < deadlineAt &&
          !breaker.opened
        if (!retry) throw toProblem(call.key, failure)
        retries.inc({ model, version })
        log.debug({ upstream: keyOf(call.key), reason: failure.message }, 'retrying remote backend')
        await new Promise((resolve) => setTimeout(resolve, backoff))
      }
    }
  }

  function toProblem({ model, version }: UpstreamKey, failure: AttemptFailure): Error {
    const who = `The remote backend of ${model} ${version}`
    if (failure.outcome === 'timeout') {
      return new UpstreamTimeout(`${who} did not answer within ${settings.timeoutMs} ms.`)
    }
    if (failure.outcome === 'aborted') return new UpstreamFailed(`${who} call was cancelled.`)
    return new UpstreamFailed(`${who} failed: ${failure.message}.`)
  }

  function checkStatus(status: number): void {
    if (status >= 200 && status < 300) return
    const transient = TRANSIENT_STATUSES.has(status)
    throw new AttemptFailure(
      status >= 400 && status < 500 ? 'rejected' : 'status',
      `answered HTTP ${status}`,
      transient,
      status >= 400 && status < 500,
    )
  }

  return {
    /** POSTs JSON and answers the parsed JSON answer, or throws a 502/503/504 problem. */
    async postJson(call: UpstreamCall): Promise<unknown> {
      // Loading undici is this process's time, not the upstream's: the deadline starts after.
      const { agent, request } = await connections()
      const deadline = AbortSignal.timeout(settings.timeoutMs)
      const deadlineAt = performance.now() + settings.timeoutMs
      const payload = JSON.stringify(call.body)
      return withRetries(call, deadline, deadlineAt, async (signal) => {
        const response = await request(call.url, {
          method: 'POST',
          dispatcher: agent,
          headers: headersOf(call, 'application/json'),
          body: payload,
          signal,
        })
        try {
          checkStatus(response.statusCode)
          const text = await readBounded(
            response.body,
            response.headers['content-length'] as string | undefined,
          )
          try {
            return JSON.parse(text.toString('utf8')) as unknown
          } catch {
            throw new AttemptFailure('invalid', 'answered something that is not JSON', false)
          }
        } finally {
          // An answer not read to its end keeps its socket busy; closing it frees the pool.
          discard(response.body)
        }
      })
    },

    /**
     * POSTs JSON and answers the streamed body once the upstream has accepted the call:
     * retries happen only before that, never after a first byte reached the caller.
     */
    async openStream(call: UpstreamCall): Promise<UpstreamStream> {
      const { agent, request } = await connections()
      const deadline = new AbortController()
      const timer = setTimeout(() => deadline.abort(), settings.timeoutMs)
      const deadlineAt = performance.now() + settings.timeoutMs
      const payload = JSON.stringify(call.body)
      const cancel = new AbortController()
      const signals = call.signal ? [call.signal, cancel.signal] : [cancel.signal]
      try {
        const response = await withRetries(
          { ...call, signal: AbortSignal.any(signals) },
          deadline.signal,
          deadlineAt,
          async (signal) => {
            const answer = await request(call.url, {
              method: 'POST',
              dispatcher: agent,
              headers: headersOf(call, 'text/event-stream'),
              body: payload,
              signal,
            })
            try {
              checkStatus(answer.statusCode)
            } catch (error) {
              discard(answer.body)
              throw error
            }
            return answer
          },
        )
        clearTimeout(timer)
        const key = call.key
        return {
          cancel: () => cancel.abort(),
          chunks: (async function* () {
            try {
              for await (const chunk of response.body) yield chunk as Uint8Array
            } catch (error) {
              if (cancel.signal.aborted || call.signal?.aborted) return
              throw toProblem(key, classify(error, deadline.signal, call.signal))
            } finally {
              discard(response.body)
            }
          })(),
        }
      } finally {
        clearTimeout(timer)
      }
    },

    breakerState(key: UpstreamKey): BreakerState {
      const breaker = breakers.get(keyOf(key))
      return breaker ? stateOf(breaker) : 'closed'
    },

    /** `model@version` of every upstream whose breaker is open: what /ready names. */
    down(): string[] {
      return [...breakers].filter(([, breaker]) => breaker.opened).map(([name]) => name)
    },

    async close(): Promise<void> {
      for (const breaker of breakers.values()) breaker.shutdown()
      if (pool) await (await pool).agent.close()
    },
  }
}

export type UpstreamClient = ReturnType<typeof createUpstreamClient>
