import { randomUUID } from 'node:crypto'
import type { InTransaction, Transaction, TransactionHook } from '../../db/client.js'
import type { OrderItemRow, OrderRow, OrderStatus, ProductRow } from '../../db/schema/index.js'
import type { ResourceCache, Tagged } from '../../platform/read-cache.js'
import { type Caller, canSee, ownerScope } from '../../shared/caller.js'
import { type FieldError, ValidationFailed } from '../../shared/errors.js'
import { fromCents, toCents } from '../../shared/money.js'
import { pageOf, sortOf, toPage } from '../../shared/schemas.js'
import type { Actor } from '../audit/actor.js'
import { createdChanges, deletedChanges, updatedChanges } from '../audit/changes.js'
import { recordAudit } from '../audit/log.js'
import { InvalidStatusTransition, OrderNotFound, OutOfStock } from './errors.js'
import type { OrderDetail, OrderRepository } from './repository.js'
import type {
  Order,
  OrderCreate,
  OrderItem,
  OrderListQuery,
  OrderPage,
  OrderStatusChange,
  OrderUpdate,
} from './schemas.js'

export interface OrderServiceDeps {
  orders: OrderRepository
  inTransaction: InTransaction
  /** The most units one order may hold, all its lines together (ORDER_MAX_TOTAL_QUANTITY). */
  maxTotalQuantity: number
  /** The most orders a page counts exactly before estimating (ORDER_COUNT_EXACT_MAX). */
  exactCountMax: number
  /** Single-order reads; told of every change after it commits. */
  cache: ResourceCache<Order>
  /** Single-product reads: placing, cancelling and deleting orders move their stock. */
  productCache: Pick<ResourceCache<unknown>, 'changed'>
  /**
   * Runs in the transaction that places an order, so what it records (the confirmation
   * email's job) commits with the order or not at all.
   */
  placed?: TransactionHook<Order>
}

/** Where each status may go next; the statuses without an entry are final. */
export const NEXT_STATUSES: Record<OrderStatus, readonly OrderStatus[]> = {
  pending: ['processing', 'cancelled'],
  processing: ['shipped', 'cancelled'],
  shipped: ['delivered'],
  delivered: [],
  cancelled: [],
}

/** Orders whose goods are still in the warehouse: cancelling or deleting them restocks. */
const HOLDS_STOCK: ReadonlySet<OrderStatus> = new Set(['pending', 'processing'])

/** The largest NUMERIC(14,2) total, so an order never overflows its column. */
const MAX_TOTAL_CENTS = 99_999_999_999_999n

const AUDITED_FIELDS = ['customer_id', 'status', 'items', 'total', 'notes'] as const

function toItem(row: OrderItemRow): OrderItem {
  return {
    id: row.id,
    product_id: row.productId,
    product_name: row.productName,
    sku: row.sku,
    quantity: row.quantity,
    unit_price: row.unitPrice,
    line_total: row.lineTotal,
  }
}

export function toOrder({ order, customerName, items }: OrderDetail): Order {
  return {
    id: order.id,
    customer_id: order.customerId,
    customer_name: customerName,
    status: order.status,
    items: items.map(toItem),
    total: order.total,
    notes: order.notes,
    created_by: order.createdBy,
    created_at: order.createdAt.toISOString(),
    updated_at: order.updatedAt.toISOString(),
  }
}

interface Line {
  productId: string
  quantity: number
}

const itemPath = (index: number) => `body.items[${index}]`

/** The rules a request breaks before any row is read: repeated products, too many units. */
function checkLines(items: Line[], maxQuantity: number) {
  const errors: FieldError[] = []
  const positions = new Map<string, number[]>()
  items.forEach(({ productId }, index) => {
    positions.set(productId, [...(positions.get(productId) ?? []), index])
  })
  for (const indexes of positions.values()) {
    if (indexes.length < 2) continue
    const where = indexes.map((index) => `items[${index}]`).join(', ')
    for (const index of indexes) {
      errors.push({
        path: `${itemPath(index)}.product_id`,
        message: `lists the same product as ${where}; put it on one line with the summed quantity`,
      })
    }
  }
  const units = items.reduce((sum, item) => sum + item.quantity, 0)
  if (units > maxQuantity) {
    errors.push({
      path: 'body.items',
      message: `must hold at most ${maxQuantity} units in total (has ${units})`,
    })
  }
  if (errors.length > 0) throw new ValidationFailed(errors)
}

/** Every line's product must exist and be active. */
function productErrors(lines: Line[], catalogue: Map<string, ProductRow>): FieldError[] {
  return lines.flatMap(({ productId }, index) => {
    const product = catalogue.get(productId)
    if (product?.isActive) return []
    const message = product ? 'is not active' : 'does not exist'
    return [{ path: `${itemPath(index)}.product_id`, message }]
  })
}

