import type { FetchResponse, MaybeOptionalInit } from 'openapi-fetch'
import type { HttpMethod, PathsWithMethod, RequiredKeysOf } from 'openapi-typescript-helpers'
import type { paths } from './openapi.generated.js'

// As openapi-fetch's own (unexported) InitParam: the options argument is optional exactly
// when the operation has no required parameter or body.
type InitParam<Init> =
  RequiredKeysOf<Init> extends never
    ? [(Init & { [key: string]: unknown })?]
    : [Init & { [key: string]: unknown }]

/** The success half of openapi-fetch's answer: failures are raised as `ApiError` instead. */
export type Succeeded<R> = Extract<R, { data: unknown }>

// `paths` is an interface, without the index signature openapi-fetch's own constraint wants.
type Operation<PathItem, Method extends HttpMethod> = PathItem[Method &
  keyof PathItem] extends infer O extends Record<string | number, unknown>
  ? O
  : never

/**
 * One HTTP method of the client: openapi-fetch's signature, resolving only on success.
 * `data` is typed as the JSON answer: an operation that can also stream (text generation)
 * is streamed with the client's helpers, and other bodies are read with `parseAs`.
 */
export type ApiMethod<Method extends HttpMethod> = <
  Path extends PathsWithMethod<paths, Method>,
  Init extends MaybeOptionalInit<paths[Path], Method>,
>(
  url: Path,
  ...init: InitParam<Init>
) => Promise<Succeeded<FetchResponse<Operation<paths[Path], Method>, Init, 'application/json'>>>

/**
 * The typed calls, one per HTTP method, checked against the service's OpenAPI document:
 * `api.GET('/v1/orders/{id}', { params: { path: { id } } })` resolves to `{ data, response }`
 * with `data` typed, and rejects with an `ApiError` on any answer outside 2xx.
 */
export interface ApiClient {
  GET: ApiMethod<'get'>
  POST: ApiMethod<'post'>
  PUT: ApiMethod<'put'>
  PATCH: ApiMethod<'patch'>
  DELETE: ApiMethod<'delete'>
  HEAD: ApiMethod<'head'>
}

type JsonContent<T> = T extends { content: { 'application/json': infer Body } } ? Body : never

/** The JSON body a 200 or 201 of `method` on `path` answers. */
export type ResponseBody<
  Path extends keyof paths,
  Method extends HttpMethod & keyof paths[Path],
> = paths[Path][Method] extends { responses: infer R }
  ? JsonContent<
      R extends { 200: infer Ok } ? Ok : R extends { 201: infer Created } ? Created : never
    >
  : never

/** The JSON body `method` on `path` takes. */
export type RequestBody<
  Path extends keyof paths,
  Method extends HttpMethod & keyof paths[Path],
> = paths[Path][Method] extends { requestBody?: infer B } ? JsonContent<NonNullable<B>> : never
