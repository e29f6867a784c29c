import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  unique,
} from '../../../test/helpers.js'

let t: TestApp
let inject: ReturnType<typeof injectAs>

beforeAll(async () => {
  t = await buildTestApp()
  inject = injectAs(t, await createTestUser(t, 'admin'))
})
afterAll(() => t.close())

function newProduct(overrides: Record<string, unknown> = {}) {
  return {
    sku: `SKU-${unique()}`,
    name: 'Mechanical keyboard',
    price: '89.90',
    stock: 25,
    ...overrides,
  }
}

async function create(overrides: Record<string, unknown> = {}) {
  const response = await inject({
    method: 'POST',
    url: '/v1/products',
    payload: newProduct(overrides),
  })
  expect(response.statusCode).toBe(201)
  return response.json()
}

async function fetchProduct(id: string) {
  return (await inject({ method: 'GET', url: `/v1/products/${id}` })).json()
}

describe('POST /v1/products', () => {
  it('creates a product and answers 201 with Location and the stored representation', async () => {
    const payload = newProduct({ description: 'Brown switches', price: '19.9' })
    const response = await inject({ method: 'POST', url: '/v1/products', payload })

    expect(response.statusCode).toBe(201)
    const product = response.json()
    expect(response.headers.location).toBe(`/v1/products/${product.id}`)
    expect(product).toMatchObject({
      sku: payload.sku,
      name: 'Mechanical keyboard',
      description: 'Brown switches',
      price: '19.90',
      stock: 25,
      is_active: true,
    })
    expect(new Date(product.created_at).toISOString()).toBe(product.created_at)
    expect(await fetchProduct(product.id)).toEqual(product)
  })

  it('keeps prices exact to the cent', async () => {
    const product = await create({ price: '0.10' })
    expect(product.price).toBe('0.10')
    const big = await create({ price: '9999999999.99' })
    expect(big.price).toBe('9999999999.99')
  })

  it('defaults stock to 0 and is_active to true', async () => {
    const product = await create({ stock: undefined })
    expect(product.stock).toBe(0)
    expect(product.is_active).toBe(true)
  })

  it('rejects a duplicate sku with 409 PRODUCT_SKU_TAKEN and keeps the original', async () => {
    const original = await create()
    const response = await inject({
      method: 'POST',
      url: '/v1/products',
      payload: newProduct({ sku: original.sku, name: 'Impostor' }),
    })

    expect(response.statusCode).toBe(409)
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
    expect(response.json()).toMatchObject({ status: 409, code: 'PRODUCT_SKU_TAKEN' })
    expect(await fetchProduct(original.id)).toEqual(original)
  })

  it.each([
    ['a sku too short', { sku: 'AB' }, 'body.sku'],
    ['a sku too long', { sku: 'A'.repeat(65) }, 'body.sku'],
    ['a lowercase sku', { sku: 'abc-1' }, 'body.sku'],
    ['an empty name', { name: '' }, 'body.name'],
    ['a name too long', { name: 'n'.repeat(201) }, 'body.name'],
    ['a description too long', { description: 'd'.repeat(2001) }, 'body.description'],
    ['a numeric price', { price: 19.99 }, 'body.price'],
    ['a price with 3 decimals', { price: '1.999' }, 'body.price'],
    ['a zero price', { price: '0.00' }, 'body.price'],
    ['a negative price', { price: '-1.00' }, 'body.price'],
    ['a negative stock', { stock: -1 }, 'body.stock'],
    ['a fractional stock', { stock: 1.5 }, 'body.stock'],
    ['a stock sent as a string', { stock: '3' }, 'body.stock'],
    ['is_active sent as a string', { is_active: 'true' }, 'body.is_active'],
    ['an unknown property', { colour: 'red' }, 'body.colour'],
    ['a server-owned field', { id: '3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10' }, 'body.id'],
  ])('rejects %s with 422 naming the field, and stores nothing', async (_case, overrides, path) => {
    const payload = newProduct(overrides)
    const response = await inject({ method: 'POST', url: '/v1/products', payload })

    expect(response.statusCode).toBe(422)
    const problem = response.json()
    expect(problem).toMatchObject({
      status: 422,
      code: 'VALIDATION_FAILED',
      instance: '/v1/products',
    })
    expect(problem.errors.map((e: { path: string }) => e.path)).toContain(path)
    // Short skus such as "AB" also match other products' random skus: compare exactly.
    const search = await inject({
      url: `/v1/products?page_size=100&q=${encodeURIComponent(String(payload.sku))}`,
    })
    const skus = search.json().items.map((product: { sku: string }) => product.sku)
    expect(skus).not.toContain(payload.sku)
  })

  it('reports every missing required field at once', async () => {
    const response = await inject({ method: 'POST', url: '/v1/products', payload: {} })
    expect(response.statusCode).toBe(422)
    const paths = response.json().errors.map((e: { path: string }) => e.path)
    expect(paths).toEqual(expect.arrayContaining(['body.sku', 'body.name', 'body.price']))
  })
})

