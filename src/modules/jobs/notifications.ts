import { eq } from 'drizzle-orm'
import type { Transaction } from '../../db/client.js'
import { customers } from '../../db/schema/index.js'
import type { Order } from '../orders/schemas.js'
import type { User } from '../users/schemas.js'
import { enqueueEmail } from './email.js'

/**
 * The order confirmation, queued in the placing transaction: to the customer the order is
 * for, once per order (the order id is the event).
 */
export async function queueOrderConfirmation(tx: Transaction, order: Order): Promise<void> {
  const [customer] = await tx
    .select({ email: customers.email, name: customers.name })
    .from(customers)
    .where(eq(customers.id, order.customer_id))
  if (!customer) return
  await enqueueEmail(
    tx,
    {
      to: customer.email,
      template: 'order_confirmation',
      data: { order_id: order.id, total: order.total, customer_name: customer.name },
      event_key: `order_confirmation:${order.id}`,
    },
    { owner_id: order.created_by },
  )
}

/**
 * The welcome email, queued in the sign-up transaction. Only self-service sign-up counts:
 * accounts an admin creates (the API, `create-admin`) get their credentials from that admin.
 */
export async function queueWelcome(tx: Transaction, user: User): Promise<void> {
  await enqueueEmail(
    tx,
    {
      to: user.email,
      template: 'welcome',
      data: { full_name: user.full_name },
      event_key: `welcome:${user.id}`,
    },
    { owner_id: user.id },
  )
}
