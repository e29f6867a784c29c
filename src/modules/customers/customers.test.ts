import { and, eq, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import { auditEvents, customers, orders } from '../../db/schema/index.js'

let t: TestApp
let user: TestUser
let admin: TestUser
let asUser: ReturnType<typeof injectAs>
let asAdmin: ReturnType<typeof injectAs>
let asViewer: ReturnType<typeof injectAs>

beforeAll(async () => {
  t = await buildTestApp()
  user = await createTestUser(t, 'user')
  admin = await createTestUser(t, 'admin')
  asUser = injectAs(t, user)
  asAdmin = injectAs(t, admin)
  asViewer = injectAs(t, await createTestUser(t, 'viewer'))
})
afterAll(() => t.close())

const UNKNOWN_ID = '3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10'

interface Customer {
  id: string
  name: string
  email: string
  tier: string
  is_active: boolean
  created_at: string
  updated_at: string
}

const newEmail = () => `c-${unique().toLowerCase()}@example.com`

function newCustomer(overrides: Record<string, unknown> = {}) {
  return { name: 'Acme Corporation', email: newEmail(), ...overrides }
}

async function create(overrides: Record<string, unknown> = {}, as = asUser): Promise<Customer> {
  const response = await as({
    method: 'POST',
    url: '/v1/customers',
    payload: newCustomer(overrides),
  })
  expect(response.statusCode).toBe(201)
  return response.json()
}

async function fetchCustomer(id: string): Promise<Customer> {
  const response = await asViewer({ url: `/v1/customers/${id}` })
  expect(response.statusCode).toBe(200)
  return response.json()
}

const rowsWithEmail = (email: string) =>
  t.database.db
    .select()
    .from(customers)
    .where(sql`lower(${customers.email}) = ${email.toLowerCase()}`)

const rowOf = async (id: string) =>
  (await t.database.db.select().from(customers).where(eq(customers.id, id)))[0]

const eventsFor = (id: string) =>
  t.database.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.resourceType, 'customer'), eq(auditEvents.resourceId, id)))
    .orderBy(auditEvents.at, auditEvents.id)

async function placeOrderFor(customerId: string) {
  await t.database.db.insert(orders).values({ customerId, createdBy: user.id, total: '0.00' })
}

describe('POST /v1/customers', () => {
  it('creates a customer and answers 201 with Location and the stored representation', async () => {
    const email = `Billing.${unique()}@Example.COM`
    const response = await asUser({
      method: 'POST',
      url: '/v1/customers',
      payload: { name: 'Acme Corporation', email },
    })

    expect(response.statusCode).toBe(201)
    const customer = response.json()
    expect(response.headers.location).toBe(`/v1/customers/${customer.id}`)
    expect(customer).toMatchObject({ name: 'Acme Corporation', tier: 'free', is_active: true })
    expect(customer.email).toBe(email.toLowerCase())
    expect(new Date(customer.created_at).toISOString()).toBe(customer.created_at)
    expect(customer.updated_at).toBe(customer.created_at)
    expect(await fetchCustomer(customer.id)).toEqual(customer)
    expect((await rowOf(customer.id))?.email).toBe(customer.email)
  })

  it('takes tier and is_active when given', async () => {
    const customer = await create({ tier: 'enterprise', is_active: false })
    expect(customer).toMatchObject({ tier: 'enterprise', is_active: false })
  })

  it('accepts a name of exactly 100 characters', async () => {
    const customer = await create({ name: 'n'.repeat(100) })
    expect(customer.name).toHaveLength(100)
  })

  it('rejects a duplicate email in another case with 409 CUSTOMER_EMAIL_TAKEN and keeps the original', async () => {
    const original = await create()
    const response = await asUser({
      method: 'POST',
      url: '/v1/customers',
      payload: newCustomer({ email: original.email.toUpperCase(), name: 'Impostor' }),
    })

    expect(response.statusCode).toBe(409)
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
    expect(response.json()).toMatchObject({ status: 409, code: 'CUSTOMER_EMAIL_TAKEN' })
    expect(await fetchCustomer(original.id)).toEqual(original)
    const rows = await rowsWithEmail(original.email)
    expect(rows.map((row) => row.id)).toEqual([original.id])
    const creations = await t.database.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.resourceType, 'customer'),
          sql`${auditEvents.changes} -> 'email' ->> 'after' = ${original.email}`,
        ),
      )
    expect(creations.map((event) => event.resourceId)).toEqual([original.id])
  })

  it.each([
    ['an empty name', { name: '' }, 'body.name'],
    ['a name too long', { name: 'n'.repeat(101) }, 'body.name'],
    ['a numeric name', { name: 42 }, 'body.name'],
    ['an email without @', { email: 'not-an-email' }, 'body.email'],
    ['a null email', { email: null }, 'body.email'],
    ['an unknown tier', { tier: 'gold' }, 'body.tier'],
    ['a tier in capitals', { tier: 'PRO' }, 'body.tier'],
    ['is_active sent as a string', { is_active: 'true' }, 'body.is_active'],
    ['an unknown property', { phone: '555-0100' }, 'body.phone'],
    ['a client-chosen id', { id: UNKNOWN_ID }, 'body.id'],
    ['a created_at', { created_at: '2020-01-01T00:00:00Z' }, 'body.created_at'],
    ['an updated_at', { updated_at: '2020-01-01T00:00:00Z' }, 'body.updated_at'],
  ])('rejects %s with 422 naming the field, and stores nothing', async (_case, overrides, path) => {
    const email = newEmail()
    const response = await asUser({
      method: 'POST',
      url: '/v1/customers',
      payload: newCustomer({ email, ...overrides }),
    })

    expect(response.statusCode).toBe(422)
    const problem = response.json()
    expect(problem).toMatchObject({
      status: 422,
      code: 'VALIDATION_FAILED',
      instance: '/v1/customers',
    })
    expect(problem.errors.map((e: { path: string }) => e.path)).toContain(path)
    expect(await rowsWithEmail(email)).toEqual([])
  })

  it('reports every missing required field at once', async () => {
    const response = await asUser({ method: 'POST', url: '/v1/customers', payload: {} })
    expect(response.statusCode).toBe(422)
    const paths = response.json().errors.map((e: { path: string }) => e.path)
    expect(paths).toEqual(expect.arrayContaining(['body.name', 'body.email']))
  })
})

