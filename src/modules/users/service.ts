import type { InTransaction, TransactionHook } from '../../db/client.js'
import type { UserRow } from '../../db/schema/index.js'
import type { Caller, Role } from '../../shared/caller.js'
import { isForeignKeyViolation, isUniqueViolation, ValidationFailed } from '../../shared/errors.js'
import { type Page, pageOf, sortOf, toPage } from '../../shared/schemas.js'
import { type Actor, SYSTEM_ACTOR } from '../audit/actor.js'
import { createdChanges, deletedChanges, updatedChanges } from '../audit/changes.js'
import { type AuditEntry, recordAudit } from '../audit/log.js'
import { hashPassword, verifyPassword } from '../auth/passwords.js'
import { EmailTaken, SelfLockout, UserHasOrders, UserNotFound } from './errors.js'
import type { UserRepository } from './repository.js'
import type {
  User,
  UserAdminUpdate,
  UserCreate,
  UserListQuery,
  UserRegister,
  UserSelfUpdate,
} from './schemas.js'

export interface UserServiceDeps {
  users: UserRepository
  inTransaction: InTransaction
  /**
   * Called after a commit that changed a user's role, activity or credentials, so cached
   * auth state is dropped at once (see auth/user-state-cache.ts).
   */
  credentialsChanged?: (userId: string) => void
  /**
   * Runs in the transaction of a self-service sign-up, so what it records (the welcome
   * email's job) commits with the new user or not at all.
   */
  signedUp?: TransactionHook<User>
}

const EMAIL_CONSTRAINT = 'users_email_key'
const ORDERS_CONSTRAINT = 'orders_created_by_fkey'

/** What the audit log records of a user: never the password or its hash. */
const AUDITED_FIELDS = ['email', 'full_name', 'role', 'is_active'] as const

function userAudit(action: AuditEntry['action'], id: string, changes: AuditEntry['changes']) {
  return { action, resourceType: 'user', resourceId: id, changes } satisfies AuditEntry
}

export function toUser(row: UserRow): User {
  return {
    id: row.id,
    email: row.email,
    full_name: row.fullName,
    role: row.role,
    is_active: row.isActive,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    last_login_at: row.lastLoginAt?.toISOString() ?? null,
  }
}

function assertPasswordAllowed(password: string, email: string, path: string) {
  if (password.trim().toLowerCase() === email.trim().toLowerCase()) {
    throw new ValidationFailed([{ path, message: 'must not be the email address' }])
  }
}

