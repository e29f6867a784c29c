import type { ProductRow } from '../../db/schema/index.js'
import { isUniqueViolation, ValidationFailed } from '../../shared/errors.js'
import { type Page, pageOf, toPage } from '../../shared/schemas.js'
import { ProductNotFound, ProductSkuTaken } from './errors.js'
import type { ProductRepository, ProductSort } from './repository.js'
import type { Product, ProductCreate, ProductListQuery, ProductUpdate } from './schemas.js'

export interface ProductServiceDeps {
  products: ProductRepository
}

const SKU_CONSTRAINT = 'products_sku_key'

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

export function createProductService({ products }: ProductServiceDeps) {
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
    async create(input: ProductCreate): Promise<Product> {
      assertPositivePrice(input.price)
      const row = await withSkuConflict(input.sku, () =>
        products.insert({
          sku: input.sku,
          name: input.name,
          description: input.description ?? null,
          price: input.price,
          stock: input.stock ?? 0,
          isActive: input.is_active ?? true,
        }),
      )
      return toProduct(row)
    },

    async get(id: string): Promise<Product> {
      const row = await products.findById(id)
      if (!row) throw new ProductNotFound(`Product ${id} does not exist.`)
      return toProduct(row)
    },

    async list(query: ProductListQuery): Promise<Page<Product>> {
      if (query.min_price && query.max_price && Number(query.min_price) > Number(query.max_price)) {
        throw new ValidationFailed([
          { path: 'query.min_price', message: 'must not exceed max_price' },
        ])
      }
      const sort = query.sort ?? 'created_at'
      const { rows, total } = await products.list({
        isActive: query.is_active,
        minPrice: query.min_price,
        maxPrice: query.max_price,
        search: query.q,
        sort: sort.replace(/^-/, '') as ProductSort,
        descending: sort.startsWith('-'),
        ...pageOf(query),
      })
      return toPage(rows.map(toProduct), total, query)
    },

    async update(id: string, changes: ProductUpdate): Promise<Product> {
      assertPositivePrice(changes.price)
      const row = await withSkuConflict(changes.sku, () =>
        products.update(id, {
          sku: changes.sku,
          name: changes.name,
          description: changes.description,
          price: changes.price,
          stock: changes.stock,
          isActive: changes.is_active,
          updatedAt: new Date(),
        }),
      )
      if (!row) throw new ProductNotFound(`Product ${id} does not exist.`)
      return toProduct(row)
    },

    async remove(id: string): Promise<void> {
      if (!(await products.delete(id))) throw new ProductNotFound(`Product ${id} does not exist.`)
    },
  }
}

export type ProductService = ReturnType<typeof createProductService>
