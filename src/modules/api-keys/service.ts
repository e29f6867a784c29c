import { randomBytes } from 'node:crypto'
import type { InTransaction } from '../../db/client.js'
import type { ApiKeyRow } from '../../db/schema/index.js'
import type { Caller } from '../../shared/caller.js'
import type { CredentialCache } from '../../shared/credential-cache.js'
import { defineError, Forbidden, ValidationFailed } from '../../shared/errors.js'
import { hashSecret, randomSecret } from '../../shared/secrets.js'
import type { Actor } from '../audit/actor.js'
import { createdChanges } from '../audit/changes.js'
import { recordAudit } from '../audit/log.js'
import type { ApiKeyOwner, ApiKeyRepository } from './repository.js'
import type { ApiKey, ApiKeyCreate, ApiKeyCreated } from './schemas.js'

export const ApiKeyNotFound = defineError('API_KEY_NOT_FOUND', 404)

/** Recognisable in logs and secret scanners: `ofk_<8 hex>_<secret>`. */
const KEY_PREFIX = 'ofk_'
const TOUCH_GRANULARITY_MS = 60_000

export function toApiKey(row: ApiKeyRow): ApiKey {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    created_at: row.createdAt.toISOString(),
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
    expires_at: row.expiresAt?.toISOString() ?? null,
  }
}

/** What the audit log records of a key: never the key or its hash. */
const AUDITED_FIELDS = ['name', 'prefix', 'expires_at'] as const

export function createApiKeyService({
  apiKeys,
  inTransaction,
  owners,
  keyRevoked = () => {},
  now = () => new Date(),
}: {
  apiKeys: ApiKeyRepository
  inTransaction: InTransaction
  /** Key hash -> owner, cached like users' auth state; dropped by owner on any change. */
  owners?: CredentialCache<ApiKeyOwner>
  /** Called after a revocation commits, with the owner, so cached lookups are dropped. */
  keyRevoked?: (userId: string) => void
  now?: () => Date
}) {
  const findOwner = (keyHash: string) =>
    owners
      ? owners.get(keyHash, (hash) => apiKeys.findOwner(hash, now()))
      : apiKeys.findOwner(keyHash, now())

  return {
    async create(caller: Caller, input: ApiKeyCreate, actor: Actor): Promise<ApiKeyCreated> {
      // A key minting keys could outlive its own expiry or revocation: log in instead.
      if (caller.apiKeyId) {
        throw new Forbidden('An API key cannot create API keys; use a bearer token.')
      }
      const expiresAt = input.expires_at === undefined ? null : new Date(input.expires_at)
      // RFC 3339 allows a leap second (23:59:60) that Date cannot hold: it parses to NaN.
      if (expiresAt && Number.isNaN(expiresAt.getTime())) {
        throw new ValidationFailed([{ path: 'body.expires_at', message: 'is not a valid time' }])
      }
      if (expiresAt && expiresAt <= now()) {
        throw new ValidationFailed([{ path: 'body.expires_at', message: 'must be in the future' }])
      }
      const prefix = `${KEY_PREFIX}${randomBytes(4).toString('hex')}`
      const key = `${prefix}_${randomSecret()}`
      const created = await inTransaction(async (tx) => {
        const row = toApiKey(
          await apiKeys.insert(
            {
              userId: caller.userId,
              name: input.name,
              prefix,
              keyHash: hashSecret(key),
              expiresAt,
            },
            tx,
          ),
        )
        await recordAudit(tx, actor, {
          action: 'create',
          resourceType: 'api_key',
          resourceId: row.id,
          changes: createdChanges(row, AUDITED_FIELDS),
        })
        return row
      })
      return { ...created, key }
    },

    async list(caller: Caller): Promise<ApiKey[]> {
      return (await apiKeys.listByUser(caller.userId, now())).map(toApiKey)
    },

    /** Revokes one of the caller's keys; another user's key answers like a missing one. */
    async revoke(caller: Caller, id: string, actor: Actor): Promise<void> {
      await inTransaction(async (tx) => {
        const at = now()
        if (!(await apiKeys.revoke(id, caller.userId, at, tx))) {
          throw new ApiKeyNotFound(`API key ${id} does not exist.`)
        }
        await recordAudit(tx, actor, {
          action: 'delete',
          resourceType: 'api_key',
          resourceId: id,
          changes: { revoked_at: { after: at.toISOString() } },
        })
      })
      keyRevoked(caller.userId)
    },

    /** The caller a presented key stands for, or undefined for an unknown, expired or revoked key. */
    async resolve(key: string): Promise<Caller | undefined> {
      if (!key.startsWith(KEY_PREFIX)) return undefined
      const at = now()
      const owner = await findOwner(hashSecret(key))
      // A cached owner may outlive the key's expiry: checked here, not only in SQL.
      if (!owner || (owner.expiresAt && owner.expiresAt <= at)) return undefined
      if (!owner.lastUsedAt || at.getTime() - owner.lastUsedAt.getTime() > TOUCH_GRANULARITY_MS) {
        owner.lastUsedAt = at // cached owners remember it too: one write a minute, not per hit
        await apiKeys.touch(owner.keyId, at, TOUCH_GRANULARITY_MS)
      }
      return { userId: owner.userId, role: owner.role, apiKeyId: owner.keyId }
    },
  }
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>
