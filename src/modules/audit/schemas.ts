import { type Static, Type } from 'typebox'
import {
  IdSchema,
  PageQuerySchema,
  PageSchema,
  StringEnum,
  TimestampSchema,
} from '../../shared/schemas.js'
import { AUDIT_ACTIONS, AUDITED_RESOURCES } from './log.js'

const ChangeSchema = Type.Object(
  { before: Type.Optional(Type.Unknown()), after: Type.Optional(Type.Unknown()) },
  { additionalProperties: false },
)

export const AuditEventSchema = Type.Object(
  {
    id: IdSchema,
    at: TimestampSchema,
    actor: Type.Object(
      {
        user_id: Type.Union([IdSchema, Type.Null()]),
        api_key_id: Type.Union([IdSchema, Type.Null()]),
      },
      {
        description:
          'Who made the change: a user, directly or through one of their API keys; both null ' +
          'for the system itself and for attempts by no one authenticated (a failed sign-in).',
      },
    ),
    action: StringEnum(AUDIT_ACTIONS, {
      description:
        'A change (`create`, `update`, `delete`, `status_change`) or a sign-in event on a ' +
        '`session` (a login: `sign_in`, `token_refresh`, `refresh_token_reused`, `sign_out`) ' +
        'or a `user` (`sign_in_failed`, with the reason in `changes`).',
    }),
    resource_type: StringEnum(AUDITED_RESOURCES),
    resource_id: Type.String({
      description:
        'The resource’s id; for a failed sign-in on an unknown email, `sha256:` and the hex ' +
        'digest of the email as typed (trimmed, lower-cased).',
    }),
    changes: Type.Record(Type.String(), ChangeSchema, {
      description: 'Before and after of each changed field. Secrets are never recorded.',
      examples: [{ price: { before: '19.99', after: '17.50' } }],
    }),
    request_id: Type.Union([Type.String(), Type.Null()]),
    client_address: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
)
export type AuditEvent = Static<typeof AuditEventSchema>

export const AuditListQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    actor: Type.Optional({
      ...IdSchema,
      description: 'A user id or API key id: the events made by that actor.',
    }),
    action: Type.Optional(StringEnum(AUDIT_ACTIONS)),
    resource_type: Type.Optional(StringEnum(AUDITED_RESOURCES)),
    resource_id: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    from: Type.Optional({ ...TimestampSchema, description: 'Events at or after this time.' }),
    to: Type.Optional({ ...TimestampSchema, description: 'Events at or before this time.' }),
  },
  { additionalProperties: false },
)
export type AuditListQuery = Static<typeof AuditListQuerySchema>

export const AuditEventPageSchema = PageSchema(AuditEventSchema)
