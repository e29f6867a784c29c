import type { AddressInfo } from 'node:net'
import { eq, sql } from 'drizzle-orm'
import { SMTPServer } from 'smtp-server'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { insertProduct } from '../../../test/catalog.js'
import { createTestUser, injectAs, type TestUser, unique } from '../../../test/helpers.js'
import { buildJobsTestApp, countRows, eventually, type JobsTestApp } from '../../../test/jobs.js'
import { customers, emailDeliveries, jobs } from '../../db/schema/index.js'
import { createEmailHandler, createSmtpMailer, enqueueEmail } from './email.js'

interface Received {
  to: string[]
  messageId: string
  raw: string
}

/** A real SMTP server on a free port, refusing the next `refuse` messages with 451. */
async function startSmtp() {
  const received: Received[] = []
  const state = { refuse: 0 }
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      let raw = ''
      stream.on('data', (chunk: Buffer) => {
        raw += chunk.toString('utf8')
      })
      stream.on('end', () => {
        if (state.refuse > 0) {
          state.refuse--
          return callback(Object.assign(new Error('try again later'), { responseCode: 451 }))
        }
        received.push({
          to: session.envelope.rcptTo.map((r) => r.address),
          messageId: /^Message-ID: (.+)$/im.exec(raw)?.[1]?.trim() ?? '',
          raw,
        })
        callback()
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.server.address() as AddressInfo).port
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    state,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

describe('email jobs', () => {
  let smtp: Awaited<ReturnType<typeof startSmtp>>
  let t: JobsTestApp
  let alice: TestUser

  beforeAll(async () => {
    smtp = await startSmtp()
    t = await buildJobsTestApp({ SMTP_URL: smtp.url, REGISTRATION_ENABLED: 'true' })
    alice = await createTestUser(t)
  })
  afterAll(async () => {
    await t?.close()
    await smtp?.close()
  })
  beforeEach(() => {
    smtp.state.refuse = 0
  })

  const emailJobOf = async (eventKey: string) => {
    const [row] = await t.database.db
      .select()
      .from(jobs)
      .where(eq(jobs.dedupeKey, `email:${eventKey}`))
    return row
  }
  const sentTo = (address: string) => smtp.received.filter((m) => m.to.includes(address))

  async function placeOrder(quantity = 1) {
    const [customer] = await t.database.db
      .insert(customers)
      .values({ name: `Customer ${unique()}`, email: `customer-${unique().toLowerCase()}@example.com` })
      .returning()
    const product = await insertProduct(t, { stock: 5 })
    const response = await injectAs(t, alice)({
      method: 'POST',
      url: '/v1/orders',
      payload: { customer_id: customer?.id, items: [{ product_id: product.id, quantity }] },
    })
    return { response, customer: customer as typeof customers.$inferSelect }
  }

  it('when an order is placed, then its customer gets one confirmation email through SMTP', async () => {
    const { response, customer } = await placeOrder()
    expect(response.statusCode).toBe(201)
    const order = response.json()
    const job = await emailJobOf(`order_confirmation:${order.id}`)
    expect(job).toMatchObject({ type: 'email', ownerId: alice.id })
    await eventually(async () => sentTo(customer.email).length === 1, 20_000, 'the email')
    const [message] = sentTo(customer.email)
    expect(message?.raw).toContain(order.id)
    // Recorded just after the SMTP server accepted it.
    const delivery = await eventually(async () => {
      const [row] = await t.database.db
        .select()
        .from(emailDeliveries)
        .where(eq(emailDeliveries.eventKey, `order_confirmation:${order.id}`))
      return row
    })
    expect(delivery.messageId).toBe(message?.messageId)
  })

  it('when an order is refused, then no email job is left behind', async () => {
    const before = await countRows(t.database.db, 'jobs', sql`type = 'email'`)
    const { response } = await placeOrder(6)
    expect(response.statusCode).toBe(409)
    expect(await countRows(t.database.db, 'jobs', sql`type = 'email'`)).toBe(before)
  })

  it('when a user signs up, then they get a welcome email; a user an admin creates does not', async () => {
    const email = `signup-${unique().toLowerCase()}@example.com`
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/register',
      payload: { email, password: `pw-${unique()}-long-enough`, full_name: 'New Person' },
    })
    expect(response.statusCode).toBe(201)
    await eventually(async () => sentTo(email).length === 1, 20_000, 'the welcome email')
    expect(sentTo(email)[0]?.raw).toContain('Welcome to OrderFlow')

    const admin = await createTestUser(t, 'admin')
    const created = `created-${unique().toLowerCase()}@example.com`
    const byAdmin = await injectAs(t, admin)({
      method: 'POST',
      url: '/v1/users',
      payload: { email: created, password: `pw-${unique()}-long-enough`, full_name: 'Made By Admin' },
    })
    expect(byAdmin.statusCode).toBe(201)
    expect(await emailJobOf(`welcome:${byAdmin.json().id}`)).toBeUndefined()
  })

  it('when the SMTP server refuses a message, then the job retries and the email goes out once', async () => {
    smtp.state.refuse = 1
    const { response, customer } = await placeOrder()
    const job = await eventually(async () => {
      const row = await emailJobOf(`order_confirmation:${response.json().id}`)
      return row?.status === 'succeeded' && row
    })
    expect(job.attempts).toBe(2)
    expect(sentTo(customer.email)).toHaveLength(1)
  })

  it('when one event’s email job runs again or is enqueued again, then the email is not sent twice', async () => {
    const to = `again-${unique().toLowerCase()}@example.com`
    const eventKey = `welcome:${crypto.randomUUID()}`
    const params = { to, template: 'welcome' as const, data: { full_name: 'Twice' }, event_key: eventKey }
    const first = await enqueueEmail(t.database.db, params, { owner_id: null })
    const second = await enqueueEmail(t.database.db, params, { owner_id: null })
    expect(second.id).toBe(first.id)
    t.app.jobs.wake()
    await eventually(async () => (await emailJobOf(eventKey))?.status === 'succeeded')
    // A redelivery of the same job (at least once) finds the recorded delivery.
    const mailer = createSmtpMailer(smtp.url, { timeoutMs: 5000 })
    const handler = createEmailHandler({ db: t.database.db, mailer, from: 'OrderFlow <no-reply@example.com>' })
    const rerun = await handler({
      job: { id: first.id, type: 'email', params, owner_id: null, attempt: 2, request_id: null },
      progress: async () => {},
      signal: new AbortController().signal,
      log: t.app.log,
    })
    mailer.close()
    expect(rerun.skipped).toBe('already_sent')
    expect(sentTo(to)).toHaveLength(1)
  })
})

describe('email jobs without SMTP_URL', () => {
  it('when no SMTP server is configured, then placing an order queues no email', async () => {
    const t = await buildJobsTestApp()
    try {
      const alice = await createTestUser(t)
      const [customer] = await t.database.db
        .insert(customers)
        .values({ name: 'No Mail', email: `nomail-${unique().toLowerCase()}@example.com` })
        .returning()
      const product = await insertProduct(t, { stock: 5 })
      const response = await injectAs(t, alice)({
        method: 'POST',
        url: '/v1/orders',
        payload: { customer_id: customer?.id, items: [{ product_id: product.id, quantity: 1 }] },
      })
      expect(response.statusCode).toBe(201)
      expect(t.app.jobs.emailEnabled).toBe(false)
      expect(await countRows(t.database.db, 'jobs', sql`type = 'email'`)).toBe(0)
    } finally {
      await t.close()
    }
  })
})
