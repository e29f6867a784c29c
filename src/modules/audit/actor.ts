import type { FastifyRequest } from 'fastify'

/** Who did something and from where: what every audit event records about its origin. */
export interface Actor {
  userId: string | null
  apiKeyId: string | null
  requestId: string | null
  clientAddress: string | null
}

/** The system itself (start-up tasks, the CLI): no user, no request. */
export const SYSTEM_ACTOR: Actor = {
  userId: null,
  apiKeyId: null,
  requestId: null,
  clientAddress: null,
}

/**
 * The actor behind a request. On public routes (registration) there is no caller yet;
 * the service names the new user as the actor itself via `{ ...actor, userId }`.
 */
export function actorOf(request: FastifyRequest): Actor {
  return {
    userId: request.caller?.userId ?? null,
    apiKeyId: request.caller?.apiKeyId ?? null,
    requestId: request.id,
    clientAddress: request.ip,
  }
}
