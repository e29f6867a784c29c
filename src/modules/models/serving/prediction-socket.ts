import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyBaseLogger } from 'fastify'
import { Type } from 'typebox'
import type { WebSocket } from 'ws'
import { ROLES } from '../../../shared/caller.js'
import { AppError, defineError, ValidationFailed } from '../../../shared/errors.js'
import { problemResponses } from '../../../shared/schemas.js'
import { PinnedVersionSchema } from '../card.js'
import { ModelParamsSchema } from '../schemas.js'
import type { PredictionService, PredictOptions } from './prediction-service.js'
import { problemLine } from './problem-line.js'
import { optionsOf } from './routes.js'

export interface SocketLimits {
  /** Messages per second one connection may send (a burst of as many is allowed). */
  messagesPerSecond: number
  /** Predictions of one connection running at once. */
  maxInFlight: number
  pingIntervalMs: number
  idleTimeoutMs: number
}

/** Close codes this endpoint uses (RFC 6455 §7.4.1), documented in docs/MODELS.md. */
export const CLOSE = {
  /** Idle for WS_IDLE_TIMEOUT_MS. */
  idle: { code: 1000, reason: 'idle timeout' },
  /** The server is shutting down. */
  shutdown: { code: 1001, reason: 'server shutting down' },
} as const

/** How long a closing socket may take to finish its closing handshake at shutdown. */
const SHUTDOWN_GRACE_MS = 1000

/**
 * Closes every socket with 1001 at shutdown and waits for their closing handshakes, at
 * most SHUTDOWN_GRACE_MS: a peer that never answers is cut off, so it cannot hold the
 * server's close (and the process) open.
 */
export async function closeSockets(clients: Iterable<WebSocket>): Promise<void> {
  const closing = [...clients].map((client) => {
    if (client.readyState === client.CLOSED) return Promise.resolve()
    const done = new Promise<void>((resolve) => client.once('close', () => resolve()))
    if (client.readyState === client.OPEN) {
      client.close(CLOSE.shutdown.code, CLOSE.shutdown.reason)
    }
    const cutOff = setTimeout(() => client.terminate(), SHUTDOWN_GRACE_MS)
    return done.finally(() => clearTimeout(cutOff))
  })
  await Promise.all(closing)
}

/**
 * A socket's transport errors (a message over maxPayload, a broken frame, a reset) are
 * the peer's doing: logged without alarm, and the socket dropped.
 */
export function onSocketError(
  error: Error,
  socket: WebSocket,
  request: { log: FastifyBaseLogger },
): void {
  request.log.info({ err: error }, 'websocket dropped')
  socket.terminate()
}

/** The subprotocol a browser offers beside its credentials; the server selects it. */
export const SUBPROTOCOL = 'orderflow.v1'

const RateLimited = class extends AppError {
  constructor(retryAfterMs: number) {
    super(
      'RATE_LIMITED',
      429,
      'This connection sends more messages a second than allowed; slow down.',
      {
        retry_after_ms: retryAfterMs,
      },
    )
  }
}
const TooManyInFlight = class extends AppError {
  constructor(limit: number) {
    super(
      'TOO_MANY_IN_FLIGHT',
      429,
      `At most ${limit} predictions of one connection run at once; wait for an answer.`,
    )
  }
}
const BinaryMessage = class extends AppError {
  constructor() {
    super('UNSUPPORTED_MEDIA_TYPE', 415, 'Messages are JSON text; binary frames are refused.')
  }
}
const MalformedMessage = class extends AppError {
  constructor() {
    super('MALFORMED_JSON', 400, 'The message is not valid JSON.')
  }
}

const UpgradeRequired = defineError('UPGRADE_REQUIRED', 426)

type MessageId = string | number | null

