/**
 * CPU per statement on PGlite: its own `query()` (what the worker ran before) beside the
 * worker's named prepared statements (src/db/pglite-statements.ts), interleaved in the same
 * process so that machine load weighs on both alike. In-process, one thread: what the
 * PGlite thread spends per statement, without the messages to and from the main thread.
 *
 *   npx tsx bench/pglite-statements.ts [--rounds 5] [--statements 1000]
 *
 * The data is the order read's shape: 10,000 orders of 3 lines with their customers, read
 * by id (the order joined with its customer, its lines as JSON), and a customer by id.
 */
import { parseArgs } from 'node:util'
import { PGlite, type QueryOptions } from '@electric-sql/pglite'
import { PreparedStatements, type RowOptions } from '../src/db/pglite-statements.js'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    statements: { type: 'string', default: '1000' },
  },
})
const ROUNDS = Number(args.rounds)
const PER_ROUND = Number(args.statements)

const SCHEMA = `
  create table customers (id uuid primary key, name text not null, email text not null);
  create table orders (
    id uuid primary key, customer_id uuid not null references customers, status text not null,
    total numeric(12, 2) not null, currency text not null, created_at timestamptz not null,
    updated_at timestamptz not null, created_by uuid not null, version int not null);
  create table order_items (
    id uuid primary key, order_id uuid not null references orders, product_id uuid not null,
    product_name text not null, sku text not null, quantity int not null,
    unit_price numeric(12, 2) not null, line_total numeric(12, 2) not null, position int not null);
  create index on order_items (order_id);
  insert into customers
    select gen_random_uuid(), 'Customer ' || n, 'c' || n || '@example.com'
    from generate_series(1, 1000) n;
  insert into orders
    select gen_random_uuid(), (select id from customers offset (n % 1000) limit 1), 'pending',
      n % 500 + 0.9, 'EUR', now() - n * interval '1 minute', now(), gen_random_uuid(), 1
    from generate_series(1, 10000) n;
  insert into order_items
    select gen_random_uuid(), o.id, gen_random_uuid(), 'Product ' || p, 'SKU-' || p, p,
      9.95, 9.95 * p, p
    from orders o, generate_series(1, 3) p;
  analyze;
`

/** The order read's statement as the orders repository builds it (text for text in shape). */
const ORDER_READ = `select o.id, o.customer_id, o.status, o.total, o.currency, o.created_at,
  o.updated_at, o.created_by, o.version, c.name,
  (select coalesce(json_agg(json_build_object(
     'id', i.id, 'orderId', i.order_id, 'productId', i.product_id,
     'productName', i.product_name, 'sku', i.sku, 'quantity', i.quantity,
     'unitPrice', i.unit_price::text, 'lineTotal', i.line_total::text, 'position', i.position
   ) order by i.position), '[]'::json)
   from order_items i where i.order_id = o.id)
  from orders o inner join customers c on c.id = o.customer_id where o.id = $1`
const CUSTOMER_READ = 'select id, name, email from customers where id = $1'

/** The parsers Drizzle's PGlite driver passes: these types come back as Postgres' text. */
const RAW_TYPES = [1114, 1184, 1186, 1082, 1231, 1115, 1185, 1187, 1182]

type Run = (sql: string, id: string) => Promise<unknown>

async function main() {
  const client = await PGlite.create()
  await client.exec(SCHEMA)
  const orderIds = (await client.query<{ id: string }>('select id from orders')).rows.map(
    (row) => row.id,
  )
  const customerIds = (await client.query<{ id: string }>('select id from customers')).rows.map(
    (row) => row.id,
  )

  const raw: NonNullable<QueryOptions['parsers']> = {}
  for (const oid of RAW_TYPES) raw[oid] = (value: string) => value
  const queryOptions: QueryOptions = { rowMode: 'array', parsers: raw }
  const rowOptions: RowOptions = { rowMode: 'array', parsers: { ...client.parsers, ...raw } }
  const statements = new PreparedStatements(client)

  const variants: Record<string, Run> = {
    'query()': (sql, id) => client.query(sql, [id], queryOptions),
    prepared: (sql, id) => statements.query(sql, [id], rowOptions),
  }
  const reads = {
    'order read': { sql: ORDER_READ, ids: orderIds },
    'customer read': { sql: CUSTOMER_READ, ids: customerIds },
  }

  const samples = new Map<string, number[]>()
  for (let round = 0; round < ROUNDS; round++) {
    // Alternating which goes first, so neither always runs on a warmer or quieter machine.
    const names = Object.keys(variants)
    if (round % 2 === 1) names.reverse()
    for (const [readName, read] of Object.entries(reads)) {
      for (const name of names) {
        const run = variants[name] as Run
        // Untimed warm-up: JIT, the statement prepared, pages in the buffer cache.
        for (let i = 0; i < 50; i++) await run(read.sql, read.ids[i % read.ids.length] as string)
        const before = process.cpuUsage()
        for (let i = 0; i < PER_ROUND; i++) {
          await run(read.sql, read.ids[(i * 7919) % read.ids.length] as string)
        }
        const used = process.cpuUsage(before)
        const key = `${readName}, ${name}`
        samples.set(key, [...(samples.get(key) ?? []), (used.user + used.system) / PER_ROUND])
      }
    }
  }
  await client.close()

  console.log(`CPU µs per statement, ${ROUNDS} rounds of ${PER_ROUND} (median; each round)`)
  for (const [key, values] of samples) {
    const sorted = [...values].sort((a, b) => a - b)
    const median = sorted[Math.floor(sorted.length / 2)] as number
    console.log(`${key}: ${median.toFixed(0)} (${values.map((v) => v.toFixed(0)).join(' · ')})`)
  }
}

await main()