describe('GET /v1/products/{id}', () => {
  it('answers 404 PRODUCT_NOT_FOUND for an unknown id', async () => {
    const response = await inject({
      url: '/v1/products/3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10',
    })
    expect(response.statusCode).toBe(404)
    expect(response.json()).toMatchObject({ code: 'PRODUCT_NOT_FOUND', status: 404 })
  })

  it.each([
    ['42'],
    // Accepted by the uuid format, refused by PostgreSQL's uuid type: must not reach it.
    ['urn:uuid:3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10'],
  ])('answers 422 for the id %s, which is not a plain UUID', async (id) => {
    const response = await inject({ url: `/v1/products/${encodeURIComponent(id)}` })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors[0].path).toBe('params.id')
  })
})

describe('PATCH /v1/products/{id}', () => {
  it('changes only the fields sent and moves updated_at', async () => {
    const product = await create()
    const response = await inject({
      method: 'PATCH',
      url: `/v1/products/${product.id}`,
      payload: { price: '79.90', stock: 40 },
    })

    expect(response.statusCode).toBe(200)
    const updated = response.json()
    expect(updated).toMatchObject({
      ...product,
      price: '79.90',
      stock: 40,
      updated_at: updated.updated_at,
    })
    expect(Date.parse(updated.updated_at)).toBeGreaterThanOrEqual(Date.parse(product.updated_at))
  })

  it('clears the description with null', async () => {
    const product = await create({ description: 'temporary' })
    const response = await inject({
      method: 'PATCH',
      url: `/v1/products/${product.id}`,
      payload: { description: null },
    })
    expect(response.json().description).toBeNull()
  })

  it.each([
    ['an empty body', {}],
    ['an unknown field', { colour: 'red' }],
    ['a read-only field', { created_at: '2020-01-01T00:00:00Z' }],
    ['a null name', { name: null }],
    ['a zero price', { price: '0' }],
  ])('rejects %s with 422 and changes nothing', async (_case, payload) => {
    const product = await create()
    const response = await inject({
      method: 'PATCH',
      url: `/v1/products/${product.id}`,
      payload,
    })
    expect(response.statusCode).toBe(422)
    expect(await fetchProduct(product.id)).toEqual(product)
  })

  it('rejects taking another product’s sku with 409 and changes nothing', async () => {
    const [first, second] = [await create(), await create()]
    const response = await inject({
      method: 'PATCH',
      url: `/v1/products/${second.id}`,
      payload: { sku: first.sku },
    })
    expect(response.statusCode).toBe(409)
    expect(await fetchProduct(second.id)).toEqual(second)
  })

  it('answers 404 for an unknown id', async () => {
    const response = await inject({
      method: 'PATCH',
      url: '/v1/products/3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10',
      payload: { stock: 1 },
    })
    expect(response.statusCode).toBe(404)
  })
})

describe('DELETE /v1/products/{id}', () => {
  it('deletes with 204, after which the product is gone', async () => {
    const product = await create()
    const response = await inject({ method: 'DELETE', url: `/v1/products/${product.id}` })
    expect(response.statusCode).toBe(204)
    expect(response.body).toBe('')
    expect((await inject({ url: `/v1/products/${product.id}` })).statusCode).toBe(404)
    expect((await inject({ method: 'DELETE', url: `/v1/products/${product.id}` })).statusCode).toBe(
      404,
    )
  })
})

