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

/**
 * The log rows of one request's predictions as one JSON object, which the insert below
 * unpacks: what the rows share once, and the predictions (inputs and answer each) as one
 * array written by a single `JSON.stringify`. The buffer then holds one flat string per
 * request, no object graph (inputs, answers, dates) that would outlive the request and
 * survive into the old generation until the next flush.
 */
export function encodeLoggedRequest(
  request: LoggedRequest,
  predictions: ReadonlyArray<{ inputs: unknown; output: unknown }>,
): string {
  return JSON.stringify({
    model: request.model,
    version: request.version,
    latency_ms: request.latencyMs,
    request_id: request.requestId,
    user_id: request.userId,
    api_key_id: request.apiKeyId,
    created_at: request.createdAt,
    predictions,
  })
}

/**
 * A buffer of requests' predictions as one statement with one parameter: a JSON array of
 * requests, each unpacked with `jsonb_to_recordset`, and its predictions the same way. Drizzle's
 * multi-row VALUES made a parameter (and a SQL chunk) per cell; one text array per column then
 * cost about 20 µs of the main thread a row (two `JSON.stringify` calls, a timestamp, and
 * node-postgres escaping every element of every array). Both drivers send the one string as
 * it is. The ordinalities keep the rows in the order they were served.
 */
function insertStatement(encodedRequests: readonly string[]): SQL {
  const given = `[${encodedRequests.join(',')}]`
  return sql`
    INSERT INTO prediction_log
      (model, version, inputs, output, latency_ms, request_id, user_id, api_key_id, created_at)
    SELECT r.model, r.version, p.inputs, p.output, r.latency_ms, r.request_id, r.user_id,
      r.api_key_id, r.created_at
    FROM ROWS FROM (jsonb_to_recordset(${given}::jsonb)
        AS (model text, version text, latency_ms float8, request_id text, user_id uuid,
          api_key_id uuid, created_at timestamptz, predictions jsonb))
      WITH ORDINALITY AS r(model, version, latency_ms, request_id, user_id, api_key_id,
        created_at, predictions, served)
    CROSS JOIN LATERAL ROWS FROM (jsonb_to_recordset(r.predictions) AS (inputs jsonb, output jsonb))
      WITH ORDINALITY AS p(inputs, output, n)
    ORDER BY r.served, p.n`
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
    /**
     * Stores the predictions of requests encoded by `encodeLoggedRequest`, in their order, all
     * or none, in one statement.
     */
    async insertEncoded(encodedRequests: readonly string[], tx: Executor = db): Promise<void> {
      if (encodedRequests.length > 0) await tx.execute(insertStatement(encodedRequests))
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
