import { eq, inArray, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, unique } from '../../test/helpers.js'
import type { DatabaseHandle } from '../db/client.js'
import { customers, orderItems, orders } from '../db/schema/index.js'
import { hashPassword } from '../modules/auth/passwords.js'
import { createUserRepository } from '../modules/users/repository.js'
import { seed } from './seed.js'

let database: DatabaseHandle
let ownerEmail: string
let ownerId: string

beforeAll(async () => {
  database = await createTestDatabase()
  ownerEmail = `seed-owner-${unique().toLowerCase()}@example.com`
  const owner = await createUserRepository(database.db).insert({
    email: ownerEmail,
    fullName: 'Seed owner',
    role: 'user',
    passwordHash: await hashPassword('irrelevant password'),
  })
  ownerId = owner.id
})
afterAll(() => database.close())

async function ordersOf(owner: string) {
  return database.db.select().from(orders).where(eq(orders.createdBy, owner))
}

describe('seed', () => {
  it('writes the requested rows, with exact totals and consistent items, and reports progress', async () => {
    const progress: number[] = []
    const counts = await seed(database, {
      customers: 30,
      products: 12,
      orders: 40,
      seed: 7,
      ownerEmail,
      onProgress: (done, total) => {
        expect(total).toBe(82)
        progress.push(done)
      },
    })
    expect(counts).toEqual({ customers: 30, products: 12, orders: 40 })
    expect(progress.at(-1)).toBe(82)

    const seeded = await ordersOf(ownerId)
    expect(seeded).toHaveLength(40)
    const ids = seeded.map((order) => order.id)
    const [mismatches] = await database.db
      .select({ count: sql<number>`count(*)::int` })
      .from(orders)
      .where(
        sql`${orders.id} IN ${ids} AND ${orders.total} <> (
          SELECT sum(${orderItems.lineTotal}) FROM ${orderItems}
          WHERE ${orderItems.orderId} = ${orders.id})`,
      )
    expect(mismatches?.count).toBe(0)

    const items = await database.db
      .select()
      .from(orderItems)
      .where(inArray(orderItems.orderId, ids))
    for (const item of items) {
      const cents = Math.round(Number(item.unitPrice) * 100) * item.quantity
      expect(Math.round(Number(item.lineTotal) * 100)).toBe(cents)
    }
    for (const id of ids) {
      const lines = items.filter((item) => item.orderId === id)
      expect(lines.length).toBeGreaterThanOrEqual(1)
      expect(lines.length).toBeLessThanOrEqual(5)
      // A product appears at most once per order, as the API requires.
      expect(new Set(lines.map((line) => line.productId)).size).toBe(lines.length)
    }
    for (const order of seeded) expect(order.updatedAt >= order.createdAt).toBe(true)
  })

  it('is reproducible: the same seed gives the same names', async () => {
    const names = async () => {
      const before = await database.db.select({ id: customers.id }).from(customers)
      const known = new Set(before.map((row) => row.id))
      await seed(database, { customers: 5, products: 0, orders: 0, seed: 99, ownerEmail })
      const after = await database.db
        .select({ id: customers.id, name: customers.name })
        .from(customers)
      return after
        .filter((row) => !known.has(row.id))
        .map((row) => row.name)
        .sort()
    }
    expect(await names()).toEqual(await names())
  })

  it('gives every order exactly --items lines when asked', async () => {
    const owner = await createUserRepository(database.db).insert({
      email: `seed-fixed-${unique().toLowerCase()}@example.com`,
      fullName: 'Seed owner',
      role: 'user',
      passwordHash: 'not used',
    })
    await seed(database, {
      customers: 2,
      products: 6,
      orders: 10,
      itemsPerOrder: 3,
      seed: 3,
      ownerEmail: owner.email,
    })
    const ids = (await ordersOf(owner.id)).map((order) => order.id)
    expect(ids).toHaveLength(10)
    const lines = await database.db
      .select({ orderId: orderItems.orderId, count: sql<number>`count(*)::int` })
      .from(orderItems)
      .where(inArray(orderItems.orderId, ids))
      .groupBy(orderItems.orderId)
    expect(lines.map((line) => line.count)).toEqual(Array(10).fill(3))
  })

  it('refuses orders without products, before writing any order', async () => {
    const before = (await ordersOf(ownerId)).length
    await expect(
      seed(database, { customers: 1, products: 0, orders: 3, seed: 1, ownerEmail }),
    ).rejects.toThrow(/at least one customer and one product/)
    expect(await ordersOf(ownerId)).toHaveLength(before)
  })

  it('names a missing owner', async () => {
    await expect(
      seed(database, {
        customers: 0,
        products: 0,
        orders: 0,
        seed: 1,
        ownerEmail: 'nobody@example.com',
      }),
    ).rejects.toThrow('No user with email nobody@example.com.')
  })
})