/** Every line must find its units on the shelf; names every short line at once. */
function assertInStock(lines: Line[], catalogue: Map<string, ProductRow>) {
  const short = lines.flatMap(({ productId, quantity }, index) => {
    const product = catalogue.get(productId)
    if (!product || product.stock >= quantity) return []
    const line = { path: itemPath(index), product_id: productId, sku: product.sku }
    return [{ ...line, requested: quantity, available: product.stock }]
  })
  if (short.length > 0) {
    const which = short.map((line) => `${line.path} (${line.sku})`).join(', ')
    throw new OutOfStock(`Not enough stock for ${which}.`, { lines: short })
  }
}

export function createOrderService({
  orders,
  inTransaction,
  maxTotalQuantity,
  exactCountMax,
  cache,
  productCache,
  placed: onPlaced,
}: OrderServiceDeps) {
  const notFound = (id: string) => new OrderNotFound(`Order ${id} does not exist.`)

  async function load(id: string, tx: Transaction): Promise<Order> {
    const detail = await orders.findById(id, tx)
    if (!detail) throw notFound(id)
    return toOrder(detail)
  }

  /** The order locked for a change, if the caller may see it; else the same 404 as a missing one. */
  async function lockVisible(caller: Caller, id: string, tx: Transaction) {
    const row = await orders.findByIdForUpdate(id, tx)
    if (!row || !canSee(caller, row.createdBy)) throw notFound(id)
    return row
  }

  /**
   * Puts an order's units back on the shelf, locking the products in id order first;
   * answers the products it changed.
   */
  async function restock(orderId: string, tx: Transaction): Promise<string[]> {
    const items = await orders.itemsOf([orderId], tx)
    const productIds = items.map((item) => item.productId)
    await orders.lockProducts(productIds, tx)
    await orders.changeStock(
      items.map((item) => ({ productId: item.productId, delta: item.quantity })),
      tx,
    )
    return productIds
  }

  return {
    async create(
      caller: Caller,
      input: OrderCreate,
      actor: Actor,
      alsoInTransaction?: TransactionHook<Order>,
    ): Promise<Order> {
      // UUIDs may arrive in capitals; the database answers in lower case.
      const lines = input.items.map((item) => ({
        productId: item.product_id.toLowerCase(),
        quantity: item.quantity,
      }))
      checkLines(lines, maxTotalQuantity)

      const placed = await inTransaction(async (tx) => {
        const { customer, products: locked } = await orders.lockForOrder(
          input.customer_id.toLowerCase(),
          lines.map((line) => line.productId),
          tx,
        )
        const catalogue = new Map(locked.map((product) => [product.id, product]))
        const errors = productErrors(lines, catalogue)
        if (!customer?.isActive) {
          const message = customer ? 'is not active' : 'does not exist'
          errors.unshift({ path: 'body.customer_id', message })
        }
        if (!customer || errors.length > 0) throw new ValidationFailed(errors)

        const priced = lines.map((line) => {
          const product = catalogue.get(line.productId) as ProductRow // checked above
          const lineCents = toCents(product.price) * BigInt(line.quantity)
          return { ...line, product, lineCents }
        })
        const totalCents = priced.reduce((sum, line) => sum + line.lineCents, 0n)
        if (totalCents > MAX_TOTAL_CENTS) {
          throw new ValidationFailed([
            { path: 'body.items', message: `must total at most ${fromCents(MAX_TOTAL_CENTS)}` },
          ])
        }
        assertInStock(lines, catalogue)

        // Ids and times are chosen here, so the order is complete before it is written and
        // its one statement (stock, row, lines, audit) needs nothing read back.
        const now = new Date()
        const order: OrderRow = {
          id: randomUUID(),
          customerId: customer.id,
          createdBy: caller.userId,
          status: 'pending',
          total: fromCents(totalCents),
          notes: input.notes ?? null,
          createdAt: now,
          updatedAt: now,
        }
        const items: OrderItemRow[] = priced.map((line, position) => ({
          id: randomUUID(),
          orderId: order.id,
          productId: line.productId,
          productName: line.product.name,
          sku: line.product.sku,
          quantity: line.quantity,
          unitPrice: line.product.price,
          lineTotal: fromCents(line.lineCents),
          position,
        }))
        const created = toOrder({ order, customerName: customer.name, items })
        await orders.place(
          {
            stock: lines.map((line) => ({ productId: line.productId, delta: -line.quantity })),
            order,
            items,
            actor,
            audit: {
              action: 'create',
              resourceType: 'order',
              resourceId: created.id,
              changes: createdChanges(created, AUDITED_FIELDS),
            },
          },
          tx,
        )
        await onPlaced?.(tx, created)
        await alsoInTransaction?.(tx, created)
        return created
      })
      await productCache.changed(lines.map((line) => line.productId))
      return placed
    },

    async get(caller: Caller, id: string): Promise<Tagged<Order>> {
      const order = await cache.read(id, async () => {
        const detail = await orders.findById(id)
        return detail && toOrder(detail)
      })
      // On every answer, cached or not: the cache holds the order, not anyone's right to it.
      if (!order || !canSee(caller, order.value.created_by)) throw notFound(id)
      return order
    },

    async list(caller: Caller, query: OrderListQuery): Promise<OrderPage> {
      const errors: FieldError[] = []
      const createdFrom = query.created_from ? new Date(query.created_from) : undefined
      const createdTo = query.created_to ? new Date(query.created_to) : undefined
      // RFC 3339 admits a leap second (23:59:60) that Date cannot hold: it parses to NaN.
      for (const [name, date] of [
        ['created_from', createdFrom],
        ['created_to', createdTo],
      ] as const) {
        if (date && Number.isNaN(date.getTime()))
          errors.push({ path: `query.${name}`, message: 'is not a valid time' })
      }
      if (createdFrom && createdTo && createdFrom > createdTo) {
        errors.push({ path: 'query.created_from', message: 'must not be after created_to' })
      }
      if (
        query.min_total &&
        query.max_total &&
        toCents(query.min_total) > toCents(query.max_total)
      ) {
        errors.push({ path: 'query.min_total', message: 'must not exceed max_total' })
      }
      if (errors.length > 0) throw new ValidationFailed(errors)

      const { rows, total, totalIsEstimate } = await orders.list(
        {
          ownerId: ownerScope(caller),
          status: query.status,
          customerId: query.customer_id?.toLowerCase(),
          createdFrom,
          createdTo,
          minTotal: query.min_total,
          maxTotal: query.max_total,
          search: query.q,
          ...sortOf(query.sort, '-created_at'),
          ...pageOf(query),
        },
        exactCountMax,
      )
      return { ...toPage(rows.map(toOrder), total, query), total_is_estimate: totalIsEstimate }
    },

    async update(caller: Caller, id: string, changes: OrderUpdate, actor: Actor): Promise<Order> {
      const updated = await inTransaction(async (tx) => {
        await lockVisible(caller, id, tx)
        const before = await load(id, tx)
        await orders.update(id, { notes: changes.notes, updatedAt: new Date() }, tx)
        const after = await load(id, tx)
        await recordAudit(tx, actor, {
          action: 'update',
          resourceType: 'order',
          resourceId: after.id,
          changes: updatedChanges(before, after, AUDITED_FIELDS),
        })
        return after
      })
      await cache.changed([updated.id])
      return updated
    },

    async changeStatus(
      caller: Caller,
      id: string,
      { status: next }: OrderStatusChange,
      actor: Actor,
    ): Promise<Order> {
      let restocked: string[] = []
      const changed = await inTransaction(async (tx) => {
        // The row lock makes racing transitions queue: the second one sees the first's result.
        const row = await lockVisible(caller, id, tx)
        const allowed = NEXT_STATUSES[row.status]
        if (!allowed.includes(next)) {
          const options = allowed.length > 0 ? allowed.join(' or ') : 'nothing: it is final'
          throw new InvalidStatusTransition(
            `Order ${row.id} is ${row.status} and cannot become ${next}; it can become ${options}.`,
            { current_status: row.status, requested_status: next, allowed_next: allowed },
          )
        }
        if (next === 'cancelled') restocked = await restock(row.id, tx)
        await orders.update(row.id, { status: next, updatedAt: new Date() }, tx)
        await recordAudit(tx, actor, {
          action: 'status_change',
          resourceType: 'order',
          resourceId: row.id,
          changes: { status: { before: row.status, after: next } },
        })
        return load(row.id, tx)
      })
      await Promise.all([cache.changed([changed.id]), productCache.changed(restocked)])
      return changed
    },

    async remove(caller: Caller, id: string, actor: Actor): Promise<void> {
      const { orderId, restocked } = await inTransaction(async (tx) => {
        const row = await lockVisible(caller, id, tx)
        const order = await load(row.id, tx)
        const restocked = HOLDS_STOCK.has(row.status) ? await restock(row.id, tx) : []
        await orders.delete(row.id, tx)
        await recordAudit(tx, actor, {
          action: 'delete',
          resourceType: 'order',
          resourceId: row.id,
          changes: deletedChanges(order, AUDITED_FIELDS),
        })
        return { orderId: row.id, restocked }
      })
      await Promise.all([cache.changed([orderId]), productCache.changed(restocked)])
    },
  }
}

export type OrderService = ReturnType<typeof createOrderService>
