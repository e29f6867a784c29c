import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import { type Static, Type } from 'typebox'
import { ROLES, type Role } from '../../shared/caller.js'
import { StringEnum } from '../../shared/schemas.js'

const RoleSchema = StringEnum(ROLES, { description: 'admin, user or viewer' })

/** Asymmetric algorithms only: an HMAC would make the client secret a signing key. */
export const SIGNING_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const

const RoleMappingFields = {
  role_claim: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'claim holding role or group values (a string or a list), e.g. roles, groups',
    }),
  ),
  role_map: Type.Optional(
    Type.Record(Type.String({ minLength: 1 }), RoleSchema, {
      description: 'claim value -> role; the most privileged match wins',
    }),
  ),
  default_role: Type.Optional(RoleSchema),
}

const ServiceTokensSchema = Type.Object(
  {
    audience: Type.String({ minLength: 1, description: 'the aud the tokens must carry' }),
    issuer: Type.Optional(
      Type.String({
        format: 'uri',
        description: "the tokens' iss when it differs from the provider's (Entra v1 tokens)",
      }),
    ),
    ...RoleMappingFields,
  },
  { additionalProperties: false },
)

export const OidcProviderSchema = Type.Object(
  {
    name: Type.String({
      pattern: '^[a-z0-9]+(-[a-z0-9]+)*$',
      maxLength: 32,
      description: 'lower-case letters, digits and dashes; part of the URLs',
    }),
    display_name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    issuer: Type.String({ format: 'uri', description: "the provider's issuer URL" }),
    client_id: Type.String({ minLength: 1 }),
    scopes: Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' }), {
      default: ['openid', 'email', 'profile'],
      contains: Type.Literal('openid'),
      description: 'scopes to ask for, openid among them',
    }),
    email_claim: Type.String({ minLength: 1, default: 'email' }),
    name_claim: Type.String({ minLength: 1, default: 'name' }),
    ...RoleMappingFields,
    link_verified_email: Type.Boolean({
      default: false,
      description: 'link a first sign-in to the local account with the same verified email',
    }),
    algorithms: Type.Array(StringEnum(SIGNING_ALGORITHMS), {
      minItems: 1,
      default: ['RS256'],
      description: 'ID token signature algorithms accepted',
    }),
    login: Type.Boolean({ default: true, description: 'offer browser sign-in' }),
    service_tokens: Type.Optional(ServiceTokensSchema),
  },
  { additionalProperties: false },
)

export type OidcProviderSettings = Static<typeof OidcProviderSchema>

/** One provider as the service uses it: the JSON entry plus its secret from the environment. */
export interface OidcProvider extends OidcProviderSettings {
  /** From `OIDC_<NAME>_CLIENT_SECRET`; absent for a public client (PKCE only). */
  clientSecret?: string
}

const ProvidersSchema = Type.Array(OidcProviderSchema, { minItems: 1 })

let validateProviders: ValidateFunction | undefined

/**
 * Compiled with the first OIDC_PROVIDERS read, not when the module loads: most processes
 * configure no provider, and the compile was a measurable part of every start.
 */
function providersValidator(): ValidateFunction {
  if (!validateProviders) {
    const ajv = new Ajv({ useDefaults: true, allErrors: true })
    addFormats.default(ajv)
    validateProviders = ajv.compile(ProvidersSchema)
  }
  return validateProviders
}

/** The environment variable holding a provider's client secret. */
export function clientSecretKey(name: string): string {
  return `OIDC_${name.toUpperCase().replaceAll('-', '_')}_CLIENT_SECRET`
}

/**
 * Parses and validates OIDC_PROVIDERS (a JSON array). Problems name the entry and field and
 * are pushed to `problems`; secrets never appear in the JSON, so none can be echoed.
 */
export function parseOidcProviders(
  json: string,
  secrets: Record<string, string | undefined>,
  problems: string[],
): OidcProvider[] {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch (error) {
    problems.push(`OIDC_PROVIDERS is not valid JSON: ${(error as Error).message}`)
    return []
  }
  const validate = providersValidator()
  if (!validate(value)) {
    for (const error of validate.errors ?? []) {
      const where = `OIDC_PROVIDERS${error.instancePath.replaceAll('/', '.')}`
      if (error.keyword === 'additionalProperties') {
        const field = String(error.params.additionalProperty)
        problems.push(
          field === 'client_secret'
            ? `${where}.client_secret is not allowed: put the secret in the environment (${clientSecretKey('<name>')})`
            : `${where} has an unknown field ${JSON.stringify(field)}`,
        )
      } else {
        problems.push(`${where} ${error.message}`)
      }
    }
    return []
  }
  const providers = value as OidcProviderSettings[]
  const seen = new Set<string>()
  for (const provider of providers) {
    if (seen.has(provider.name)) problems.push(`OIDC_PROVIDERS names ${provider.name} twice`)
    seen.add(provider.name)
    for (const [label, mapping] of [
      ['', provider],
      ['.service_tokens', provider.service_tokens],
    ] as const) {
      if (mapping?.role_map && !mapping.role_claim) {
        problems.push(`OIDC_PROVIDERS ${provider.name}${label}: role_map needs role_claim`)
      }
    }
  }
  return providers.map((provider) => {
    const clientSecret = secrets[clientSecretKey(provider.name)]
    return clientSecret ? { ...provider, clientSecret } : provider
  })
}

/**
 * The role a set of claims maps to: the most privileged role any value of the role claim
 * maps to, else the default; undefined when neither (the sign-in is refused).
 */
export function mapRole(
  claims: Record<string, unknown>,
  mapping: { role_claim?: string; role_map?: Record<string, Role>; default_role?: Role },
): Role | undefined {
  const raw = mapping.role_claim === undefined ? undefined : claims[mapping.role_claim]
  const values = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]
  const mapped = new Set(
    values.flatMap((value) =>
      typeof value === 'string' && mapping.role_map && Object.hasOwn(mapping.role_map, value)
        ? [mapping.role_map[value] as Role]
        : [],
    ),
  )
  // ROLES is ordered from the most privileged down.
  return ROLES.find((role) => mapped.has(role)) ?? mapping.default_role
}
