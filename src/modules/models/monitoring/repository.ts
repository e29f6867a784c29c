import { and, count, desc, eq, gte, lt, type SQL } from 'drizzle-orm'
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

/** Rows per INSERT: far below PostgreSQL's 65,535 parameters at 10 columns a row. */
const INSERT_ROWS = 1000

function rangeOf(model: string, { from, to }: TimeRange): SQL | undefined {
  return and(
    eq(predictionLog.model, model),
    from === undefined ? undefined : gte(predictionLog.createdAt, from),
    to === undefined ? undefined : lt(predictionLog.createdAt, to),
  )
}

export function createPredictionLogRepository(db: Database) {
  return {
    async insertMany(rows: NewPredictionLogRow[], tx: Executor = db): Promise<void> {
      for (let start = 0; start < rows.length; start += INSERT_ROWS) {
        await tx.insert(predictionLog).values(rows.slice(start, start + INSERT_ROWS))
      }
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