describe('GET /v1/customers/{id}', () => {
  it('answers 404 CUSTOMER_NOT_FOUND for an unknown id', async () => {
    const response = await asViewer({ url: `/v1/customers/${UNKNOWN_ID}` })
    expect(response.statusCode).toBe(404)
    expect(response.json()).toMatchObject({ code: 'CUSTOMER_NOT_FOUND', status: 404 })
  })

  it('answers 422 for an id that is not a UUID', async () => {
    const response = await asViewer({ url: '/v1/customers/42' })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors[0].path).toBe('params.id')
  })
})

describe('PATCH /v1/customers/{id}', () => {
  it('changes only the fields sent and moves updated_at', async () => {
    const customer = await create({ tier: 'free' })
    const response = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${customer.id}`,
      payload: { tier: 'pro', is_active: false },
    })

    expect(response.statusCode).toBe(200)
    const updated = response.json()
    expect(updated).toEqual({
      ...customer,
      tier: 'pro',
      is_active: false,
      updated_at: updated.updated_at,
    })
    expect(Date.parse(updated.updated_at)).toBeGreaterThan(Date.parse(customer.updated_at))
    expect(await rowOf(customer.id)).toMatchObject({ tier: 'pro', isActive: false })
  })

  it('stores a new email lower-cased, and lets a customer change the case of its own', async () => {
    const customer = await create()
    const fresh = newEmail()
    const changed = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${customer.id}`,
      payload: { email: fresh.toUpperCase() },
    })
    expect(changed.statusCode).toBe(200)
    expect(changed.json().email).toBe(fresh)

    const sameInCaps = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${customer.id}`,
      payload: { email: fresh.toUpperCase(), name: 'Renamed' },
    })
    expect(sameInCaps.statusCode).toBe(200)
    expect(sameInCaps.json()).toMatchObject({ email: fresh, name: 'Renamed' })
  })

  it.each([
    ['an empty body', {}, 'body'],
    ['an unknown field', { phone: '555-0100' }, 'body.phone'],
    ['an id', { id: UNKNOWN_ID }, 'body.id'],
    ['a created_at', { created_at: '2020-01-01T00:00:00Z' }, 'body.created_at'],
    ['an updated_at', { updated_at: '2020-01-01T00:00:00Z' }, 'body.updated_at'],
    ['a null name', { name: null }, 'body.name'],
    ['a name too long', { name: 'n'.repeat(101) }, 'body.name'],
    ['an invalid email', { email: 'nobody' }, 'body.email'],
    ['an unknown tier', { tier: 'platinum' }, 'body.tier'],
  ])('rejects %s with 422 naming the field, and changes nothing', async (_case, payload, path) => {
    const customer = await create()
    const response = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${customer.id}`,
      payload,
    })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path)
    expect(await fetchCustomer(customer.id)).toEqual(customer)
  })

  it('rejects taking another customer’s email, in any case, with 409 and changes nothing', async () => {
    const [first, second] = [await create(), await create()]
    const response = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${second.id}`,
      payload: { email: first.email.toUpperCase(), name: 'Changed' },
    })
    expect(response.statusCode).toBe(409)
    expect(response.json().code).toBe('CUSTOMER_EMAIL_TAKEN')
    expect(await fetchCustomer(second.id)).toEqual(second)
    expect(await fetchCustomer(first.id)).toEqual(first)
  })

  it('answers 404 CUSTOMER_NOT_FOUND for an unknown id', async () => {
    const response = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${UNKNOWN_ID}`,
      payload: { tier: 'pro' },
    })
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('CUSTOMER_NOT_FOUND')
  })
})

