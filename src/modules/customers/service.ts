import type { InTransaction, TransactionHook } from '../../db/client.js'
import type { CustomerRow } from '../../db/schema/index.js'
import type { ResourceCache } from '../../platform/read-cache.js'
import { isForeignKeyViolation, isUniqueViolation } from '../../shared/errors.js'
import { type Page, pageOf, sortOf, toPage } from '../../shared/schemas.js'
import type { Actor } from '../audit/actor.js'
import { createdChanges, deletedChanges, updatedChanges } from '../audit/changes.js'
import { recordAudit } from '../audit/log.js'
import { CustomerEmailTaken, CustomerHasOrders, CustomerNotFound } from './errors.js'
import type { CustomerRepository } from './repository.js'
import type { Customer, CustomerCreate, CustomerListQuery, CustomerUpdate } from './schemas.js'

export interface CustomerServiceDeps {
  customers: CustomerRepository
  inTransaction: InTransaction
  /** Orders show their customer's name: a rename reaches every cached order. */
  orderCache: Pick<ResourceCache<unknown>, 'changedAll'>
}

/** The unique index on lower(email): Postgres names the index as the violated constraint. */
const EMAIL_CONSTRAINT = 'customers_email_key'
const ORDERED_CONSTRAINT = 'orders_customer_id_fkey'
/** What the audit log records of a customer: every field but the timestamps. */
const AUDITED_FIELDS = ['name', 'email', 'tier', 'is_active'] as const

export function toCustomer(row: CustomerRow): Customer {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    tier: row.tier,
    is_active: row.isActive,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  }
}

const notFound = (id: string) => new CustomerNotFound(`Customer ${id} does not exist.`)

export function createCustomerService({
  customers,
  inTransaction,
  orderCache,
}: CustomerServiceDeps) {
  async function withEmailConflict<T>(
    email: string | undefined,
    write: () => Promise<T>,
  ): Promise<T> {
    try {
      return await write()
    } catch (error) {
      if (isUniqueViolation(error, EMAIL_CONSTRAINT)) {
        throw new CustomerEmailTaken(`A customer with email ${email} already exists.`)
      }
      throw error
    }
  }

  return {
    async create(
      input: CustomerCreate,
      actor: Actor,
      alsoInTransaction?: TransactionHook<Customer>,
    ): Promise<Customer> {
      const email = input.email.toLowerCase()
      return withEmailConflict(email, () =>
        inTransaction(async (tx) => {
          const customer = toCustomer(
            await customers.insert(
              {
                name: input.name,
                email,
                tier: input.tier ?? 'free',
                isActive: input.is_active ?? true,
              },
              tx,
            ),
          )
          await recordAudit(tx, actor, {
            action: 'create',
            resourceType: 'customer',
            resourceId: customer.id,
            changes: createdChanges(customer, AUDITED_FIELDS),
          })
          await alsoInTransaction?.(tx, customer)
          return customer
        }),
      )
    },

    async get(id: string): Promise<Customer> {
      const row = await customers.findById(id)
      if (!row) throw notFound(id)
      return toCustomer(row)
    },

    async list(query: CustomerListQuery): Promise<Page<Customer>> {
      const { rows, total } = await customers.list({
        tier: query.tier,
        isActive: query.is_active,
        search: query.q,
        ...sortOf(query.sort, 'created_at'),
        ...pageOf(query),
      })
      return toPage(rows.map(toCustomer), total, query)
    },

    async update(id: string, changes: CustomerUpdate, actor: Actor): Promise<Customer> {
      const email = changes.email?.toLowerCase()
      const { before, after } = await withEmailConflict(email, () =>
        inTransaction(async (tx) => {
          const current = await customers.findByIdForUpdate(id, tx)
          if (!current) throw notFound(id)
          const row = await customers.update(
            id,
            {
              name: changes.name,
              email,
              tier: changes.tier,
              isActive: changes.is_active,
              updatedAt: new Date(),
            },
            tx,
          )
          if (!row) throw notFound(id)
          const [before, after] = [toCustomer(current), toCustomer(row)]
          await recordAudit(tx, actor, {
            action: 'update',
            resourceType: 'customer',
            resourceId: id,
            changes: updatedChanges(before, after, AUDITED_FIELDS),
          })
          return { before, after }
        }),
      )
      if (before.name !== after.name) await orderCache.changedAll()
      return after
    },

    async remove(id: string, actor: Actor): Promise<void> {
      try {
        await inTransaction(async (tx) => {
          const row = await customers.delete(id, tx)
          if (!row) throw notFound(id)
          await recordAudit(tx, actor, {
            action: 'delete',
            resourceType: 'customer',
            resourceId: id,
            changes: deletedChanges(toCustomer(row), AUDITED_FIELDS),
          })
        })
      } catch (error) {
        if (isForeignKeyViolation(error, ORDERED_CONSTRAINT)) {
          throw new CustomerHasOrders(
            `Customer ${id} has orders and cannot be deleted; set is_active to false instead.`,
          )
        }
        throw error
      }
    },
  }
}

export type CustomerService = ReturnType<typeof createCustomerService>
