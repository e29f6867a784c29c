/**
 * The seeded orders the order scenarios read. The database is opened from the bench process
 * before any server starts, because embedded PGlite admits one process per data directory;
 * it is closed again before the server opens it.
 */
import { asc, count, eq, inArray, like } from 'drizzle-orm'
import { createAdmin } from '../src/cli/create-admin.js'
import { seed } from '../src/cli/seed.js'
import { openDatabase } from '../src/db/client.js'
import { migrate } from '../src/db/migrate.js'
import { customers, orderItems, orders, products, users } from '../src/db/schema/index.js'

/** The data set: 10k orders of 3 items each, owned by the bench admin. */
export const ORDER_TARGET = 10_000
const ITEMS_PER_ORDER = 3
// The CLI's defaults: enough customers and products for the orders to spread over.
const SEED_CUSTOMERS = 1_000
const SEED_PRODUCTS = 200
const SEED = 42
const ORDER_PRODUCT_SKU = 'ORD'
/** Stock of each product the order scenarios buy: more than any run can take. */
export const ORDER_PRODUCT_STOCK = 1_000_000_000

/** The sku prefix of the products a run's orders buy, so later runs can find those orders. */
export function orderProductSkuPrefix(runId: string): string {
  return `BENCH-${runId}-${ORDER_PRODUCT_SKU}`
}

export interface OrderDataTarget {
  /** Set in services mode; unset opens PGlite in `dataDir`. */
  databaseUrl?: string
  dataDir: string
}

export interface OrderData {
  /** The bench admin, who owns the orders and places new ones. */
  adminId: string
  /** Ids of the admin's orders, up to ORDER_TARGET of them, for the reads to rotate over. */
  orderIds: string[]
  /** An active customer, to place new orders for. */
  customerId: string
  /** Orders placed by earlier runs and deleted by this call. */
  removed: number
  /** Orders seeded by this call; 0 when the database already held enough. */
  seeded: number
  seedSeconds: number
}

/**
 * Makes sure the admin exists and owns at least ORDER_TARGET orders, seeding only the
 * shortfall: services mode keeps its database between runs, and must not grow it each time.
 * For the same reason it first deletes the orders that earlier runs placed through the API,
 * so every run reads the same seeded orders of 3 items, newest first.
 */
export async function prepareOrderData(
  target: OrderDataTarget,
  admin: { email: string; password: string },
): Promise<OrderData> {
  const database = await openDatabase({
    url: target.databaseUrl,
    dataDir: target.dataDir,
    poolMax: 2,
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 0,
  })
  try {
    await migrate(database)
    const { db } = database
    const placedByBench = db
      .select({ id: orderItems.orderId })
      .from(orderItems)
      .innerJoin(products, eq(products.id, orderItems.productId))
      .where(like(products.sku, `${orderProductSkuPrefix('%')}-%`))
    const removed = await db
      .delete(orders)
      .where(inArray(orders.id, placedByBench))
      .returning({ id: orders.id })
    const [existing] = await db
      .select({ id: users.id })
      .from(users)
      .where(eq(users.email, admin.email))
    const adminId =
      existing?.id ??
      (await createAdmin(database, { ...admin, full_name: 'Bench administrator' })).id

    const [owned] = await db
      .select({ total: count() })
      .from(orders)
      .where(eq(orders.createdBy, adminId))
    const shortfall = Math.max(0, ORDER_TARGET - (owned?.total ?? 0))
    const startedAt = performance.now()
    if (shortfall > 0) {
      await seed(database, {
        customers: SEED_CUSTOMERS,
        products: SEED_PRODUCTS,
        orders: shortfall,
        itemsPerOrder: ITEMS_PER_ORDER,
        seed: SEED,
        ownerEmail: admin.email,
      })
    }
    const seedSeconds = (performance.now() - startedAt) / 1000

    const ids = await db
      .select({ id: orders.id })
      .from(orders)
      .where(eq(orders.createdBy, adminId))
      // Ids are random UUIDs: in id order, consecutive GETs land on unrelated rows and pages.
      .orderBy(asc(orders.id))
      .limit(ORDER_TARGET)
    const [customer] = await db
      .select({ id: customers.id })
      .from(customers)
      .where(eq(customers.isActive, true))
      .orderBy(asc(customers.createdAt))
      .limit(1)
    if (!customer) throw new Error('no active customer to place orders for')
    return {
      adminId,
      orderIds: ids.map((row) => row.id),
      customerId: customer.id,
      seeded: shortfall,
      seedSeconds,
      removed: removed.length,
    }
  } finally {
    await database.close()
  }
}
