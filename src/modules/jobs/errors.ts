import { defineError } from '../../shared/errors.js'

/** Also what another user's job answers, so ids of others leak nothing. */
export const JobNotFound = defineError('JOB_NOT_FOUND', 404)
/** Carries `job_status`: the job already ended and cannot be cancelled. */
export const JobFinished = defineError('JOB_FINISHED', 409)
/** A startable type whose handler this deployment does not run. */
export const JobTypeNotAvailable = defineError('JOB_TYPE_NOT_AVAILABLE', 422)
