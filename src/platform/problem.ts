import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseUnavailable } from '../db/connection-errors.js'
import { AppError } from '../shared/errors.js'
import { problemResponses } from '../shared/schemas.js'
import { toFieldErrors } from './validation.js'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8'

export const problemType = (code: string) =>
  `urn:orderflow:problem:${code.toLowerCase().replace(/_/g, '-')}`

export interface ProblemInit {
  status: number
  code: string
  detail: string
  extensions?: Record<string, unknown>
  /** Sent as `Retry-After`: when the client may expect a retry to succeed. */
  retryAfterSeconds?: number
}

/** A database outage is usually a restart or a failover: seconds, not minutes. */
const DATABASE_RETRY_AFTER_S = 2

/** Writes an RFC 9457 problem document; the one way any error leaves the service. */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: ProblemInit) {
  const body = {
    type: problemType(problem.code),
    title: STATUS_CODES[problem.status] ?? 'Error',
    status: problem.status,
    detail: problem.detail,
    instance: request.url.split('?')[0],
    code: problem.code,
    request_id: request.id,
    ...problem.extensions,
  }
  // RFC 6750 §3: every 401 names the scheme the client should use.
  if (problem.status === 401) reply.header('www-authenticate', 'Bearer realm="orderflow"')
  if (problem.retryAfterSeconds !== undefined)
    reply.header('retry-after', String(problem.retryAfterSeconds))
  // Bypass the route's response serializer: a problem is never shaped like a success body.
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).serializer(JSON.stringify).send(body)
}

/** Fastify's own client errors, under the project's stable codes. */
const FRAMEWORK_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_CONTENT_LENGTH',
  FST_ERR_BAD_URL: 'BAD_URL_ENCODING',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
}

/** Details for framework errors whose own message echoes the input or says too little. */
const FRAMEWORK_DETAILS: Record<string, (context: FrameworkErrorContext) => string> = {
  FST_ERR_BAD_URL: () => 'The URL holds a percent-encoding that is not valid UTF-8.',
  FST_ERR_MAX_PARAM_LENGTH: () => 'A path segment of the URL is longer than any resource name.',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ({ mediaType, accepts }) =>
    `${mediaType ? `The media type ${mediaType} is` : 'A body without a Content-Type is'} not accepted here; send ${accepts.join(' or ')}.`,
}

/** What a framework error's detail may tell about the request it refuses. */
export interface FrameworkErrorContext {
  /** The request's Content-Type, without parameters. */
  mediaType?: string
  /** The media types the operation reads, as its schema's `consumes` lists them. */
  accepts: string[]
}

function statusCode(status: number): string {
  return (STATUS_CODES[status] ?? 'Error').toUpperCase().replace(/[^A-Z]+/g, '_')
}

export function toProblem(
  error: FastifyError | Error,
  context: FrameworkErrorContext = { accepts: ['application/json'] },
): ProblemInit {
  if (error instanceof AppError) {
    return {
      status: error.status,
      code: error.code,
      detail: error.message,
      extensions: error.extensions,
    }
  }
  const fastifyError = error as FastifyError
  if (fastifyError.validation) {
    return {
      status: 422,
      code: 'VALIDATION_FAILED',
      detail: 'The request is not valid.',
      extensions: {
        errors: toFieldErrors(fastifyError.validation as never, fastifyError.validationContext),
      },
    }
  }
  if (error instanceof SyntaxError || fastifyError.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    // JSON.parse and secure-json-parse (prototype pollution) both end up here.
    return { status: 400, code: 'MALFORMED_JSON', detail: 'The body is not valid JSON.' }
  }
  if (isDatabaseUnavailable(error)) {
    // The driver's message names hosts, SQL and parameters: it goes to the log, never here.
    return {
      status: 503,
      code: 'DATABASE_UNAVAILABLE',
      detail: 'The database is unavailable for a moment; retry shortly.',
      retryAfterSeconds: DATABASE_RETRY_AFTER_S,
    }
  }
  const status = fastifyError.statusCode ?? 500
  if (status >= 400 && status < 500) {
    const describe = fastifyError.code ? FRAMEWORK_DETAILS[fastifyError.code] : undefined
    return {
      status,
      code: (fastifyError.code && FRAMEWORK_CODES[fastifyError.code]) ?? statusCode(status),
      detail: describe ? describe(context) : error.message,
    }
  }
  // Never echo a 5xx message: it may carry SQL, file paths or secrets.
  return { status: 500, code: 'INTERNAL_ERROR', detail: 'An unexpected error occurred.' }
}

function frameworkContext(request: FastifyRequest): FrameworkErrorContext {
  const schema = request.routeOptions?.schema as { consumes?: string[] } | undefined
  return {
    mediaType: request.headers['content-type']?.split(';')[0]?.trim() || undefined,
    accepts: schema?.consumes ?? ['application/json'],
  }
}

function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const problem = toProblem(error, frameworkContext(request))
  if (problem.status >= 500) request.log.error({ err: error }, 'request failed')
  return sendProblem(request, reply, problem)
}

export const problemHandler = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler(handleError)
    // A path parameter can fail before routing (bad percent-encoding, over-long segment):
    // routes that have one document those answers too.
    app.addHook('onRoute', (route) => {
      const schema = route.schema as { hide?: boolean; response?: object } | undefined
      if (!schema?.response || schema.hide || !route.url.includes(':')) return
      schema.response = { ...problemResponses(400, 414), ...schema.response }
    })
  },
  { name: 'problem-handler' },
)

/**
 * Fastify's `frameworkErrors` option: errors raised while routing (a URL that does not
 * decode, a path segment over the router's limit), before any hook or error handler runs.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  reply.header('x-request-id', request.id)
  return handleError(error, request, reply)
}

/** What Node's HTTP parser refuses before Fastify sees a request, by its error code. */
const CLIENT_ERRORS: Record<string, ProblemInit> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: 'HEADERS_TOO_LARGE',
    detail: 'The request headers are larger than the server accepts.',
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    code: 'REQUEST_TIMEOUT',
    detail: 'The request did not arrive in time.',
  },
}
const MALFORMED_REQUEST: ProblemInit = {
  status: 400,
  code: 'MALFORMED_REQUEST',
  detail: 'The request is not valid HTTP.',
}

/**
 * The HTTP server's `clientError` answer (Fastify's `clientErrorHandler` option): a problem
 * document written straight to the socket, which is then closed, as Node itself does.
 */
export function handleClientError(error: Error & { code?: string }, socket: Socket) {
  // A reset connection has no one left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  if (socket.writable) {
    const problem = (error.code && CLIENT_ERRORS[error.code]) || MALFORMED_REQUEST
    const title = STATUS_CODES[problem.status] ?? 'Error'
    const body = JSON.stringify({
      type: problemType(problem.code),
      title,
      status: problem.status,
      detail: problem.detail,
      code: problem.code,
      request_id: randomUUID(),
    })
    socket.write(
      `HTTP/1.1 ${problem.status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }
  socket.destroy(error)
}
