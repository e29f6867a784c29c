import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseUnavailable } from '../db/connection-errors.js'
import { AppError } from '../shared/errors.js'
import { toFieldErrors } from './validation.js'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8'

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
    type: `urn:orderflow:problem:${problem.code.toLowerCase().replace(/_/g, '-')}`,
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
}

function statusCode(status: number): string {
  return (STATUS_CODES[status] ?? 'Error').toUpperCase().replace(/[^A-Z]+/g, '_')
}

export function toProblem(error: FastifyError | Error): ProblemInit {
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
    return {
      status,
      code: (fastifyError.code && FRAMEWORK_CODES[fastifyError.code]) ?? statusCode(status),
      detail: error.message,
    }
  }
  // Never echo a 5xx message: it may carry SQL, file paths or secrets.
  return { status: 500, code: 'INTERNAL_ERROR', detail: 'An unexpected error occurred.' }
}

export const problemHandler = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const problem = toProblem(error)
      if (problem.status >= 500) request.log.error({ err: error }, 'request failed')
      return sendProblem(request, reply, problem)
    })
  },
  { name: 'problem-handler' },
)
