/**
 * The one typed map of job types and their payloads, shared by the producers (routes,
 * services), the embedded runner and the BullMQ worker. A job's params and result are
 * stored as JSON in the `jobs` table, so both are plain JSON values.
 */
export interface JobTypes {
  dataset_import: {
    params: {
      dataset_id: string
      /** Where the streamed upload was spooled; removed by the handler once imported. */
      upload_path: string
      format?: 'csv' | 'json' | 'ndjson' | 'parquet'
      on_error?: 'fail' | 'skip'
      options?: Record<string, unknown>
    }
    result: { dataset_id: string; rows: number; skipped: number }
  }
  dataset_export: {
    params: { dataset_id: string; format: 'csv' | 'ndjson' | 'parquet' }
    result: { dataset_id: string; format: string; path: string; bytes: number; rows: number }
  }
  batch_predict: {
    params: {
      model: string
      /** A version name such as `1.0.0`; the active version answers when absent. */
      version?: string
      dataset_id: string
      /** Model input name -> dataset column name. */
      mapping: Record<string, string>
    }
    result: { dataset_id: string; rows: number; errors: number }
  }
  email: {
    params: {
      to: string
      template: EmailTemplate
      data: Record<string, unknown>
      /** The business event the email tells about, e.g. `order_confirmation:<order id>`. */
      event_key: string
    }
    result: { message_id: string; skipped?: 'already_sent' }
  }
  housekeeping: {
    params: Record<string, never>
    result: {
      idempotency_keys: number
      refresh_tokens: number
      jobs: number
      temporary_files: number
    }
  }
}

/** The one BullMQ queue every job travels on (server mode); its jobs carry only the job id. */
export const QUEUE_NAME = 'jobs'
/** The name of every BullMQ job on the queue; the type is in the jobs table. */
export const QUEUE_JOB_NAME = 'run'

export type JobType = keyof JobTypes
export type JobParams<T extends JobType> = JobTypes[T]['params']
export type JobResult<T extends JobType> = JobTypes[T]['result']

export const EMAIL_TEMPLATES = ['order_confirmation', 'welcome'] as const
export type EmailTemplate = (typeof EMAIL_TEMPLATES)[number]

export const JOB_TYPES = [
  'dataset_import',
  'dataset_export',
  'batch_predict',
  'email',
  'housekeeping',
] as const satisfies readonly JobType[]

/**
 * Types a user may start through `POST /v1/jobs`. The others are started by the service
 * itself: an import by an upload, an email by an order or a sign-up, housekeeping by the
 * schedule.
 */
export const USER_STARTABLE_JOB_TYPES = [
  'batch_predict',
  'dataset_export',
] as const satisfies readonly JobType[]
