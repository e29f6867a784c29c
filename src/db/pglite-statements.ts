import { type PGlite, parse, protocol, type QueryOptions, type Results } from '@electric-sql/pglite'
import { LRUCache } from 'lru-cache'

type BackendMessage = Awaited<ReturnType<PGlite['execProtocolStream']>>[number]
type DatabaseError = InstanceType<typeof protocol.messages.DatabaseError>

const { serialize } = protocol
const {
  CommandCompleteMessage,
  DatabaseError,
  ParameterDescriptionMessage,
  ReadyForQueryMessage,
  RowDescriptionMessage,
} = protocol.messages

/** How many named statements PGlite keeps by default; the least recently used go first. */
export const PREPARED_STATEMENTS_MAX = 128

/**
 * Commands after which every statement prepared before still describes its parameters and
 * columns truly (the first word of the command tag). Any other command may have changed a
 * table, a type or the search path; ROLLBACK may have undone such a change.
 */
const KEEPS_SCHEMA = new Set([
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'MERGE',
  'COPY',
  'FETCH',
  'MOVE',
  'EXPLAIN',
  'SHOW',
  'BEGIN',
  'START',
  'COMMIT',
  'SAVEPOINT',
  'RELEASE',
  'LOCK',
  'TRUNCATE',
  'NOTIFY',
  'LISTEN',
  'UNLISTEN',
  'ANALYZE',
  'VACUUM',
])

/**
 * SQLSTATEs that say a named statement no longer fits the schema under it (0A000: "cached
 * plan must not change result type") or is gone (26000): prepared again, it runs.
 */
const OUTDATED_STATEMENT = new Set(['0A000', '26000'])

interface Prepared {
  name: string
  /** The parameter types PostgreSQL inferred at Parse: they pick each value's serialiser. */
  paramTypes: number[]
  /** The statement's RowDescription, which the rows are decoded by; none when it has no rows. */
  columns: BackendMessage | undefined
}

/** The JavaScript values a query answers with, as PGlite's `query()` decodes them. */
export type RowOptions = Pick<QueryOptions, 'rowMode'> & { parsers: PGlite['parsers'] }

/**
 * Statements run as PostgreSQL named prepared statements on PGlite, for the thread that owns
 * it. PGlite's `query()` sends six protocol messages, one call into WebAssembly each, with an
 * unnamed Parse, so PostgreSQL parses and plans the statement on every call. Here a distinct
 * SQL text is parsed and described once (Parse, Describe, Sync), then each call is one
 * exchange of Bind, Execute and Sync. Values are serialised and rows decoded by PGlite's own
 * serialisers and parsers, so callers get the same values as from `query()`.
 *
 * Every schema change passes through here (PGlite has no other connection), so statements
 * are dropped when a command may have changed the schema, and again when a transaction that
 * did so rolls back.
 */
export class PreparedStatements {
  readonly #client: PGlite
  readonly #prepared: LRUCache<string, Prepared>
  /** Statements dropped from the cache, closed in PostgreSQL with the next Parse. */
  #unclosed: string[] = []
  #nextName = 1
  /** The open transaction changed the schema: a rollback outdates what was prepared since. */
  #schemaChangedInTransaction = false

