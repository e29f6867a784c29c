import createClient from 'openapi-fetch'
import type { ApiClient, RequestBody, ResponseBody } from './api-types.js'
import { ApiError, errorFromResponse, SessionExpiredError } from './errors.js'
import { readEventStream } from './event-stream.js'

/** What the token endpoint answers (OAuth 2.0, RFC 6749 §5.1). */
export type Tokens = ResponseBody<'/v1/auth/token', 'post'>

export type Job = ResponseBody<'/v1/jobs/{id}', 'get'>
export type JobStatus = Job['status']

/** One event of a job's stream: its number, its kind, and what it says. */
export type JobEvent =
  | { id: number; event: 'progress'; data: { progress: number; message: string | null } }
  | {
      id: number
      event: 'status'
      data: {
        status: JobStatus
        progress: number
        message: string | null
        attempts: number
        result: Job['result']
        error: Job['error']
      }
    }

export type GenerateRequest = Omit<RequestBody<'/v1/models/{name}/generate', 'post'>, 'stream'>
type Generated = ResponseBody<'/v1/models/{name}/generate', 'post'>

/** A streamed generation: each token as it is produced, then one `done`. */
export type GenerationEvent =
  | { type: 'token'; text: string }
  | ({ type: 'done' } & Omit<Generated, 'text'>)

export interface OrderFlowClientOptions {
  /**
   * Where the API answers, without `/v1`: `https://orders.example.com`. In a browser the
   * default, `''`, is the page's own origin.
   */
  baseUrl?: string
  /** Calls are made as this API key (`X-API-Key`) unless a user has signed in. */
  apiKey?: string
  /** Told when a session starts, its tokens rotate, or it ends (`false`). */
  onSessionChange?: (signedIn: boolean) => void
  /** The fetch to send requests with; the global one by default. */
  fetch?: (request: Request) => Promise<Response>
}

export interface FollowJobOptions {
  signal?: AbortSignal
  /** Start after this event (a previous stream's last `id`); from the first by default. */
  lastEventId?: number
}

export interface GenerateOptions {
  signal?: AbortSignal
  /** Pin a version instead of the active one. */
  version?: string
}

export interface OrderFlowClient {
  /** Typed calls for every operation of the API; they raise `ApiError` on failure. */
  readonly api: ApiClient
  /** True between a successful sign-in and the sign-out or the end of the session. */
  readonly signedIn: boolean
  /**
   * Signs in with the OAuth 2.0 password grant. The tokens stay in this object's memory
   * only; a wrong password raises an `ApiError` with code `INVALID_GRANT`.
   */
  signIn(username: string, password: string): Promise<void>
  /**
   * Finishes a single sign-on: redeems the one-time `code` the service sent the browser back
   * with (`grant_type=authorization_code`), with the `redirectUri` the sign-in started with
   * and the PKCE verifier of the challenge it sent. A spent or expired code raises an
   * `ApiError` with code `INVALID_GRANT`.
   */
  signInWithCode(
    code: string,
    options: { redirectUri: string; codeVerifier?: string },
  ): Promise<void>
  /** Revokes the refresh token (and every token rotated from it), then forgets the session. */
  signOut(): Promise<void>
  /**
   * An authenticated `fetch` for what the typed calls do not cover (downloads, streams):
   * `path` is relative to `baseUrl`. Refreshes like the typed calls and raises `ApiError`.
   */
  fetch(path: string, init?: RequestInit): Promise<Response>
  /**
   * The headers that authenticate a request now, for transports other than fetch (an
   * XMLHttpRequest that reports upload progress): on a 401, `refresh()` and send again.
   */
  authHeaders(): Record<string, string>
  /**
   * Renews the access token now, sharing a refresh already under way. Raises
   * `SessionExpiredError` when there is no session or its refresh token is refused.
   */
  refresh(): Promise<void>
  /**
   * A job's events (Server-Sent Events) until it ends. A stream that drops before the job
   * ends is resumed after the last event seen (`Last-Event-ID`), so none is missed or repeated.
   */
  followJob(jobId: string, options?: FollowJobOptions): AsyncGenerator<JobEvent>
  /** Streams a text generation: `token` events, then `done`. Abort `signal` to stop it. */
  generate(
    model: string,
    request: GenerateRequest,
    options?: GenerateOptions,
  ): AsyncGenerator<GenerationEvent>
}