describe('DELETE /v1/customers/{id}', () => {
  it('deletes with 204, after which the customer is gone', async () => {
    const customer = await create()
    const response = await asUser({ method: 'DELETE', url: `/v1/customers/${customer.id}` })
    expect(response.statusCode).toBe(204)
    expect(response.body).toBe('')
    expect(await rowOf(customer.id)).toBeUndefined()
    expect((await asViewer({ url: `/v1/customers/${customer.id}` })).statusCode).toBe(404)
    const again = await asUser({ method: 'DELETE', url: `/v1/customers/${customer.id}` })
    expect(again.statusCode).toBe(404)
    expect(again.json().code).toBe('CUSTOMER_NOT_FOUND')
  })

  it('refuses a customer with orders with 409 CUSTOMER_HAS_ORDERS and keeps it', async () => {
    const customer = await create()
    await placeOrderFor(customer.id)

    const response = await asAdmin({ method: 'DELETE', url: `/v1/customers/${customer.id}` })
    expect(response.statusCode).toBe(409)
    expect(response.json()).toMatchObject({ status: 409, code: 'CUSTOMER_HAS_ORDERS' })
    expect(await fetchCustomer(customer.id)).toEqual(customer)

    // The way out the answer suggests: deactivating works.
    const deactivate = await asAdmin({
      method: 'PATCH',
      url: `/v1/customers/${customer.id}`,
      payload: { is_active: false },
    })
    expect(deactivate.statusCode).toBe(200)
    expect(deactivate.json().is_active).toBe(false)
  })
})

