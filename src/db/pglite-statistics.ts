import type { Results } from '@electric-sql/pglite'

/**
 * Planner statistics for PGlite. PostgreSQL keeps them fresh with autovacuum, which PGlite
 * does not run; its cumulative statistics (`n_mod_since_analyze`) are not counted either, and
 * are lost at every close. Without them the planner guesses from file sizes: on the bench's
 * 10,000 orders it estimated 7,314 (the order page's `total` past ORDER_COUNT_EXACT_MAX is
 * that estimate) and 116 lines an order instead of 3.
 *
 * What is persisted is enough to tell when a table needs them: `pg_class` keeps the table's
 * pages as of its last ANALYZE (`reltuples` is -1 before the first). A table is analyzed when
 * it has rows and was never analyzed, or has grown by a fifth plus 8 pages since (64 kB, so a
 * small table is not analyzed at every few rows). Inserts and updates grow a table (without
 * VACUUM an update writes a new row version); deletes alone do not, and leave the statistics
 * to the next growth.
 */
export const STALE_TABLES = `
  SELECT format('%I.%I', n.nspname, c.relname) AS "table"
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg_toast%'
    AND pg_relation_size(c.oid) > 0
    AND (c.reltuples < 0
      OR pg_relation_size(c.oid) / current_setting('block_size')::bigint > c.relpages * 1.2 + 8)
  ORDER BY 1`

/** How long after the thread opens it first looks: after start-up, not in its way. */
export const STATISTICS_FIRST_CHECK_MS = 5_000
/** How often it looks again; the look itself is one catalog query. */
export const STATISTICS_CHECK_INTERVAL_MS = 60_000

/** Runs one script on the connection when it is free, in turn with every other statement. */
export type RunScript = (sql: string) => Promise<Results[]>

/**
 * Analyzes the tables whose statistics are missing or stale, one ANALYZE each, so that the
 * statements waiting on the one connection run between them rather than after all of them
 * (ANALYZE reads a sample of at most 30,000 rows a table: 40 ms for the orders warm, about
 * 0.5 s cold). Answers the tables analyzed.
 */
export async function analyzeStaleTables(run: RunScript): Promise<string[]> {
  const [stale] = await run(STALE_TABLES)
  const tables = (stale?.rows ?? []).map((row) => (row as { table: string }).table)
  for (const table of tables) await run(`ANALYZE ${table}`)
  return tables
}
