/**
 * The one family of errors the domain throws. Each carries a stable SCREAMING_SNAKE code
 * and the status it maps to, so the error handler needs no `instanceof` chain and the
 * domain needs no HTTP import.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** Extra members of the problem document, e.g. `allowed_next` for a transition. */
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message)
    this.name = 'AppError'
  }
}

export interface FieldError {
  path: string
  message: string
}

/** A business rule broken by otherwise well-formed input (422 with field errors). */
export class ValidationFailed extends AppError {
  constructor(
    readonly errors: FieldError[],
    message = 'The request is not valid.',
  ) {
    super('VALIDATION_FAILED', 422, message, { errors })
  }
}

/** Declares a catalogue entry: `const ProductNotFound = defineError('PRODUCT_NOT_FOUND', 404)`. */
export function defineError(code: string, status: number) {
  return class extends AppError {
    constructor(message: string, extensions?: Record<string, unknown>) {
      super(code, status, message, extensions)
    }
  }
}

/** True when `error` (or a driver error it wraps) is a PostgreSQL unique violation on `constraint`. */
export function isUniqueViolation(error: unknown, constraint: string): boolean {
  for (let current = error; current instanceof Error; current = current.cause) {
    const pg = current as Error & { code?: string; constraint?: string }
    if (pg.code === '23505') return pg.constraint === constraint
  }
  return false
}

/**
 * True when `error` (or a driver error it wraps) is a foreign key violation on `constraint`:
 * 23503, or 23001 (restrict_violation), which an ON DELETE RESTRICT key raises instead.
 */
export function isForeignKeyViolation(error: unknown, constraint: string): boolean {
  for (let current = error; current instanceof Error; current = current.cause) {
    const pg = current as Error & { code?: string; constraint?: string }
    if (pg.code === '23503' || pg.code === '23001') return pg.constraint === constraint
  }
  return false
}

/** No valid credentials; rendered with `WWW-Authenticate: Bearer`. */
export const Unauthenticated = defineError('UNAUTHENTICATED', 401)
/** Valid credentials, but the role does not allow this. */
export const Forbidden = defineError('FORBIDDEN', 403)
export const TooManyRequests = defineError('TOO_MANY_REQUESTS', 429)
export const ServiceUnavailable = defineError('SERVICE_UNAVAILABLE', 503)
