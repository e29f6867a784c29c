import { type Static, Type } from 'typebox'
import { type DatabaseHandle, inTransaction } from '../db/client.js'
import { SYSTEM_ACTOR } from '../modules/audit/actor.js'
import { createUserRepository } from '../modules/users/repository.js'
import { EmailSchema, PasswordSchema } from '../modules/users/schemas.js'
import { createUserService } from '../modules/users/service.js'
import { assertValid } from '../platform/validation.js'

const AdminInputSchema = Type.Object(
  {
    email: EmailSchema,
    password: PasswordSchema,
    full_name: Type.String({ minLength: 1, maxLength: 200 }),
  },
  { additionalProperties: false },
)
export type AdminInput = Static<typeof AdminInputSchema>

/**
 * Creates an admin whether or not one exists: the operator asked for it by name. The
 * start-up path (`ADMIN_EMAIL`) is the one that only acts on an empty installation.
 */
export async function createAdmin(database: DatabaseHandle, input: AdminInput) {
  const valid = assertValid<AdminInput>(AdminInputSchema, input, 'input')
  const users = createUserService({
    users: createUserRepository(database.db),
    inTransaction: inTransaction(database.db),
  })
  return users.create({ ...valid, role: 'admin' }, SYSTEM_ACTOR)
}
