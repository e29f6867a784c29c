import { and, count, desc, eq, gte, lt, type SQL, sql } from 'drizzle-orm'
import type { Database, Executor } from '../../../db/client.js'
import {
  type NewPredictionLogRow,
  type PredictionLogRow,
  predictionLog,
} from '../../../db/schema/index.js'

export interface TimeRange {
  /** Inclusive. */
  from?: Date
  /** Exclusive. */
  to?: Date
}

/**
 * A buffer of predictions as one statement: each column travels as ONE text array, and the
 * database unnests and casts them. Drizzle's multi-row VALUES made a parameter (and a SQL
 * chunk) per cell, which cost the main thread seconds per 100,000 rows of a batch
 * prediction and sent PostgreSQL a new statement of up to 10,000 parameters per 1,000 rows.
 * Text arrays, not typed ones, because the two drivers encode a text array alike.
 */
function insertStatement(rows: readonly NewPredictionLogRow[]): SQL {
  const count = rows.length
  const models = new Array<string>(count)
  const versions = new Array<string>(count)
  const inputs = new Array<string>(count)
  const outputs = new Array<string>(count)
  const latencies = new Array<string>(count)
  const requestIds = new Array<string | null>(count)
  const userIds = new Array<string | null>(count)
  const apiKeyIds = new Array<string | null>(count)
  const createdAts = new Array<string>(count)
  for (let i = 0; i < count; i++) {
    const row = rows[i] as NewPredictionLogRow
    models[i] = row.model
    versions[i] = row.version
    inputs[i] = JSON.stringify(row.inputs)
    outputs[i] = JSON.stringify(row.output)
    latencies[i] = String(row.latencyMs)
    requestIds[i] = row.requestId ?? null
    userIds[i] = row.userId ?? null
    apiKeyIds[i] = row.apiKeyId ?? null
    createdAts[i] = row.createdAt.toISOString()
  }
  const array = (values: readonly (string | null)[]) => sql`${sql.param(values)}::text[]`
  return sql`
    INSERT INTO prediction_log
      (model, version, inputs, output, latency_ms, request_id, user_id, api_key_id, created_at)
    SELECT model, version, inputs::jsonb, output::jsonb, latency_ms::float8, request_id,
      user_id::uuid, api_key_id::uuid, created_at::timestamptz
    FROM unnest(${array(models)}, ${array(versions)}, ${array(inputs)}, ${array(outputs)},
      ${array(latencies)}, ${array(requestIds)}, ${array(userIds)}, ${array(apiKeyIds)},
      ${array(createdAts)})
      AS given(model, version, inputs, output, latency_ms, request_id, user_id, api_key_id,
        created_at)`
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
    /** Stores the rows in their order, all or none, in one statement. */
    async insertMany(rows: readonly NewPredictionLogRow[], tx: Executor = db): Promise<void> {
      if (rows.length > 0) await tx.execute(insertStatement(rows))
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