  constructor(client: PGlite, max = PREPARED_STATEMENTS_MAX) {
    this.#client = client
    this.#prepared = new LRUCache({
      max,
      dispose: (statement) => this.#unclosed.push(statement.name),
    })
  }

  /**
   * Runs one statement with its parameters, prepared once per SQL text. Under PGlite's
   * query lock, as its own `query()` runs: PGlite keeps the answer being read in one field,
   * so two exchanges interleaved at an `await` would each read the other's.
   */
  query(sql: string, params: unknown[], options: RowOptions): Promise<Results> {
    return this.#client.runExclusive(() => this.#query(sql, params, options))
  }

  /** Runs a script of one or more statements through PostgreSQL's simple query protocol. */
  script(sql: string): Promise<Results[]> {
    return this.#client.runExclusive(() => this.#script(sql))
  }

  async #query(sql: string, params: unknown[], options: RowOptions): Promise<Results> {
    let statement = this.#prepared.get(sql) ?? (await this.#prepare(sql, params))
    let messages = await this.#execute(statement, params)
    let error = firstError(messages)
    if (error?.code && OUTDATED_STATEMENT.has(error.code)) {
      this.#prepared.delete(sql)
      // Outside a transaction nothing was done yet: prepare it again and run it. Inside one,
      // the error has aborted the transaction, so it stands; the next call prepares it again.
      if (status(messages) === 'I') {
        statement = await this.#prepare(sql, params)
        messages = await this.#execute(statement, params)
        error = firstError(messages)
      }
    }
    if (error) throw queryError(error, sql, params, options)
    const answer = statement.columns ? [statement.columns, ...messages] : messages
    return parse.parseResults(answer, options.parsers, { rowMode: options.rowMode })[0] as Results
  }

  async #script(sql: string): Promise<Results[]> {
    const messages = await this.#exchange([serialize.query(sql)])
    const error = firstError(messages)
    if (error) throw queryError(error, sql, undefined, undefined)
    return parse.parseResults(messages, this.#client.parsers)
  }

  /** How many statements are prepared now (the cache's size, bounded by its maximum). */
  get size(): number {
    return this.#prepared.size
  }

  async #prepare(sql: string, params: unknown[]): Promise<Prepared> {
    const name = `s${this.#nextName++}`
    // Room is made before the Parse, so that its Close goes with it and PostgreSQL never
    // holds more statements than the bound.
    if (this.#prepared.size >= this.#prepared.max) {
      const leastRecent = this.#prepared.rkeys().next()
      if (!leastRecent.done) this.#prepared.delete(leastRecent.value)
    }
    const closes = this.#unclosed.splice(0).map((old) => serialize.close({ type: 'S', name: old }))
    const messages = await this.#exchange([
      ...closes,
      serialize.parse({ name, text: sql }),
      serialize.describe({ type: 'S', name }),
      serialize.sync(),
    ])
    const error = firstError(messages)
    if (error) {
      // Parse failed, so there is nothing to keep; should Describe have failed after it,
      // the statement is closed with the next Parse.
      this.#unclosed.push(name)
      throw queryError(error, sql, params, undefined)
    }
    const parameters = messages.find((message) => message instanceof ParameterDescriptionMessage)
    const prepared: Prepared = {
      name,
      paramTypes: parameters?.dataTypeIDs ?? [],
      columns: messages.find((message) => message instanceof RowDescriptionMessage),
    }
    this.#prepared.set(sql, prepared)
    return prepared
  }

  #execute(statement: Prepared, params: unknown[]): Promise<BackendMessage[]> {
    const serializers = this.#client.serializers
    const values = params.map((value, i) => {
      if (value === null || value === undefined) return null
      const serializer = serializers[statement.paramTypes[i] as number]
      return serializer ? serializer(value) : String(value)
    })
    return this.#exchange([
      serialize.bind({ statement: statement.name, values }),
      serialize.execute({}),
      serialize.sync(),
    ])
  }

  /**
   * One call into PostgreSQL. Its answer always ends in ReadyForQuery: after an error
   * PostgreSQL skips to the Sync, which ends the implicit transaction (or leaves the explicit
   * one failed), so the connection is usable by the next call.
   */
  async #exchange(parts: Uint8Array[]): Promise<BackendMessage[]> {
    if (this.#client.closed) throw new Error('PGlite is closed')
    const messages = await this.#client.execProtocolStream(concat(parts), {
      syncToFs: false,
      throwOnError: false,
    })
    this.#observeSchema(messages)
    // What PGlite's query() does after each statement outside a transaction.
    if (status(messages) === 'I') await this.#client.syncToFs()
    return messages
  }

  #observeSchema(messages: BackendMessage[]) {
    for (const message of messages) {
      if (!(message instanceof CommandCompleteMessage)) continue
      const command = message.text.split(' ', 1)[0] as string
      if (command === 'ROLLBACK') {
        if (this.#schemaChangedInTransaction) this.#forget()
      } else if (!KEEPS_SCHEMA.has(command)) {
        this.#forget()
        this.#schemaChangedInTransaction = status(messages) !== 'I'
      }
    }
    if (status(messages) === 'I') this.#schemaChangedInTransaction = false
  }

  /** Drops every prepared statement (they are closed with the next Parse). */
  #forget() {
    this.#prepared.clear()
  }
}

function firstError(messages: BackendMessage[]): DatabaseError | undefined {
  return messages.find((message) => message instanceof DatabaseError)
}

/** The transaction status of the last ReadyForQuery: I idle, T in a transaction, E failed. */
function status(messages: BackendMessage[]): string | undefined {
  const last = messages.at(-1)
  return last instanceof ReadyForQueryMessage ? last.status : undefined
}

/** The fields PGlite's `query()` adds to a DatabaseError (`makePGliteError`). */
function queryError(
  error: DatabaseError,
  query: string,
  params: unknown[] | undefined,
  queryOptions: unknown,
): DatabaseError {
  return Object.assign(error, { query, params, queryOptions })
}

function concat(parts: Uint8Array[]): Uint8Array {
  const whole = new Uint8Array(parts.reduce((length, part) => length + part.length, 0))
  let offset = 0
  for (const part of parts) {
    whole.set(part, offset)
    offset += part.length
  }
  return whole
}
