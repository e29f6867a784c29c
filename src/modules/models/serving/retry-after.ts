import type { onErrorAsyncHookHandler } from 'fastify'
import { PredictionQueueFull, UpstreamUnavailable } from '../errors.js'

/** A full queue drains within a few batches: a second is ample. */
const QUEUE_FULL_RETRY_AFTER_S = '1'

/**
 * Tells a caller refused for a full prediction queue, or for a remote backend whose breaker
 * is open, when to come back. An onError hook runs before the error handler renders the
 * problem, and headers set here are kept.
 */
export const retryAfterWhenQueueFull: onErrorAsyncHookHandler = async (_request, reply, error) => {
  if (error instanceof PredictionQueueFull) reply.header('retry-after', QUEUE_FULL_RETRY_AFTER_S)
  if (error instanceof UpstreamUnavailable) {
    reply.header('retry-after', String(error.extensions.retry_after_s ?? 1))
  }
}
