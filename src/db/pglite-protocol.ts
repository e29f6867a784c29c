/** Messages between the main thread's `PGliteThread` and the worker that owns PGlite. */

export interface WorkerInit {
  dataDir: string | undefined
  /** A data directory dump (tarball) to start from, moved to the worker, not copied. */
  loadDataDir: ArrayBuffer | undefined
  /** PostgreSQL's shared_buffers, in MB; EMBEDDED_SHARED_BUFFERS_MB's default when unset. */
  sharedBuffersMb?: number
  /** How many named prepared statements the thread keeps; PREPARED_STATEMENTS_MAX when unset. */
  preparedStatementsMax?: number
  /**
   * How often the thread looks for tables whose planner statistics are stale and analyzes
   * them (pglite-statistics.ts); 0 never. STATISTICS_CHECK_INTERVAL_MS when unset.
   */
  statisticsCheckIntervalMs?: number
}

/** EMBEDDED_SHARED_BUFFERS_MB's default, also for callers without a config (CLI, tests). */
export const EMBEDDED_SHARED_BUFFERS_MB = 16

/**
 * Query options as they cross threads. Functions cannot, so parsers travel as the type OIDs
 * to be handed over as Postgres' text: the only parsers Drizzle's PGlite driver passes.
 */
export interface WireQueryOptions {
  rowMode?: 'array' | 'object'
  rawTypes?: number[]
}

export type ToWorker = { id: number } & (
  | { kind: 'query'; sql: string; params: unknown[]; options: WireQueryOptions; tx?: number }
  | { kind: 'exec'; sql: string; tx?: number }
  /** `COPY ... FROM '/dev/blob'` fed with `data` (moved to the worker, not copied). */
  | { kind: 'copy'; sql: string; data: Uint8Array }
  | { kind: 'begin' }
  | { kind: 'commit'; tx: number }
  | { kind: 'rollback'; tx: number }
  | { kind: 'dump' }
  /** Analyzes the tables whose statistics are stale now; answers their names. */
  | { kind: 'analyze' }
  | { kind: 'close' }
)

/** An error as it crosses threads: structured clone keeps the message but drops `code` & co. */
export interface WireError {
  name: string
  message: string
  stack?: string
  fields: Record<string, string | number | boolean | undefined>
}

export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'open_failed'; error: WireError }
  | { kind: 'answer'; id: number; value: unknown }
  | { kind: 'failed'; id: number; error: WireError }

export function toWireError(error: unknown): WireError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), fields: {} }
  const fields: WireError['fields'] = {}
  // PGlite's DatabaseError carries SQLSTATE, constraint, detail... as own properties.
  for (const [key, value] of Object.entries(error)) {
    if (['string', 'number', 'boolean'].includes(typeof value)) fields[key] = value
  }
  return { name: error.name, message: error.message, stack: error.stack, fields }
}

export function fromWireError(wire: WireError): Error {
  const error = Object.assign(new Error(wire.message), wire.fields)
  error.name = wire.name
  if (wire.stack) error.stack = wire.stack
  return error
}
