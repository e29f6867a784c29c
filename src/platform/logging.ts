import {
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify'
import type { DestinationStream } from 'pino'
import type { Config } from '../config.js'

/** Everything that can hold a credential, wherever it appears in a log object. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  '*.password',
  '*.current_password',
  '*.new_password',
  '*.access_token',
  '*.refresh_token',
  '*.api_key',
  '*.token',
  'password',
  'token',
]

export function loggerOptions(
  config: Pick<Config, 'LOG_LEVEL'>,
  stream?: DestinationStream,
): FastifyServerOptions['logger'] {
  return {
    level: config.LOG_LEVEL,
    redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
    ...(stream ? { stream } : {}),
  }
}

/**
 * One line per request, written when the response is done, in place of Fastify's pair of
 * "incoming request" / "request completed" lines. It names the caller the auth hook
 * resolved (`user_id`, and `api_key_id` when they came with a key); both are null when the
 * request had none or failed to authenticate, so every line has the same fields.
 */
export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'request_id' })
  }

  override incomingRequest() {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ) {
    const line = {
      user_id: request.caller?.userId ?? null,
      api_key_id: request.caller?.apiKeyId ?? null,
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status_code: reply.statusCode,
      latency_ms: Math.round(reply.elapsedTime * 100) / 100,
      ...(error ? { err: error } : {}),
    }
    if (error) reply.log.error(line, 'request errored')
    else reply.log.info(line, 'request completed')
  }
}
