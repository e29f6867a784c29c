import { and, count, desc, eq, ilike, or, type SQL, sql } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import { containsPattern } from '../../db/search.js'
import { type DatasetColumn, quoteIdent, SQL_TYPES, type StoredValue } from './columns.js'
import type { DatasetFormat } from './readers.js'
import { rowsTable } from './row-store.js'
import { type DatasetRow, type DatasetStatus, datasets, type NewDatasetRow } from './table.js'

export interface DatasetListFilter {
  /** Only this user's datasets; null for everyone's. */
  ownerId: string | null
  format?: DatasetFormat
  status?: DatasetStatus
  search?: string
  limit: number
  offset: number
}

export const FILTER_OPERATORS = [
  'eq',
  'ne',
  'gt',
  'gte',
  'lt',
  'lte',
  'in',
  'contains',
  'is_null',
] as const
export type FilterOperator = (typeof FILTER_OPERATORS)[number]

export interface RowFilter {
  column: DatasetColumn
  operator: FilterOperator
  /** A list for `in`, a boolean for `is_null`, one value otherwise. */
  value: StoredValue | StoredValue[] | boolean
}

export interface RowQuery {
  datasetId: string
  select: readonly DatasetColumn[]
  filters: readonly RowFilter[]
  /** null sorts by the row's position in the file. */
  sort: DatasetColumn | null
  descending: boolean
  limit: number
  offset: number
  /** Keyset paging: rows after this sort value and position. */
  after?: { value: StoredValue; row: number }
}

export interface RowPage {
  rows: { row: number; values: Record<string, unknown>; sortValue: unknown }[]
}

const column = (c: DatasetColumn) => sql.raw(quoteIdent(c.sql_name))
const typed = (c: DatasetColumn, value: StoredValue) => sql`${value}::${sql.raw(SQL_TYPES[c.type])}`

