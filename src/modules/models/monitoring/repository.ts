import { and, count, desc, eq, gte, lt, type SQL, sql } from 'drizzle-orm'
import type { Database, Executor } from '../../../db/client.js'
import { type PredictionLogRow, predictionLog } from '../../../db/schema/index.js'

export interface TimeRange {
  /** Inclusive. */
  from?: Date
  /** Exclusive. */
  to?: Date
}

/** What the served predictions of one request share in the log. */
export interface LoggedRequest {
  model: string
  version: string
  latencyMs: number
  requestId: string | null
  userId: string | null
  apiKeyId: string | null
  createdAt: Date
}

/** `JSON.stringify` answers undefined for undefined; a column then reads NULL. */
const json = (value: unknown): string => JSON.stringify(value) ?? 'null'

/**
 * The log rows of one request's predictions, each as the JSON object that the insert below
 * unpacks. What the rows share is encoded once, and each row is one flat string from the
 * start: the buffer holds no object graph (inputs, answers, dates) that would outlive the
 * request and survive into the old generation until the next flush.
 */
export function encodeLogRows(
  request: LoggedRequest,
  predictions: ReadonlyArray<{ inputs: unknown; output: unknown }>,
): string[] {
  const head = `{"model":${json(request.model)},"version":${json(request.version)},"inputs":`
  const tail =
    `,"latency_ms":${json(request.latencyMs)},"request_id":${json(request.requestId)}` +
    `,"user_id":${json(request.userId)},"api_key_id":${json(request.apiKeyId)}` +
    `,"created_at":${json(request.createdAt)}}`
  return predictions.map(
    ({ inputs, output }) => `${head}${json(inputs)},"output":${json(output)}${tail}`,
  )
}

/**
 * A buffer of predictions as one statement with one parameter: the rows as a JSON array,
 * which the database unpacks with `jsonb_to_recordset`. Drizzle's multi-row VALUES made a
 * parameter (and a SQL chunk) per cell; one text array per column then cost about 20 µs of
 * the main thread a row (two `JSON.stringify` calls, a timestamp, and node-postgres escaping
 * every element of every array). Both drivers send the one string as it is.
 */
function insertStatement(encodedRows: readonly string[]): SQL {
  const given = `[${encodedRows.join(',')}]`
  return sql`
    INSERT INTO prediction_log
      (model, version, inputs, output, latency_ms, request_id, user_id, api_key_id, created_at)
    SELECT model, version, inputs, output, latency_ms, request_id, user_id, api_key_id,
      created_at
    FROM jsonb_to_recordset(${given}::jsonb)
      AS given(model text, version text, inputs jsonb, output jsonb, latency_ms float8,
        request_id text, user_id uuid, api_key_id uuid, created_at timestamptz)`
}

function rangeOf(model: string, { from, to }: TimeRange): SQL | undefined {
  return and(
    eq(predictionLog.model, model),
    from === undefined ? undefined : gte(predictionLog.createdAt, from),
    to === undefined ? undefined : lt(predictionLog.createdAt, to),
  )
}

export function createPredictionLogRepository(db: Database) {
  return {
    /** Stores rows made by `encodeLogRows` in their order, all or none, in one statement. */
    async insertEncoded(encodedRows: readonly string[], tx: Executor = db): Promise<void> {
      if (encodedRows.length > 0) await tx.execute(insertStatement(encodedRows))
    },

    /** One page of a model's log, newest first, and how many rows the range holds. */
    async page(
      model: string,
      range: TimeRange,
      { limit, offset }: { limit: number; offset: number },
      tx: Executor = db,
    ): Promise<{ rows: PredictionLogRow[]; total: number }> {
      const where = rangeOf(model, range)
      const [rows, [totals]] = await Promise.all([
        tx
          .select()
          .from(predictionLog)
          .where(where)
          .orderBy(desc(predictionLog.createdAt), desc(predictionLog.id))
          .limit(limit)
          .offset(offset),
        tx.select({ total: count() }).from(predictionLog).where(where),
      ])
      return { rows, total: totals?.total ?? 0 }
    },

    /** The inputs logged in the range, newest first, at most `limit` of them. */
    async inputs(
      model: string,
      range: TimeRange,
      limit: number,
      tx: Executor = db,
    ): Promise<Record<string, unknown>[]> {
      const rows = await tx
        .select({ inputs: predictionLog.inputs })
        .from(predictionLog)
        .where(rangeOf(model, range))
        .orderBy(desc(predictionLog.createdAt))
        .limit(limit)
      return rows.map((row) => row.inputs)
    },
  }
}

export type PredictionLogRepository = ReturnType<typeof createPredictionLogRepository>