describe('GET /v1/customers', () => {
  // A tag in every email of this block; `q` scopes each query to these rows, so rows that
  // other test files create in a shared database never leak into the assertions.
  const tag = `lst${unique().toLowerCase()}`
  const rows = [
    { name: 'Alpha Foods', tier: 'free', is_active: true },
    { name: 'Bravo Tools', tier: 'pro', is_active: true },
    { name: 'Charlie Labs', tier: 'enterprise', is_active: false },
    { name: 'Delta Works', tier: 'pro', is_active: false },
    { name: 'Echo Media', tier: 'free', is_active: true },
  ]
  const allNames = rows.map((r) => r.name)

  beforeAll(async () => {
    for (const [i, row] of rows.entries())
      await create({ ...row, email: `${tag}-${i}@example.com` })
  })

  async function list(query: string) {
    const response = await asViewer({ url: `/v1/customers?q=${tag}&${query}` })
    expect(response.statusCode).toBe(200)
    return response.json()
  }
  const names = (page: { items: Customer[] }) => page.items.map((c) => c.name)

  it('pages with page and page_size and reports the totals', async () => {
    const first = await list('page_size=2&sort=name')
    expect(first).toMatchObject({ page: 1, page_size: 2, total: 5, total_pages: 3 })
    expect(names(first)).toEqual(['Alpha Foods', 'Bravo Tools'])
    expect(names(await list('page_size=2&page=2&sort=name'))).toEqual([
      'Charlie Labs',
      'Delta Works',
    ])
    expect(names(await list('page_size=2&page=3&sort=name'))).toEqual(['Echo Media'])
  })

  it('answers an empty page beyond the last one, with the real total', async () => {
    const beyond = await list('page=9&page_size=2')
    expect(beyond).toMatchObject({ items: [], page: 9, total: 5, total_pages: 3 })
  })

  it('defaults to page 1 of 20, oldest first', async () => {
    const page = await list('')
    expect(page).toMatchObject({ page: 1, page_size: 20, total: 5, total_pages: 1 })
    expect(names(page)).toEqual(allNames)
  })

  it.each([
    ['free', ['Alpha Foods', 'Echo Media']],
    ['pro', ['Bravo Tools', 'Delta Works']],
    ['enterprise', ['Charlie Labs']],
  ])('filters by tier=%s', async (tier, expected) => {
    const page = await list(`tier=${tier}&sort=name`)
    expect(names(page)).toEqual(expected)
    expect(page.total).toBe(expected.length)
  })

  it('filters by is_active, alone and combined with tier', async () => {
    expect(names(await list('is_active=false&sort=name'))).toEqual(['Charlie Labs', 'Delta Works'])
    expect(names(await list('is_active=true&sort=name'))).toEqual([
      'Alpha Foods',
      'Bravo Tools',
      'Echo Media',
    ])
    expect(names(await list('is_active=true&tier=pro'))).toEqual(['Bravo Tools'])
  })

  it('sorts by name ascending and descending', async () => {
    expect(names(await list('sort=name'))).toEqual([...allNames].sort())
    expect(names(await list('sort=-name'))).toEqual([...allNames].sort().reverse())
  })

  it('sorts by created_at ascending and descending', async () => {
    expect(names(await list('sort=created_at'))).toEqual(allNames)
    expect(names(await list('sort=-created_at'))).toEqual([...allNames].reverse())
  })

  it('searches name and email case-insensitively', async () => {
    const word = `w${unique().toLowerCase()}`
    const byName = await create({ name: `Zulu ${word.toUpperCase()} Ltd` })
    const byEmail = await create({ name: 'Yankee Ltd', email: `${word}@example.com` })
    await create({ name: 'Xray Ltd' })

    const response = await asViewer({ url: `/v1/customers?q=${word.toUpperCase()}&sort=name` })
    expect(response.json().items.map((c: Customer) => c.id)).toEqual([byEmail.id, byName.id])
    expect(response.json().total).toBe(2)
  })

  it('treats % and _ in q as literal characters', async () => {
    const wildcard = await asViewer({ url: `/v1/customers?q=${encodeURIComponent(`${tag}%`)}` })
    expect(wildcard.json().total).toBe(0)
    const single = await asViewer({ url: `/v1/customers?q=${encodeURIComponent(`${tag}_0`)}` })
    expect(single.json().total).toBe(0)
  })

  it.each([
    ['page_size=0', 'query.page_size'],
    ['page_size=101', 'query.page_size'],
    ['page=0', 'query.page'],
    ['page=abc', 'query.page'],
    ['tier=gold', 'query.tier'],
    ['is_active=maybe', 'query.is_active'],
    ['sort=email', 'query.sort'],
    ['sort=tier', 'query.sort'],
    ['q=', 'query.q'],
    ['pagesize=5', 'query.pagesize'],
  ])('rejects %s with 422 naming the parameter', async (query, path) => {
    const response = await asViewer({ url: `/v1/customers?${query}` })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path)
  })
})

describe('GET /v1/customers tie-breaks', () => {
  // Rows with equal sort values, inserted directly so created_at is equal too.
  const tag = `tie${unique().toLowerCase()}`
  const createdAt = new Date('2025-06-01T00:00:00.000Z')
  let ids: string[] = []

  beforeAll(async () => {
    const inserted = await t.database.db
      .insert(customers)
      .values(
        [0, 1, 2, 3].map((i) => ({
          name: 'Same Name',
          email: `${tag}-${i}@example.com`,
          createdAt,
          updatedAt: createdAt,
        })),
      )
      .returning({ id: customers.id })
    ids = inserted.map((row) => row.id).sort()
  })

  async function idsOf(query: string) {
    const response = await asViewer({ url: `/v1/customers?q=${tag}&${query}` })
    expect(response.statusCode).toBe(200)
    return response.json().items.map((c: Customer) => c.id)
  }

  it.each(['name', 'created_at'])(
    'breaks ties in %s by id, in the sort direction',
    async (field) => {
      expect(await idsOf(`sort=${field}`)).toEqual(ids)
      expect(await idsOf(`sort=-${field}`)).toEqual([...ids].reverse())
    },
  )

  it('pages through tied rows without repeating or skipping one', async () => {
    const seen: string[] = []
    for (const page of [1, 2, 3, 4])
      seen.push(...(await idsOf(`sort=name&page_size=1&page=${page}`)))
    expect(seen).toEqual(ids)
  })
})