interface Session {
  accessToken: string
  refreshToken: string
}

const FINISHED_JOB: ReadonlySet<string> = new Set(['succeeded', 'failed', 'cancelled'])
/** How long a dropped job stream waits before it resumes. */
const RESUME_DELAY_MS = 500

const formBody = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
})

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted()
    const timer = setTimeout(done, ms)
    function done() {
      signal?.removeEventListener('abort', stop)
      resolve()
    }
    function stop() {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', stop, { once: true })
  })
}

export function createOrderFlowClient(options: OrderFlowClientOptions = {}): OrderFlowClient {
  const baseUrl = (options.baseUrl ?? '').replace(/\/+$/, '')
  const send = options.fetch ?? ((request: Request) => globalThis.fetch(request))
  const notify = options.onSessionChange ?? (() => {})

  let session: Session | undefined
  // Bumped by every sign-in and sign-out, so a refresh that was under way when one
  // happened cannot bring the old session back.
  let epoch = 0
  let refreshing: Promise<void> | undefined

  const url = (path: string) => `${baseUrl}${path}`

  function startSession(tokens: Tokens) {
    epoch += 1
    session = { accessToken: tokens.access_token, refreshToken: tokens.refresh_token }
    notify(true)
  }

  function endSession() {
    epoch += 1
    const was = session !== undefined
    session = undefined
    refreshing = undefined
    if (was) notify(false)
  }

  async function requestTokens(fields: Record<string, string>): Promise<Tokens> {
    const response = await send(new Request(url('/v1/auth/token'), formBody(fields)))
    if (!response.ok) throw await errorFromResponse(response)
    return (await response.json()) as Tokens
  }

  async function refresh(current: Session): Promise<void> {
    const started = epoch
    let tokens: Tokens
    try {
      tokens = await requestTokens({
        grant_type: 'refresh_token',
        refresh_token: current.refreshToken,
      })
    } catch (error) {
      // A refused refresh token ends the session; an outage does not: the next call retries.
      if (error instanceof ApiError && (error.status === 400 || error.status === 401)) {
        if (epoch === started) endSession()
        throw new SessionExpiredError(error.detail, { cause: error })
      }
      throw error
    }
    // Refresh tokens rotate: the one just used is spent, the answer carries the next.
    if (epoch === started && session === current) {
      session = { accessToken: tokens.access_token, refreshToken: tokens.refresh_token }
      notify(true)
    }
  }

  /**
   * The access token to retry with after `rejected` was refused: one refresh at a time,
   * shared by every call that was refused meanwhile; none when another call already
   * replaced the token.
   */
  async function renewedToken(rejected: string): Promise<string> {
    if (session && session.accessToken === rejected) {
      const current = session
      refreshing ??= refresh(current).finally(() => {
        refreshing = undefined
      })
      await refreshing
    }
    if (!session) throw new SessionExpiredError('The session has ended; sign in again.')
    return session.accessToken
  }

  function authorize(request: Request, accessToken: string | undefined): Request {
    if (accessToken) request.headers.set('authorization', `Bearer ${accessToken}`)
    else if (options.apiKey) request.headers.set('x-api-key', options.apiKey)
    return request
  }

  async function succeeded(response: Response): Promise<Response> {
    if (response.ok || response.status === 304) return response
    throw await errorFromResponse(response)
  }

  /**
   * Every call of the client goes through here: it authenticates the request and, when
   * an access token is refused (expired, or its user's sessions were revoked), refreshes
   * once and sends the request again, once.
   */
  async function authenticatedFetch(request: Request): Promise<Response> {
    const accessToken = session?.accessToken
    // Kept before the body is sent: a retry needs it whole.
    const retry = accessToken ? request.clone() : undefined
    const response = await send(authorize(request, accessToken))
    if (response.status !== 401 || !accessToken || !retry) return succeeded(response)
    await response.body?.cancel()
    return succeeded(await send(authorize(retry, await renewedToken(accessToken))))
  }

  const api = createClient({
    baseUrl,
    fetch: authenticatedFetch,
  }) as unknown as ApiClient

  /**
   * Revokes the session's refresh token. Not a retried typed call: should the access token
   * have expired, the refresh rotates the refresh token, and the one to revoke is the new one.
   */
  async function revoke(): Promise<void> {
    for (let attempt = 0; ; attempt += 1) {
      const current = session
      if (!current) return
      const request = new Request(url('/v1/auth/revoke'), formBody({ token: current.refreshToken }))
      const response = await send(authorize(request, current.accessToken))
      if (response.status !== 401 || attempt > 0) {
        await succeeded(response)
        return
      }
      await response.body?.cancel()
      await renewedToken(current.accessToken)
    }
  }

  async function* followJob(
    jobId: string,
    { signal, lastEventId }: FollowJobOptions = {},
  ): AsyncGenerator<JobEvent> {
    let last = lastEventId
    for (;;) {
      const headers: Record<string, string> = { accept: 'text/event-stream' }
      if (last !== undefined) headers['last-event-id'] = String(last)
      const response = await authenticatedFetch(
        new Request(url(`/v1/jobs/${encodeURIComponent(jobId)}/events`), { headers, signal }),
      )
      let received = 0
      try {
        for await (const message of readEventStream(response, signal)) {
          const event = {
            id: Number(message.id),
            event: message.event,
            data: JSON.parse(message.data),
          } as JobEvent
          received += 1
          last = event.id
          yield event
          if (event.event === 'status' && FINISHED_JOB.has(event.data.status)) return
        }
      } catch (error) {
        if (signal?.aborted) throw error
        // The connection broke mid-stream: resumed below, like a stream that ended early.
      }
      // A stream that ends with nothing new belongs to a job that has ended already.
      if (received === 0) return
      await sleep(RESUME_DELAY_MS, signal)
    }
  }

  async function* generate(
    model: string,
    request: GenerateRequest,
    { signal, version }: GenerateOptions = {},
  ): AsyncGenerator<GenerationEvent> {
    const query = version ? `?version=${encodeURIComponent(version)}` : ''
    const response = await authenticatedFetch(
      new Request(url(`/v1/models/${encodeURIComponent(model)}/generate${query}`), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ ...request, stream: true }),
        signal,
      }),
    )
    for await (const message of readEventStream(response, signal)) {
      const data = JSON.parse(message.data)
      if (message.event === 'token') yield { type: 'token', text: data.text }
      else if (message.event === 'done') yield { type: 'done', ...data }
      // A failure after the stream began arrives as its last event, a problem document.
      else if (message.event === 'error') throw new ApiError(data)
    }
  }

  return {
    api,
    get signedIn() {
      return session !== undefined
    },
    async signIn(username, password) {
      const tokens = await requestTokens({ grant_type: 'password', username, password })
      startSession(tokens)
    },
    async signInWithCode(code, { redirectUri, codeVerifier }) {
      const tokens = await requestTokens({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        ...(codeVerifier === undefined ? {} : { code_verifier: codeVerifier }),
      })
      startSession(tokens)
    },
    async signOut() {
      const started = epoch
      try {
        await revoke()
      } catch (error) {
        // A session that had already ended has nothing left to revoke.
        if (!(error instanceof SessionExpiredError)) throw error
      } finally {
        // Unless someone signed in again meanwhile: that session is not this one.
        if (epoch === started) endSession()
      }
    },
    fetch: (path, init) => authenticatedFetch(new Request(url(path), init)),
    authHeaders(): Record<string, string> {
      if (session) return { authorization: `Bearer ${session.accessToken}` }
      if (options.apiKey) return { 'x-api-key': options.apiKey }
      return {}
    },
    async refresh() {
      if (!session) throw new SessionExpiredError('No one is signed in.')
      await renewedToken(session.accessToken)
    },
    followJob,
    generate,
  }
}
