import { faker } from '@faker-js/faker'
import { and, asc, eq } from 'drizzle-orm'
import type { DatabaseHandle } from '../db/client.js'
import {
  CUSTOMER_TIERS,
  customers,
  type NewOrderItemRow,
  ORDER_STATUSES,
  orderItems,
  orders,
  products,
  users,
} from '../db/schema/index.js'
import { fromCents, toCents } from '../shared/money.js'

export interface SeedCounts {
  customers: number
  products: number
  orders: number
}

export interface SeedOptions extends SeedCounts {
  /** Same seed, same data: demos and benchmarks are reproducible. */
  seed: number
  /** The user who "created" the orders; default: the oldest active admin. */
  ownerEmail?: string
  /** Lines per order; default: 1 to 5 at random. Benchmarks fix it to compare runs. */
  itemsPerOrder?: number
  /** Called after every batch with the rows written so far and the total to write. */
  onProgress?: (done: number, total: number) => void
}

/** A product as the order drafts need it: price in exact cents. */
interface Listing {
  id: string
  name: string
  sku: string
  cents: bigint
}

const BATCH = 500
const MAX_ITEMS_PER_ORDER = 5
const DAY_MS = 86_400_000

/**
 * Fills a database with realistic demo data: customers, a catalogue and orders with items
 * spread over the last six months. Each batch is its own transaction, so an interrupted run
 * leaves whole orders only. Rows are bulk-inserted, not sent through the API: this is an
 * import, so it writes no audit events and takes historical orders as given (stock is set
 * directly, not decremented).
 */
export async function seed(database: DatabaseHandle, options: SeedOptions): Promise<SeedCounts> {
  faker.seed(options.seed)
  const { db } = database
  const ownerId = await findOwner(database, options.ownerEmail)
  // Unique per run, so seeding twice adds data instead of colliding on emails and skus.
  const run = Date.now().toString(36).toUpperCase()
  const total = options.customers + options.products + options.orders
  let done = 0
  const progress = (rows: number) => {
    done += rows
    options.onProgress?.(done, total)
  }

  const customerIds: string[] = []
  for (const size of batches(options.customers)) {
    const rows = Array.from({ length: size }, () => {
      const index = customerIds.length
      const name = faker.person.fullName()
      return {
        name: name.slice(0, 100),
        email: `${faker.internet.username({ firstName: name }).toLowerCase()}.${run}.${index}@example.com`,
        tier: faker.helpers.weightedArrayElement([
          { value: CUSTOMER_TIERS[0], weight: 70 },
          { value: CUSTOMER_TIERS[1], weight: 25 },
          { value: CUSTOMER_TIERS[2], weight: 5 },
        ]),
        isActive: faker.datatype.boolean({ probability: 0.95 }),
        createdAt: faker.date.past({ years: 1 }),
      }
    })
    const inserted = await db.insert(customers).values(rows).returning({ id: customers.id })
    customerIds.push(...inserted.map((row) => row.id))
    progress(size)
  }

  const catalogue: Listing[] = []
  for (const size of batches(options.products)) {
    const rows = Array.from({ length: size }, (_, offset) => {
      const cents = BigInt(faker.number.int({ min: 199, max: 99_999 }))
      return {
        sku: `SEED-${run}-${catalogue.length + offset}`,
        name: faker.commerce.productName(),
        description: faker.commerce.productDescription().slice(0, 2000),
        price: fromCents(cents),
        stock: faker.number.int({ min: 0, max: 500 }),
        isActive: faker.datatype.boolean({ probability: 0.9 }),
      }
    })
    const inserted = await db
      .insert(products)
      .values(rows)
      .returning({ id: products.id, name: products.name, sku: products.sku, price: products.price })
    catalogue.push(...inserted.map((row) => ({ ...row, cents: toCents(row.price) })))
    progress(size)
  }

  if (options.orders > 0 && (customerIds.length === 0 || catalogue.length === 0)) {
    throw new Error('Orders need at least one customer and one product in the same run.')
  }
  for (const size of batches(options.orders)) {
    await db.transaction(async (tx) => {
      const drafts = Array.from({ length: size }, () =>
        draftOrder(customerIds, catalogue, options.itemsPerOrder),
      )
      const inserted = await tx
        .insert(orders)
        .values(
          drafts.map((draft) => ({
            customerId: draft.customerId,
            createdBy: ownerId,
            status: draft.status,
            total: fromCents(draft.totalCents),
            notes: draft.notes,
            createdAt: draft.createdAt,
            updatedAt: draft.updatedAt,
          })),
        )
        .returning({ id: orders.id })
      const items: NewOrderItemRow[] = inserted.flatMap((order, index) =>
        (drafts[index]?.items ?? []).map((item) => ({ ...item, orderId: order.id })),
      )
      await tx.insert(orderItems).values(items)
    })
    progress(size)
  }

  return { customers: customerIds.length, products: catalogue.length, orders: options.orders }
}

function draftOrder(
  customerIds: readonly string[],
  catalogue: readonly Listing[],
  itemsPerOrder: number | undefined,
) {
  const lines = faker.helpers.arrayElements(
    catalogue,
    itemsPerOrder === undefined
      ? { min: 1, max: Math.min(MAX_ITEMS_PER_ORDER, catalogue.length) }
      : Math.min(itemsPerOrder, catalogue.length),
  )
  const items = lines.map((product, position) => {
    const quantity = faker.number.int({ min: 1, max: 4 })
    return {
      productId: product.id,
      productName: product.name,
      sku: product.sku,
      quantity,
      unitPrice: fromCents(product.cents),
      lineTotal: fromCents(product.cents * BigInt(quantity)),
      lineCents: product.cents * BigInt(quantity),
      position,
    }
  })
  const createdAt = faker.date.recent({ days: 180 })
  return {
    customerId: faker.helpers.arrayElement(customerIds),
    status: faker.helpers.weightedArrayElement(
      ORDER_STATUSES.map((value) => ({ value, weight: value === 'delivered' ? 5 : 2 })),
    ),
    notes: faker.datatype.boolean({ probability: 0.3 }) ? faker.lorem.sentence() : null,
    createdAt,
    updatedAt: new Date(
      Math.min(Date.now(), createdAt.getTime() + faker.number.int({ min: 0, max: 3 * DAY_MS })),
    ),
    totalCents: items.reduce((sum, item) => sum + item.lineCents, 0n),
    items: items.map(({ lineCents: _cents, ...item }) => item),
  }
}

async function findOwner({ db }: DatabaseHandle, email: string | undefined): Promise<string> {
  const [owner] = await db
    .select({ id: users.id })
    .from(users)
    .where(
      email === undefined
        ? and(eq(users.role, 'admin'), eq(users.isActive, true))
        : eq(users.email, email.toLowerCase()),
    )
    .orderBy(asc(users.createdAt))
    .limit(1)
  if (!owner) {
    throw new Error(
      email === undefined
        ? 'No active admin to own the orders: run `create-admin` first, or pass --owner.'
        : `No user with email ${email}.`,
    )
  }
  return owner.id
}

function* batches(count: number) {
  for (let start = 0; start < count; start += BATCH) yield Math.min(BATCH, count - start)
}