/** The value as the API shows it: timestamps in UTC ISO 8601 whatever the session zone. */
function output(c: DatasetColumn): SQL {
  if (c.type === 'timestamp') {
    return sql`to_char(${column(c)} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
  }
  return column(c)
}

function condition(filter: RowFilter): SQL {
  const c = column(filter.column)
  const { value } = filter
  switch (filter.operator) {
    case 'is_null':
      return value === true ? sql`${c} IS NULL` : sql`${c} IS NOT NULL`
    case 'in':
      return sql`${c} IN (${sql.join(
        (value as StoredValue[]).map((v) => typed(filter.column, v)),
        sql`, `,
      )})`
    case 'contains':
      return sql`${c} ILIKE ${containsPattern(String(value))}`
    default: {
      const operators = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const
      return sql`${c} ${sql.raw(operators[filter.operator])} ${typed(filter.column, value as StoredValue)}`
    }
  }
}

/**
 * Rows after the keyset position, in the page's order. Nulls sort last ascending and first
 * descending (PostgreSQL's default), so the position's null-ness decides the condition.
 */
function after(query: RowQuery): SQL | undefined {
  if (!query.after) return undefined
  const { value, row } = query.after
  if (!query.sort) return query.descending ? sql`_row < ${row}` : sql`_row > ${row}`
  const c = column(query.sort)
  const v = typed(query.sort, value)
  if (query.descending) {
    return value === null
      ? sql`((${c} IS NULL AND _row < ${row}) OR ${c} IS NOT NULL)`
      : sql`(${c} < ${v} OR (${c} = ${v} AND _row < ${row}))`
  }
  return value === null
    ? sql`(${c} IS NULL AND _row > ${row})`
    : sql`(${c} IS NULL OR ${c} > ${v} OR (${c} = ${v} AND _row > ${row}))`
}

export function createDatasetRepository(db: Database) {
  return {
    async insert(values: NewDatasetRow, tx?: Executor): Promise<DatasetRow> {
      const [row] = await (tx ?? db).insert(datasets).values(values).returning()
      return row as DatasetRow
    },

    async find(id: string, tx?: Executor): Promise<DatasetRow | undefined> {
      const [row] = await (tx ?? db).select().from(datasets).where(eq(datasets.id, id))
      return row
    },

    async findByJob(jobId: string, tx?: Executor): Promise<DatasetRow | undefined> {
      const [row] = await (tx ?? db).select().from(datasets).where(eq(datasets.jobId, jobId))
      return row
    },

    async update(id: string, values: Partial<NewDatasetRow>, tx?: Executor) {
      const [row] = await (tx ?? db)
        .update(datasets)
        .set({ ...values, updatedAt: new Date() })
        .where(eq(datasets.id, id))
        .returning()
      return row
    },

    async remove(id: string, tx?: Executor): Promise<boolean> {
      const removed = await (tx ?? db)
        .delete(datasets)
        .where(eq(datasets.id, id))
        .returning({ id: datasets.id })
      return removed.length > 0
    },

    async list(filter: DatasetListFilter): Promise<{ items: DatasetRow[]; total: number }> {
      const where = and(
        filter.ownerId === null ? undefined : eq(datasets.ownerId, filter.ownerId),
        filter.format ? eq(datasets.format, filter.format) : undefined,
        filter.status ? eq(datasets.status, filter.status) : undefined,
        filter.search === undefined
          ? undefined
          : or(
              ilike(datasets.name, containsPattern(filter.search)),
              ilike(datasets.description, containsPattern(filter.search)),
            ),
      )
      const [items, [counted]] = await Promise.all([
        db
          .select()
          .from(datasets)
          .where(where)
          .orderBy(desc(datasets.createdAt), desc(datasets.id))
          .limit(filter.limit)
          .offset(filter.offset),
        db.select({ total: count() }).from(datasets).where(where),
      ])
      return { items, total: counted?.total ?? 0 }
    },

    async queryRows(query: RowQuery): Promise<RowPage> {
      const table = sql.raw(rowsTable(query.datasetId))
      const where = and(...query.filters.map(condition), after(query))
      const direction = sql.raw(query.descending ? 'DESC' : 'ASC')
      const order = query.sort
        ? sql`${column(query.sort)} ${direction}, _row ${direction}`
        : sql`_row ${direction}`
      const selected = query.select.map((c) => sql`${output(c)} AS ${column(c)}`)
      // As text, so the cursor carries it losslessly and casts it back by the column's type.
      const sortValue = query.sort ? sql`(${output(query.sort)})::text` : sql`NULL`
      const result = await db.execute(sql`
        SELECT _row::text AS position, row_to_json(s) AS r, s.__sort AS sort_value FROM (
          SELECT _row, ${sql.join([...selected, sql`${sortValue} AS __sort`], sql`, `)}
          FROM ${table} ${where ? sql`WHERE ${where}` : sql``}
          ORDER BY ${order} LIMIT ${query.limit} OFFSET ${query.offset}
        ) s`)
      const rows = (result as unknown as { rows: Record<string, unknown>[] }).rows
      return {
        rows: rows.map((r) => {
          const json = (typeof r.r === 'string' ? JSON.parse(r.r) : r.r) as Record<string, unknown>
          const values: Record<string, unknown> = {}
          for (const c of query.select) values[c.name] = json[c.sql_name] ?? null
          return { row: Number(r.position), values, sortValue: r.sort_value ?? null }
        }),
      }
    },

    async countRows(datasetId: string, filters: readonly RowFilter[]): Promise<number> {
      const where = and(...filters.map(condition))
      const result = await db.execute(
        sql`SELECT count(*)::int AS total FROM ${sql.raw(rowsTable(datasetId))} ${where ? sql`WHERE ${where}` : sql``}`,
      )
      const [row] = (result as unknown as { rows: { total: number }[] }).rows
      return Number(row?.total ?? 0)
    },

    /** Every row in file order, a batch at a time, keyed on position: memory holds one batch. */
    async *streamRows(datasetId: string, columns: readonly DatasetColumn[], batch = 5000) {
      let last = 0
      for (;;) {
        const page = await this.queryRows({
          datasetId,
          select: columns,
          filters: [],
          sort: null,
          descending: false,
          limit: batch,
          offset: 0,
          after: { value: null, row: last },
        })
        if (page.rows.length === 0) return
        yield page.rows.map((r) => r.values)
        last = (page.rows.at(-1) as { row: number }).row
        if (page.rows.length < batch) return
      }
    },
  }
}

export type DatasetRepository = ReturnType<typeof createDatasetRepository>
