import { type Static, type TSchema, Type } from 'typebox'

/** A string enum that ajv reports as "must be equal to one of the allowed values". */
export const StringEnum = <const T extends readonly string[]>(values: T, options: object = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options })

export const IdSchema = Type.String({
  format: 'uuid',
  description: 'A UUID.',
  examples: ['3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10'],
})

export const IdParamsSchema = Type.Object({ id: IdSchema }, { additionalProperties: false })

export const TimestampSchema = Type.String({
  format: 'date-time',
  examples: ['2026-01-31T12:00:00.000Z'],
})

/** Money travels as a decimal string so no binary float ever rounds it. */
export const MoneySchema = Type.String({
  pattern: '^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,2})?$',
  description: 'a decimal string with at most 2 decimals, e.g. "19.99"',
  examples: ['19.99'],
})

const DEFAULT_PAGE_SIZE = 20
/** Keeps `(page - 1) * page_size` a safe integer, far inside PostgreSQL's bigint OFFSET. */
const MAX_PAGE = 1_000_000_000

export const PageQuerySchema = Type.Object({
  page: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: MAX_PAGE,
      default: 1,
      description: `Page number, from 1 (at most ${MAX_PAGE}).`,
    }),
  ),
  page_size: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 100,
      default: DEFAULT_PAGE_SIZE,
      description: 'Items per page (1-100).',
    }),
  ),
})
export type PageQuery = Static<typeof PageQuerySchema>

/** The validator fills the defaults in; this only gives TypeScript the same knowledge. */
export function pageOf(query: PageQuery) {
  const page = query.page ?? 1
  const pageSize = query.page_size ?? DEFAULT_PAGE_SIZE
  return { page, pageSize, limit: pageSize, offset: (page - 1) * pageSize }
}

/** A `sort` query value: a field, descending when prefixed with `-` (`-created_at`). */
export function sortOf<F extends string>(
  sort: F | `-${F}` | undefined,
  fallback: F | `-${F}`,
): { sort: F; descending: boolean } {
  const value: string = sort ?? fallback
  const descending = value.startsWith('-')
  return { sort: (descending ? value.slice(1) : value) as F, descending }
}

export const PageSchema = <T extends TSchema>(item: T) =>
  Type.Object(
    {
      items: Type.Array(item),
      page: Type.Integer({ minimum: 1 }),
      page_size: Type.Integer({ minimum: 1 }),
      total: Type.Integer({ minimum: 0 }),
      total_pages: Type.Integer({ minimum: 0 }),
    },
    { additionalProperties: false },
  )

export interface Page<T> {
  items: T[]
  page: number
  page_size: number
  total: number
  total_pages: number
}

export function toPage<T>(items: T[], total: number, query: PageQuery): Page<T> {
  const { page, pageSize } = pageOf(query)
  return { items, page, page_size: pageSize, total, total_pages: Math.ceil(total / pageSize) }
}

/** RFC 9457 problem details, as every error path answers them. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ examples: ['urn:orderflow:problem:validation-failed'] }),
    title: Type.String({ examples: ['Unprocessable Content'] }),
    status: Type.Integer({ examples: [422] }),
    detail: Type.String({ examples: ['The request is not valid.'] }),
    instance: Type.String({ examples: ['/v1/products'] }),
    code: Type.String({ examples: ['VALIDATION_FAILED'] }),
    request_id: Type.String({ examples: ['9b2f0c3e-1d4a-4f5b-8e6c-7a8b9c0d1e2f'] }),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String({ examples: ['body.price'] }),
          message: Type.String({ examples: ['must be a decimal string with at most 2 decimals'] }),
        }),
      ),
    ),
  },
  { additionalProperties: true, description: 'RFC 9457 problem details.' },
)

/** Response entries for the error statuses a route can answer, keyed by status. */
export function problemResponses<const S extends readonly number[]>(...statuses: S) {
  return Object.fromEntries(
    statuses.map((status) => [status, { ...ProblemSchema, description: describeStatus(status) }]),
  ) as unknown as { [K in S[number]]: typeof ProblemSchema }
}

function describeStatus(status: number): string {
  const descriptions: Record<number, string> = {
    400: 'Malformed request (e.g. invalid JSON).',
    401: 'Missing or invalid credentials.',
    403: 'The caller may not do this.',
    404: 'Not found.',
    409: 'Conflicts with the current state.',
    413: 'Body larger than the limit.',
    414: 'A path segment longer than any resource name.',
    415: 'Unsupported media type (the detail names those accepted) or a compressed body (`Content-Encoding` other than identity).',
    422: 'Validation failed; `errors` lists every problem by path.',
    429: 'Too many requests; see `Retry-After`.',
    503: 'Not ready.',
  }
  return descriptions[status] ?? 'Error.'
}
