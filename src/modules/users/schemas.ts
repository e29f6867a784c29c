import { type Static, Type } from 'typebox'
import { ROLES } from '../../shared/caller.js'
import {
  IdSchema,
  PageQuerySchema,
  PageSchema,
  StringEnum,
  TimestampSchema,
} from '../../shared/schemas.js'

export const EmailSchema = Type.String({
  format: 'email',
  maxLength: 254,
  examples: ['ada@example.com'],
})
export const PasswordSchema = Type.String({
  minLength: 12,
  maxLength: 128,
  description: '12-128 characters, not the email address.',
  examples: ['correct horse battery staple'],
})
const FullNameSchema = Type.String({ minLength: 1, maxLength: 200, examples: ['Ada Lovelace'] })
export const RoleSchema = StringEnum(ROLES, { description: 'admin, user or viewer.' })

export const UserSchema = Type.Object(
  {
    id: IdSchema,
    email: EmailSchema,
    full_name: FullNameSchema,
    role: RoleSchema,
    is_active: Type.Boolean(),
    created_at: TimestampSchema,
    updated_at: TimestampSchema,
    last_login_at: Type.Union([TimestampSchema, Type.Null()]),
  },
  { additionalProperties: false },
)
export type User = Static<typeof UserSchema>

export const UserRegisterSchema = Type.Object(
  { email: EmailSchema, password: PasswordSchema, full_name: FullNameSchema },
  {
    additionalProperties: false,
    examples: [
      {
        email: 'ada@example.com',
        password: 'correct horse battery staple',
        full_name: 'Ada Lovelace',
      },
    ],
  },
)
export type UserRegister = Static<typeof UserRegisterSchema>

export const UserCreateSchema = Type.Object(
  {
    email: EmailSchema,
    password: PasswordSchema,
    full_name: FullNameSchema,
    role: Type.Optional(RoleSchema),
    is_active: Type.Optional(Type.Boolean()),
  },
  {
    additionalProperties: false,
    examples: [
      {
        email: 'grace@example.com',
        password: 'a long enough secret',
        full_name: 'Grace Hopper',
        role: 'viewer',
      },
    ],
  },
)
export type UserCreate = Static<typeof UserCreateSchema>

/** What users may change about themselves: a new password needs the current one. */
export const UserSelfUpdateSchema = Type.Object(
  {
    full_name: Type.Optional(FullNameSchema),
    password: Type.Optional(PasswordSchema),
    current_password: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    examples: [
      { password: 'my new long password', current_password: 'correct horse battery staple' },
    ],
  },
)
export type UserSelfUpdate = Static<typeof UserSelfUpdateSchema>

export const UserAdminUpdateSchema = Type.Object(
  {
    full_name: Type.Optional(FullNameSchema),
    role: Type.Optional(RoleSchema),
    is_active: Type.Optional(Type.Boolean()),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    examples: [{ role: 'viewer', is_active: false }],
  },
)
export type UserAdminUpdate = Static<typeof UserAdminUpdateSchema>

export const USER_SORTS = ['email', '-email', 'created_at', '-created_at'] as const

export const UserListQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    role: Type.Optional(RoleSchema),
    is_active: Type.Optional(Type.Boolean()),
    q: Type.Optional(
      Type.String({ minLength: 1, maxLength: 100, description: 'Search in email and full name.' }),
    ),
    sort: Type.Optional(StringEnum(USER_SORTS, { default: 'created_at' })),
  },
  { additionalProperties: false },
)
export type UserListQuery = Static<typeof UserListQuerySchema>

export const UserPageSchema = PageSchema(UserSchema)
