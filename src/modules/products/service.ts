import type { InTransaction, TransactionHook } from '../../db/client.js'
import type { ProductRow } from '../../db/schema/index.js'
import type { ResourceCache, Tagged } from '../../platform/read-cache.js'
import { isForeignKeyViolation, isUniqueViolation, ValidationFailed } from '../../shared/errors.js'
import { type Page, pageOf, sortOf, toPage } from '../../shared/schemas.js'
import type { Actor } from '../audit/actor.js'
import { createdChanges, deletedChanges, updatedChanges } from '../audit/changes.js'
import { recordAudit } from '../audit/log.js'
import { ProductInUse, ProductNotFound, ProductSkuTaken } from './errors.js'
import type { ProductRepository } from './repository.js'
import type { Product, ProductCreate, ProductListQuery, ProductUpdate } from './schemas.js'

export interface ProductServiceDeps {
  products: ProductRepository
  inTransaction: InTransaction
  /** Single-product reads; told of every change after it commits. */
  cache: ResourceCache<Product>
}

const SKU_CONSTRAINT = 'products_sku_key'
const ORDERED_CONSTRAINT = 'order_items_product_id_fkey'
/** What the audit log records of a product: every field but the timestamps. */
const AUDITED_FIELDS = ['sku', 'name', 'description', 'price', 'stock', 'is_active'] as const

export function toProduct(row: ProductRow): Product {
  return {
    id: row.id,
    sku: row.sku,
    name: row.name,
    description: row.description,
    price: row.price,
    stock: row.stock,
    is_active: row.isActive,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  }
}

/** The schema admits "0.00"; a price must also be above zero. */
function assertPositivePrice(price: string | undefined) {
  if (price !== undefined && !/[1-9]/.test(price)) {
    throw new ValidationFailed([{ path: 'body.price', message: 'must be greater than 0' }])
  }
}

export function createProductService({ products, inTransaction, cache }: ProductServiceDeps) {
  async function withSkuConflict<T>(sku: string | undefined, write: () => Promise<T>): Promise<T> {
    try {
      return await write()
    } catch (error) {
      if (isUniqueViolation(error, SKU_CONSTRAINT)) {
        throw new ProductSkuTaken(`A product with sku ${sku} already exists.`)
      }
      throw error
    }
  }

  return {
    async create(
      input: ProductCreate,
      actor: Actor,
      alsoInTransaction?: TransactionHook<Product>,
    ): Promise<Product> {
      assertPositivePrice(input.price)
      return withSkuConflict(input.sku, () =>
        inTransaction(async (tx) => {
          const product = toProduct(
            await products.insert(
              {
                sku: input.sku,
                name: input.name,
                description: input.description ?? null,
                price: input.price,
                stock: input.stock ?? 0,
                isActive: input.is_active ?? true,
              },
              tx,
            ),
          )
          await recordAudit(tx, actor, {
            action: 'create',
            resourceType: 'product',
            resourceId: product.id,
            changes: createdChanges(product, AUDITED_FIELDS),
          })
          await alsoInTransaction?.(tx, product)
          return product
        }),
      )
    },

    async get(id: string): Promise<Tagged<Product>> {
      const product = await cache.read(id, async () => {
        const row = await products.findById(id)
        return row && toProduct(row)
      })
      if (!product) throw new ProductNotFound(`Product ${id} does not exist.`)
      return product
    },

    async list(query: ProductListQuery): Promise<Page<Product>> {
      if (query.min_price && query.max_price && Number(query.min_price) > Number(query.max_price)) {
        throw new ValidationFailed([
          { path: 'query.min_price', message: 'must not exceed max_price' },
        ])
      }
      const { rows, total } = await products.list({
        isActive: query.is_active,
        minPrice: query.min_price,
        maxPrice: query.max_price,
        search: query.q,
        ...sortOf(query.sort, 'created_at'),
        ...pageOf(query),
      })
      return toPage(rows.map(toProduct), total, query)
    },

    async update(id: string, changes: ProductUpdate, actor: Actor): Promise<Product> {
      assertPositivePrice(changes.price)
      const updated = await withSkuConflict(changes.sku, () =>
        inTransaction(async (tx) => {
          const current = await products.findByIdForUpdate(id, tx)
          if (!current) throw new ProductNotFound(`Product ${id} does not exist.`)
          const row = await products.update(
            id,
            {
              sku: changes.sku,
              name: changes.name,
              description: changes.description,
              price: changes.price,
              stock: changes.stock,
              isActive: changes.is_active,
              updatedAt: new Date(),
            },
            tx,
          )
          if (!row) throw new ProductNotFound(`Product ${id} does not exist.`)
          const [before, after] = [toProduct(current), toProduct(row)]
          await recordAudit(tx, actor, {
            action: 'update',
            resourceType: 'product',
            resourceId: id,
            changes: updatedChanges(before, after, AUDITED_FIELDS),
          })
          return after
        }),
      )
      await cache.changed([id])
      return updated
    },

    async remove(id: string, actor: Actor): Promise<void> {
      try {
        await inTransaction(async (tx) => {
          const row = await products.delete(id, tx)
          if (!row) throw new ProductNotFound(`Product ${id} does not exist.`)
          await recordAudit(tx, actor, {
            action: 'delete',
            resourceType: 'product',
            resourceId: id,
            changes: deletedChanges(toProduct(row), AUDITED_FIELDS),
          })
        })
      } catch (error) {
        if (isForeignKeyViolation(error, ORDERED_CONSTRAINT)) {
          throw new ProductInUse(
            `Product ${id} appears in orders and cannot be deleted; set is_active to false instead.`,
          )
        }
        throw error
      }
      await cache.changed([id])
    },
  }
}

export type ProductService = ReturnType<typeof createProductService>