describe('roles', () => {
  it('lets a viewer read customers but not create, change or delete them', async () => {
    const customer = await create()
    expect(await fetchCustomer(customer.id)).toEqual(customer)
    const listed = await asViewer({ url: `/v1/customers?q=${encodeURIComponent(customer.email)}` })
    expect(listed.json().items).toEqual([customer])

    const email = newEmail()
    const attempts = [
      { method: 'POST' as const, url: '/v1/customers', payload: newCustomer({ email }) },
      { method: 'PATCH' as const, url: `/v1/customers/${customer.id}`, payload: { tier: 'pro' } },
      { method: 'DELETE' as const, url: `/v1/customers/${customer.id}` },
    ]
    for (const attempt of attempts) {
      const response = await asViewer(attempt)
      expect(response.statusCode, attempt.method).toBe(403)
      expect(response.json().code).toBe('FORBIDDEN')
    }
    expect(await rowsWithEmail(email)).toEqual([])
    expect(await fetchCustomer(customer.id)).toEqual(customer)
    expect((await eventsFor(customer.id)).map((event) => event.action)).toEqual(['create'])
  })

  it('lets a user create, change and delete customers', async () => {
    const customer = await create({}, asUser)
    const patch = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${customer.id}`,
      payload: { name: 'By a user' },
    })
    expect(patch.statusCode).toBe(200)
    const removal = await asUser({ method: 'DELETE', url: `/v1/customers/${customer.id}` })
    expect(removal.statusCode).toBe(204)
  })
})

describe('audit events for customers', () => {
  it('records create, update and delete with the actor and the changes', async () => {
    const customer = await create({ name: 'Audited Ltd', tier: 'free' }, asUser)
    const update = await asAdmin({
      method: 'PATCH',
      url: `/v1/customers/${customer.id}`,
      payload: { tier: 'pro', name: 'Audited Ltd' },
      headers: { 'x-request-id': `req-${unique()}` },
    })
    expect(update.statusCode).toBe(200)
    expect(
      (await asUser({ method: 'DELETE', url: `/v1/customers/${customer.id}` })).statusCode,
    ).toBe(204)

    const events = await eventsFor(customer.id)
    expect(events.map((event) => event.action)).toEqual(['create', 'update', 'delete'])
    expect(events.map((event) => event.actorUserId)).toEqual([user.id, admin.id, user.id])
    expect(events[0]?.changes).toEqual({
      name: { after: 'Audited Ltd' },
      email: { after: customer.email },
      tier: { after: 'free' },
      is_active: { after: true },
    })
    // Only what changed: the name sent unchanged is not recorded.
    expect(events[1]?.changes).toEqual({ tier: { before: 'free', after: 'pro' } })
    expect(events[1]?.requestId).toBe(update.headers['x-request-id'])
    expect(events[2]?.changes).toEqual({
      name: { before: 'Audited Ltd' },
      email: { before: customer.email },
      tier: { before: 'pro' },
      is_active: { before: true },
    })
  })

  it('writes no event for an update that changes no value', async () => {
    const customer = await create({ tier: 'pro' })
    const response = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${customer.id}`,
      payload: { tier: 'pro', email: customer.email.toUpperCase() },
    })
    expect(response.statusCode).toBe(200)
    expect((await eventsFor(customer.id)).map((event) => event.action)).toEqual(['create'])
  })

  it('writes no event for a change that is rejected and rolls back', async () => {
    const [first, second] = [await create(), await create()]
    const conflict = await asUser({
      method: 'PATCH',
      url: `/v1/customers/${second.id}`,
      payload: { email: first.email, tier: 'enterprise' },
    })
    expect(conflict.statusCode).toBe(409)

    await placeOrderFor(first.id)
    const refused = await asUser({ method: 'DELETE', url: `/v1/customers/${first.id}` })
    expect(refused.statusCode).toBe(409)

    expect((await eventsFor(second.id)).map((event) => event.action)).toEqual(['create'])
    expect((await eventsFor(first.id)).map((event) => event.action)).toEqual(['create'])
  })
})