export function createUserService({
  users,
  inTransaction,
  credentialsChanged = () => {},
  signedUp,
}: UserServiceDeps) {
  /** With `selfService`, the new user is recorded as the actor of its own creation. */
  async function create(
    input: UserCreate & { role: Role },
    actor: Actor,
    selfService = false,
  ): Promise<User> {
    assertPasswordAllowed(input.password, input.email, 'body.password')
    // Hashing takes tens of milliseconds: done before the transaction, not inside it.
    const passwordHash = await hashPassword(input.password)
    try {
      return await inTransaction(async (tx) => {
        const user = toUser(
          await users.insert(
            {
              email: input.email.toLowerCase(),
              fullName: input.full_name,
              role: input.role,
              isActive: input.is_active ?? true,
              passwordHash,
            },
            tx,
          ),
        )
        await recordAudit(
          tx,
          selfService ? { ...actor, userId: user.id } : actor,
          userAudit('create', user.id, createdChanges(user, AUDITED_FIELDS)),
        )
        if (selfService) await signedUp?.(tx, user)
        return user
      })
    } catch (error) {
      if (isUniqueViolation(error, EMAIL_CONSTRAINT)) {
        throw new EmailTaken(`A user with email ${input.email.toLowerCase()} already exists.`)
      }
      throw error
    }
  }

  async function existing(id: string): Promise<UserRow> {
    const row = await users.findById(id)
    if (!row) throw new UserNotFound(`User ${id} does not exist.`)
    return row
  }

  return {
    /** Self-service sign-up: always the `user` role; the new user is the audit actor. */
    register: (input: UserRegister, actor: Actor) =>
      create({ ...input, role: 'user' }, actor, true),

    create: (input: UserCreate, actor: Actor) =>
      create({ ...input, role: input.role ?? 'user' }, actor),

    /** Creates the first admin when none is active; answers whether it did. */
    async ensureAdmin(input: {
      email: string
      password: string
      full_name: string
    }): Promise<boolean> {
      if (await users.anyActiveAdmin()) return false
      await create({ ...input, role: 'admin' }, SYSTEM_ACTOR)
      return true
    },

    /** Whether anyone can administer the service yet; the start-up message says how if not. */
    hasActiveAdmin: () => users.anyActiveAdmin(),

    get: async (id: string) => toUser(await existing(id)),

    async list(query: UserListQuery): Promise<Page<User>> {
      const { rows, total } = await users.list({
        role: query.role,
        isActive: query.is_active,
        search: query.q,
        ...sortOf(query.sort, 'created_at'),
        ...pageOf(query),
      })
      return toPage(rows.map(toUser), total, query)
    },

    async updateSelf(caller: Caller, changes: UserSelfUpdate, actor: Actor): Promise<User> {
      const user = await inTransaction(async (tx) => {
        const row = await users.findByIdForUpdate(caller.userId, tx)
        if (!row) throw new UserNotFound(`User ${caller.userId} does not exist.`)
        let passwordHash: string | undefined
        if (changes.password !== undefined) {
          if (changes.current_password === undefined) {
            throw new ValidationFailed([
              { path: 'body.current_password', message: 'is required to change the password' },
            ])
          }
          if (!(await verifyPassword(row.passwordHash, changes.current_password))) {
            throw new ValidationFailed([
              { path: 'body.current_password', message: 'is not the current password' },
            ])
          }
          assertPasswordAllowed(changes.password, row.email, 'body.password')
          passwordHash = await hashPassword(changes.password)
          await users.revokeAllCredentials(row.id, tx)
        }
        const updated = await users.update(
          row.id,
          { fullName: changes.full_name, passwordHash, updatedAt: new Date() },
          tx,
        )
        const [before, after] = [toUser(row), toUser(updated ?? row)]
        const changed = updatedChanges(before, after, AUDITED_FIELDS)
        if (passwordHash) changed.password = { after: '[changed]' }
        await recordAudit(tx, actor, userAudit('update', row.id, changed))
        return after
      })
      if (changes.password !== undefined) credentialsChanged(user.id)
      return user
    },

    async update(
      caller: Caller,
      id: string,
      changes: UserAdminUpdate,
      actor: Actor,
    ): Promise<User> {
      const locksOut =
        (changes.role !== undefined && changes.role !== 'admin') || changes.is_active === false
      const user = await inTransaction(async (tx) => {
        const row = await users.findByIdForUpdate(id, tx)
        if (!row) throw new UserNotFound(`User ${id} does not exist.`)
        // The stored id, not the path's: a UUID may be written in capitals.
        if (row.id === caller.userId && locksOut) {
          throw new SelfLockout('Admins cannot demote or deactivate themselves; ask another admin.')
        }
        if (changes.is_active === false && row.isActive) await users.revokeAllCredentials(id, tx)
        const updated = await users.update(
          id,
          {
            fullName: changes.full_name,
            role: changes.role,
            isActive: changes.is_active,
            updatedAt: new Date(),
          },
          tx,
        )
        const [before, after] = [toUser(row), toUser(updated ?? row)]
        await recordAudit(
          tx,
          actor,
          userAudit('update', row.id, updatedChanges(before, after, AUDITED_FIELDS)),
        )
        return after
      })
      credentialsChanged(user.id)
      return user
    },

    async remove(caller: Caller, id: string, actor: Actor): Promise<void> {
      try {
        const removed = await inTransaction(async (tx) => {
          const row = await users.findByIdForUpdate(id, tx)
          if (!row) throw new UserNotFound(`User ${id} does not exist.`)
          if (row.id === caller.userId)
            throw new SelfLockout('Admins cannot delete themselves; ask another admin.')
          await users.delete(row.id, tx)
          await recordAudit(
            tx,
            actor,
            userAudit('delete', row.id, deletedChanges(toUser(row), AUDITED_FIELDS)),
          )
          return row.id
        })
        credentialsChanged(removed)
      } catch (error) {
        if (isForeignKeyViolation(error, ORDERS_CONSTRAINT)) {
          throw new UserHasOrders(
            `User ${id} has placed orders and cannot be deleted; deactivate them instead (is_active false).`,
          )
        }
        throw error
      }
    },
  }
}

export type UserService = ReturnType<typeof createUserService>
