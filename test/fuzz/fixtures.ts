import { type TestApp, unique } from '../helpers.js'
import type { Callers } from './callers.js'
import type { Operation } from './operations.js'
import type { Pools } from './requests.js'

/** An id that exists nowhere, so a valid request can also meet a 404. */
const ABSENT_ID = '00000000-0000-4000-8000-000000000000'

/**
 * Rows made through the API before fuzzing, so that valid requests name things that exist:
 * path parameters by the collection they belong to, body fields by name.
 */
export async function createPools(t: TestApp, callers: Callers): Promise<Pools> {
  const { admin, user, viewer } = callers.users
  const create = async (url: string, as: { headers: Record<string, string> }, payload: object) => {
    const response = await t.app.inject({ method: 'POST', url, headers: as.headers, payload })
    if (response.statusCode !== 201)
      throw new Error(`${url}: ${response.statusCode} ${response.body}`)
    return (response.json() as { id: string }).id
  }
  const product = () =>
    create('/v1/products', admin, {
      sku: `FUZZ-${unique()}`,
      name: 'Fuzz lamp',
      price: '9.90',
      stock: 1000,
    })
  const customer = (as: { headers: Record<string, string> }) =>
    create('/v1/customers', as, {
      name: `Fuzz ${unique()}`,
      email: `fuzz-${unique().toLowerCase()}@example.com`,
    })
  const products = [await product(), await product(), await product()]
  const customers = [await customer(admin), await customer(user), await customer(user)]
  const order = (as: { headers: Record<string, string> }, customerId: string) =>
    create('/v1/orders', as, {
      customer_id: customerId,
      items: [{ product_id: products[0], quantity: 1 }],
    })
  const orders = [
    await order(admin, customers[0] as string),
    await order(user, customers[1] as string),
    await order(user, customers[2] as string),
  ]
  // Not the callers: an admin's valid PATCH or DELETE on them would end their sessions.
  const targetUser = () =>
    create('/v1/users', admin, {
      email: `fuzz-target-${unique().toLowerCase()}@example.com`,
      password: 'a long enough secret',
      full_name: 'Fuzz target',
      role: 'viewer',
    })
  const targetUsers = [await targetUser(), await targetUser()]
  const apiKeys = [
    await create('/v1/api-keys', user, { name: 'fuzz target' }),
    await create('/v1/api-keys', viewer, { name: 'fuzz target' }),
    await create('/v1/api-keys', admin, { name: 'fuzz target' }),
  ]
  const byCollection: Record<string, string[]> = {
    users: targetUsers,
    'api-keys': apiKeys,
    products,
    customers,
    orders,
  }
  // Rows that orders are placed with, apart from those the path parameters name, which
  // fuzzed PATCH and DELETE requests deactivate or remove.
  const orderable = {
    products: [await product(), await product()],
    customers: [await customer(admin), await customer(user)],
  }
  const ids = (list: string[]) => [...list, ABSENT_ID]
  return {
    pathParameter(operation: Operation, name: string) {
      if (name === 'name') return ['iris', 'car-price']
      if (name === 'version') return ['1.0.0']
      if (name === 'provider') return ['test', 'absent']
      const collection = operation.path.split('/')[2] ?? ''
      return ids(byCollection[collection] ?? [])
    },
    fields: {
      customer_id: orderable.customers,
      product_id: orderable.products,
      actor: [admin.id, user.id],
      username: [callers.spare.email, 'nobody@example.com'],
      password: [callers.spare.password, 'a long enough secret'],
      refresh_token: [callers.spare.refreshToken],
      grant_type: ['password', 'refresh_token'],
      token: [callers.spare.refreshToken, 'not-a-token'],
      version: ['1.0.0'],
      redirect_uri: ['http://orderflow.test/console/signed-in', 'https://elsewhere.example/'],
      post_logout_redirect_uri: ['http://orderflow.test/console/signed-in'],
      features: [
        [5.1, 3.5, 1.4, 0.2],
        [6.7, 3.0, 5.2, 2.3],
      ],
    },
  }
}
