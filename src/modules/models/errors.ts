import { defineError } from '../../shared/errors.js'

export const ModelNotFound = defineError('MODEL_NOT_FOUND', 404)
export const ModelVersionNotFound = defineError('MODEL_VERSION_NOT_FOUND', 404)
export const ModelVersionExists = defineError('MODEL_VERSION_EXISTS', 409)
/** Predictions run on the active version; activate another one before removing it. */
export const ModelVersionActive = defineError('MODEL_VERSION_ACTIVE', 409)
/** The card does not describe the graph; `errors` lists every mismatch. */
export const ModelSignatureMismatch = defineError('MODEL_SIGNATURE_MISMATCH', 422)
/** A model version's prediction queue is full; answered at once, with `Retry-After`. */
export const PredictionQueueFull = defineError('PREDICTION_QUEUE_FULL', 503)
/** A prediction or generation route called for a model of another task. */
export const ModelTaskMismatch = defineError('MODEL_TASK_MISMATCH', 409)
/** The upstream's breaker is open: answered at once, with `Retry-After`, without calling out. */
export const UpstreamUnavailable = defineError('UPSTREAM_UNAVAILABLE', 503)
/** The upstream failed, answered garbage or too much, or is no longer allowed. */
export const UpstreamFailed = defineError('UPSTREAM_FAILED', 502)
/** The upstream did not answer within its timeout. */
export const UpstreamTimeout = defineError('UPSTREAM_TIMEOUT', 504)