describe('GET /v1/products', () => {
  // A tag shared by this block's rows; `q` scopes every query to them, so rows that other
  // test files create in a shared database never leak into the assertions.
  const tag = `LST-${unique()}`
  const rows = [
    { name: 'Alpha lamp', price: '30.00', is_active: true },
    { name: 'Bravo desk', price: '250.00', is_active: true },
    { name: 'Charlie chair', price: '120.50', is_active: false },
    { name: 'Delta lamp', price: '15.25', is_active: true },
    { name: 'Echo shelf', price: '120.50', is_active: true },
  ]

  beforeAll(async () => {
    for (const [i, row] of rows.entries()) await create({ ...row, sku: `${tag}-${i}` })
  })

  async function list(query: string) {
    const response = await inject({ url: `/v1/products?q=${tag}&${query}` })
    expect(response.statusCode).toBe(200)
    return response.json()
  }
  const names = (page: { items: { name: string }[] }) => page.items.map((p) => p.name)

  it('pages with page and page_size and reports the totals', async () => {
    const first = await list('page_size=2&sort=name')
    expect(first).toMatchObject({ page: 1, page_size: 2, total: 5, total_pages: 3 })
    expect(names(first)).toEqual(['Alpha lamp', 'Bravo desk'])
    const last = await list('page_size=2&page=3&sort=name')
    expect(names(last)).toEqual(['Echo shelf'])
  })

  it('answers an empty page beyond the last one, with the real total', async () => {
    const beyond = await list('page=9&page_size=2')
    expect(beyond).toMatchObject({ items: [], page: 9, total: 5, total_pages: 3 })
  })

  it.each([
    'page_size=0',
    'page_size=101',
    'page=0',
    'page=abc',
    'sort=stock',
    'is_active=maybe',
    'min_price=1.234',
    'limit=5',
  ])('rejects %s with 422', async (query) => {
    const response = await inject({ url: `/v1/products?${query}` })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors[0].path).toMatch(/^query\./)
  })

  it('rejects min_price above max_price with 422', async () => {
    const response = await inject({ url: '/v1/products?min_price=10&max_price=9.99' })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'query.min_price', message: 'must not exceed max_price' },
    ])
  })

  it('sorts by price descending with a stable tie-break', async () => {
    const page = await list('sort=-price')
    expect(page.items.map((p: { price: string }) => p.price)).toEqual([
      '250.00',
      '120.50',
      '120.50',
      '30.00',
      '15.25',
    ])
  })

  it('sorts by name ascending and descending', async () => {
    expect(names(await list('sort=name'))).toEqual(rows.map((r) => r.name).sort())
    expect(names(await list('sort=-name'))).toEqual(
      rows
        .map((r) => r.name)
        .sort()
        .reverse(),
    )
  })

  it('sorts by created_at, newest last by default', async () => {
    expect(names(await list(''))).toEqual(rows.map((r) => r.name))
    expect(names(await list('sort=-created_at'))).toEqual(rows.map((r) => r.name).reverse())
  })

  it('filters by is_active', async () => {
    expect(names(await list('is_active=false'))).toEqual(['Charlie chair'])
    expect((await list('is_active=true')).total).toBe(4)
  })

  it('filters by an inclusive price range combined with activity and sort', async () => {
    const page = await list('min_price=30&max_price=120.50&is_active=true&sort=price')
    expect(names(page)).toEqual(['Alpha lamp', 'Echo shelf'])
  })

  it('searches name case-insensitively within the tag', async () => {
    const response = await inject({
      url: `/v1/products?q=LAMP&min_price=0.01&sort=name&page_size=100`,
    })
    const found = names(response.json())
    expect(found).toEqual(expect.arrayContaining(['Alpha lamp', 'Delta lamp']))
    expect(found).not.toContain('Bravo desk')
  })

  it('treats % and _ in q as literal characters', async () => {
    const response = await inject({ url: `/v1/products?q=${encodeURIComponent(`${tag}%`)}` })
    expect(response.json().total).toBe(0)
  })
})
