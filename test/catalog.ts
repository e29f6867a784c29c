import { eq } from 'drizzle-orm'
import { products } from '../src/db/schema/index.js'
import { type TestApp, unique } from './helpers.js'

/** A product inserted straight into the database, for tests that need stock to take. */
export async function insertProduct(
  t: TestApp,
  values: Partial<typeof products.$inferInsert> = {},
) {
  const [row] = await t.database.db
    .insert(products)
    .values({ sku: `TEST-${unique()}`, name: 'Desk lamp', price: '19.90', stock: 50, ...values })
    .returning()
  if (!row) throw new Error('no product')
  return row
}

/** The product's stock as the database holds it now. */
export async function stockOf(t: TestApp, productId: string) {
  const [row] = await t.database.db
    .select({ stock: products.stock })
    .from(products)
    .where(eq(products.id, productId))
  return row?.stock
}
