import type { FastifyBaseLogger } from 'fastify'
import type { Caller } from '../../shared/caller.js'
import type { JobParams, JobResult, JobType } from './contract.js'

export interface JobContext<T extends JobType> {
  job: {
    id: string
    type: T
    params: JobParams<T>
    owner_id: string | null
    /** 1 on the first run, 2 on the first retry, ... */
    attempt: number
    request_id: string | null
  }
  /**
   * Records progress (0..1, never moving backwards) and a message, publishes the event, and
   * throws JobCancelledError if the job was cancelled: the handler's checkpoint.
   */
  progress(fraction: number, message?: string): Promise<void>
  /** Aborted when the job is cancelled or the worker shuts down past its grace period. */
  signal: AbortSignal
  log: FastifyBaseLogger
}

export type JobHandler<T extends JobType> = (ctx: JobContext<T>) => Promise<JobResult<T>>

export interface JobHandlerOptions<T extends JobType> {
  /** Runs in all, retries included (default 3). */
  maxAttempts?: number
  /**
   * Removes what a finished job left outside the database (a spooled upload, an export
   * file) when housekeeping purges the job after JOB_RETENTION_DAYS. Must tolerate running
   * twice.
   */
  /**
   * Checks a user's request to start this job (`POST /v1/jobs`) before it is queued, e.g.
   * that the dataset exists and is the caller's; throws an AppError (404, 422) to refuse.
   */
  accept?: (params: JobParams<T>, caller: Caller) => Promise<void>
  cleanup?: (job: { id: string; params: JobParams<T>; result: JobResult<T> | null }) => Promise<void>
}

export interface RegisteredHandler<T extends JobType = JobType> extends JobHandlerOptions<T> {
  handler: JobHandler<T>
}

/**
 * The registry the embedded runner and the worker process read from; each module registers
 * its handlers at startup with their dependencies closed over.
 */
export interface JobHandlerRegistry {
  register<T extends JobType>(type: T, handler: JobHandler<T>, options?: JobHandlerOptions<T>): void
  get<T extends JobType>(type: T): RegisteredHandler<T> | undefined
  types(): JobType[]
}

export function createJobHandlerRegistry(): JobHandlerRegistry {
  const handlers = new Map<string, RegisteredHandler>()
  return {
    register(type, handler, options = {}) {
      if (handlers.has(type)) throw new Error(`a handler for job type ${type} is already registered`)
      handlers.set(type, { ...options, handler } as unknown as RegisteredHandler)
    },
    get: (type) => handlers.get(type) as never,
    types: () => [...handlers.keys()] as JobType[],
  }
}

/** Thrown by `progress()` when the job was cancelled; the runner records it as `cancelled`. */
export class JobCancelledError extends Error {
  constructor() {
    super('the job was cancelled')
    this.name = 'JobCancelledError'
  }
}

/** The reason of a job's signal when the process stops before the job could finish. */
export class JobInterruptedError extends Error {
  constructor() {
    super('the process is shutting down')
    this.name = 'JobInterruptedError'
  }
}

/**
 * A failure that retrying cannot fix (bad params, a missing dataset): the job fails at
 * once instead of spending its remaining attempts.
 */
export class PermanentJobError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'PermanentJobError'
  }
}