interface ParsedMessage {
  id: MessageId
  inputs?: unknown
  problem?: AppError
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** The correlation id and inputs of one text message, or what is wrong with it. */
export function parseMessage(text: string): ParsedMessage {
  let message: unknown
  try {
    message = JSON.parse(text)
  } catch {
    return { id: null, problem: new MalformedMessage() }
  }
  if (!isRecord(message)) {
    return {
      id: null,
      problem: new ValidationFailed([{ path: 'message', message: 'must be an object' }]),
    }
  }
  const raw = message.id
  const validId =
    raw === undefined ||
    (typeof raw === 'string' && raw.length <= 128) ||
    (typeof raw === 'number' && Number.isFinite(raw))
  const id = validId && raw !== undefined ? (raw as string | number) : null
  const errors = []
  if (!validId)
    errors.push({
      path: 'message.id',
      message: 'must be a string of at most 128 characters or a number',
    })
  for (const key of Object.keys(message)) {
    if (key !== 'id' && key !== 'inputs')
      errors.push({ path: `message.${key}`, message: 'is not a member of a prediction message' })
  }
  if (!isRecord(message.inputs))
    errors.push({ path: 'message.inputs', message: 'must be an object' })
  if (errors.length > 0) return { id, problem: new ValidationFailed(errors) }
  return { id, inputs: message.inputs }
}

/** A token bucket: `rate` tokens a second, holding at most `rate`. */
function tokenBucket(rate: number, now: () => number = performance.now.bind(performance)) {
  let tokens = rate
  let last = now()
  return {
    /** Takes a token; returns 0, or the milliseconds until one is there. */
    take(): number {
      const at = now()
      tokens = Math.min(rate, tokens + ((at - last) * rate) / 1000)
      last = at
      if (tokens >= 1) {
        tokens -= 1
        return 0
      }
      return Math.ceil(((1 - tokens) * 1000) / rate)
    },
  }
}

/** Problems name places in the message, not in an HTTP body. */
function asMessageProblem(error: unknown) {
  if (error instanceof ValidationFailed) {
    return new ValidationFailed(
      error.errors.map((problem) => ({
        ...problem,
        path: problem.path.replace(/^body\./, 'message.'),
      })),
      error.message,
    )
  }
  return error
}

/**
 * One prediction connection: each text message `{id?, inputs}` is answered by
 * `{id, ...prediction}` or `{id, problem}`, in the order the predictions finish. A bad
 * message is answered and the connection stays open; only the transport's own limits (a
 * message over maxPayload: 1009) or the server's (idle, shutdown, a missed pong) close it.
 */
export function serveSocket(
  socket: WebSocket,
  {
    name,
    options,
    predictions,
    limits,
    log,
  }: {
    name: string
    options: PredictOptions
    predictions: Pick<PredictionService, 'predict'>
    limits: SocketLimits
    log: FastifyBaseLogger
  },
) {
  const bucket = tokenBucket(limits.messagesPerSecond)
  let inFlight = 0
  let alive = true

  const send = (body: Record<string, unknown>) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(body))
  }
  const refuse = (id: MessageId, error: unknown) => {
    const problem = problemLine(asMessageProblem(error))
    if (problem.status >= 500) log.error({ err: error, model: name }, 'socket prediction failed')
    send({ id, problem })
  }

  const idle = setTimeout(
    () => socket.close(CLOSE.idle.code, CLOSE.idle.reason),
    limits.idleTimeoutMs,
  )
  const pings = setInterval(() => {
    // No pong since the last ping: the peer or the path to it is gone.
    if (!alive) {
      socket.terminate()
      return
    }
    alive = false
    socket.ping()
  }, limits.pingIntervalMs)
  socket.on('pong', () => {
    alive = true
  })
  socket.on('close', () => {
    clearTimeout(idle)
    clearInterval(pings)
  })

  socket.on('message', (data, isBinary) => {
    idle.refresh()
    alive = true
    if (isBinary) return refuse(null, new BinaryMessage())
    const { id, inputs, problem } = parseMessage(String(data))
    const wait = bucket.take()
    if (wait > 0) return refuse(id, new RateLimited(wait))
    if (problem) return refuse(id, problem)
    if (inFlight >= limits.maxInFlight) return refuse(id, new TooManyInFlight(limits.maxInFlight))
    inFlight++
    predictions
      .predict(name, inputs, options)
      .then(
        (prediction) => send({ id, ...prediction }),
        (error: unknown) => refuse(id, error),
      )
      .finally(() => {
        inFlight--
      })
  })
}

export interface PredictionSocketRoutesOptions {
  predictions: Pick<PredictionService, 'predict' | 'resolve'>
  limits: SocketLimits
}

export const predictionSocketRoutes: FastifyPluginAsyncTypebox<
  PredictionSocketRoutesOptions
> = async (app, { predictions, limits }) => {
  app.route({
    method: 'GET',
    url: '/models/:name/ws',
    config: { auth: { roles: ROLES }, rateLimitGroup: 'predict' as const },
    schema: {
      summary: 'Predict over a WebSocket',
      description:
        'Upgrades to a WebSocket on which each text message `{"id": ..., "inputs": {...}}` is ' +
        'answered by `{"id": ..., "model", "version", "prediction", ...}` or by ' +
        '`{"id": ..., "problem": {...}}`. Credentials are checked before the upgrade (a ' +
        'bearer token or X-API-Key header; browsers offer the subprotocols ' +
        `\`${SUBPROTOCOL}\` and \`bearer.<token>\`): a failed handshake is an HTTP problem, ` +
        'not a socket. Predictions share the model micro-batcher with the HTTP routes.',
      tags: ['predictions'],
      params: ModelParamsSchema,
      querystring: Type.Object({ version: Type.Optional(PinnedVersionSchema) }),
      response: {
        101: Type.Null({ description: 'Switching Protocols: the socket is open.' }),
        ...problemResponses(404, 422, 426, 503),
      },
    },
    // Before the upgrade, so an unknown model is a 404 rather than a socket that fails.
    preHandler: async (request) => {
      await predictions.resolve(request.params.name, optionsOf(request))
    },
    wsHandler: (socket, request) => {
      serveSocket(socket, {
        name: request.params.name,
        options: optionsOf(request),
        predictions,
        limits,
        log: request.log,
      })
    },
    handler: async () => {
      throw new UpgradeRequired(
        'This endpoint speaks WebSocket only: send Connection: Upgrade and Upgrade: websocket.',
      )
    },
  })
}
