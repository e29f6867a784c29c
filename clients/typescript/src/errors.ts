import type { components } from './openapi.generated.js'

/** An RFC 9457 problem document as the service writes it. */
export type Problem = components['schemas']['Problem']

/** One validation failure: `path` names the field (`body.price`, `query.page_size`). */
export interface FieldError {
  path: string
  message: string
}

/**
 * Any answer of the service outside 2xx, raised. `code` is the service's stable
 * SCREAMING_SNAKE code (`VALIDATION_FAILED`, `OUT_OF_STOCK`), the thing to branch on;
 * `detail` is written for people.
 */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly title: string
  readonly detail: string
  readonly type: string
  readonly instance: string | undefined
  readonly requestId: string | undefined
  /** Every field that failed validation (422), empty otherwise. */
  readonly errors: FieldError[]
  /** The whole document, with any extension members the problem carries. */
  readonly problem: Partial<Problem>

  constructor(
    problem: Partial<Problem> & { status: number; code: string },
    options?: ErrorOptions,
  ) {
    const title = problem.title ?? 'Error'
    super(problem.detail ?? title, options)
    this.name = 'ApiError'
    this.status = problem.status
    this.code = problem.code
    this.title = title
    this.detail = problem.detail ?? title
    this.type = problem.type ?? 'about:blank'
    this.instance = problem.instance
    this.requestId = problem.request_id
    this.errors = problem.errors ?? []
    this.problem = problem
  }

  /**
   * The messages by field, keyed by the path without its location (`body.price` ->
   * `price`, `body.items.0.quantity` -> `items.0.quantity`), as a form names its fields.
   */
  fieldErrors(): Record<string, string> {
    const byField: Record<string, string> = {}
    for (const { path, message } of this.errors) {
      const field = path.replace(/^(body|query|params|headers)\.?/, '')
      byField[field] ??= message
    }
    return byField
  }
}

/**
 * The session is over: the refresh token was refused (expired, revoked, or reused after
 * rotation), so a new sign-in is needed. The tokens are dropped before this is raised.
 */
export class SessionExpiredError extends ApiError {
  constructor(detail: string, options?: ErrorOptions) {
    super({ status: 401, code: 'SESSION_EXPIRED', title: 'Unauthorized', detail }, options)
    this.name = 'SessionExpiredError'
  }
}

const STATUS_TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * The error a failed response stands for. Problem documents are taken as they are; the
 * token endpoint's OAuth errors (RFC 6749 §5.2: `error`, `error_description`) become
 * problems with the OAuth code in capitals (`INVALID_GRANT`); anything else — a proxy's
 * HTML page, an empty body — keeps its status with a code derived from it.
 */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const status = response.status
  const title = STATUS_TITLES[status] ?? (response.statusText || 'Error')
  let body: unknown
  try {
    body = JSON.parse(await response.text())
  } catch {
    body = undefined
  }
  if (isObject(body) && typeof body.code === 'string') {
    return new ApiError({ ...(body as Partial<Problem>), status, code: body.code })
  }
  if (isObject(body) && typeof body.error === 'string') {
    const detail = typeof body.error_description === 'string' ? body.error_description : body.error
    return new ApiError({ status, code: body.error.toUpperCase(), title, detail })
  }
  const code = title.toUpperCase().replace(/[^A-Z]+/g, '_')
  return new ApiError({ status, code, title, detail: `The server answered ${status} ${title}.` })
}
