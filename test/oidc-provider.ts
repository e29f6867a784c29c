import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, type JWK } from 'jose'
import Provider from 'oidc-provider'
import type { TestApp } from './helpers.js'

/** What the test provider says about one person. */
export interface TestAccount {
  sub: string
  email?: string
  email_verified?: boolean
  name?: string
  roles?: string[]
}

export interface TestProviderOptions {
  /** The relying party's callback, registered for the browser client. */
  redirectUri: string
  postLogoutRedirectUris?: string[]
  /** The client-credentials clients and the app roles their tokens carry. */
  serviceClients?: Record<string, string[]>
  /** Publish an end-session endpoint (RP-initiated logout); Google publishes none. */
  endSession?: boolean
}

export const BROWSER_CLIENT = {
  id: 'orderflow-console',
  secret: 'a client secret of the test provider',
}
/** A public client: no secret, PKCE alone (token_endpoint_auth_method none). */
export const PUBLIC_CLIENT_ID = 'orderflow-public'
export const SERVICE_CLIENT_SECRET = 'a service secret of the test provider'
/** The resource (audience) the test provider issues client-credentials tokens for by default. */
export const API_AUDIENCE = 'api://orderflow'

export interface SigningKey {
  kid: string
  privateJwk: JWK
}

async function newSigningKey(kid: string): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  return { kid, privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' } }
}

/**
 * A real OpenID provider (panva's certified oidc-provider) on a loopback port, with its
 * development login and consent pages, a browser client, client-credentials clients whose
 * JWT access tokens carry `roles`, and keys the test can rotate. Accounts are added by the
 * test; the login page accepts any password.
 */
export async function startTestProvider(options: TestProviderOptions) {
  const accounts = new Map<string, TestAccount>()
  let keys = [await newSigningKey('key-1')]
  let jwksRequests = 0
  let current: Provider | undefined
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined

  const server = createServer((req, res) => {
    if (req.url?.startsWith('/jwks')) jwksRequests++
    handler?.(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const serviceClients = options.serviceClients ?? {}

  function build(): void {
    current = new Provider(issuer, {
      clients: [
        {
          client_id: BROWSER_CLIENT.id,
          client_secret: BROWSER_CLIENT.secret,
          redirect_uris: [options.redirectUri],
          post_logout_redirect_uris: options.postLogoutRedirectUris ?? [],
          grant_types: ['authorization_code'],
          response_types: ['code'],
        },
        {
          client_id: PUBLIC_CLIENT_ID,
          token_endpoint_auth_method: 'none',
          redirect_uris: [options.redirectUri],
          grant_types: ['authorization_code'],
          response_types: ['code'],
        },
        ...Object.keys(serviceClients).map((clientId) => ({
          client_id: clientId,
          client_secret: SERVICE_CLIENT_SECRET,
          grant_types: ['client_credentials'],
          redirect_uris: [],
          response_types: [],
        })),
      ],
      jwks: { keys: keys.map((key) => key.privateJwk) },
      findAccount: async (_ctx, id) => {
        const account = accounts.get(id)
        if (!account) return undefined
        return { accountId: id, claims: async () => ({ ...account }) }
      },
      claims: {
        openid: ['sub'],
        email: ['email', 'email_verified'],
        profile: ['name'],
        roles: ['roles'],
      },
      scopes: ['openid', 'email', 'profile', 'roles'],
      // Like Entra ID and Keycloak: the requested claims travel in the ID token itself.
      conformIdTokenClaims: false,
      features: {
        devInteractions: { enabled: true },
        clientCredentials: { enabled: true },
        rpInitiatedLogout: { enabled: options.endSession ?? true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => API_AUDIENCE,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, resource) => ({
            scope: 'api',
            audience: resource,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          }),
        },
      },
      extraTokenClaims: (_ctx, token) => {
        const clientId = (token as { clientId?: string }).clientId
        const roles = clientId ? serviceClients[clientId] : undefined
        return roles ? { roles } : undefined
      },
      pkce: { required: () => true },
      // Set, so the provider does not print a notice for each default it falls back on.
      ttl: {
        AccessToken: 600,
        AuthorizationCode: 60,
        ClientCredentials: 600,
        Grant: 3600,
        IdToken: 600,
        Interaction: 600,
        Session: 3600,
      },
      cookies: { keys: ['a cookie key of the test provider'] },
    })
    handler = current.callback()
  }
  build()

  return {
    issuer,
    get jwksRequests() {
      return jwksRequests
    },
    get signingKey(): SigningKey {
      return keys[0] as SigningKey
    },
    addAccount(login: string, account: TestAccount) {
      accounts.set(login, account)
    },
    /** Signs with a new key from now on; the old one is no longer published. */
    async rotateKeys(kid: string) {
      keys = [await newSigningKey(kid)]
      build()
    },
    /** A client-credentials access token, for `resource` (the API's audience by default). */
    async clientCredentialsToken(clientId: string, resource = API_AUDIENCE): Promise<string> {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${clientId}:${SERVICE_CLIENT_SECRET}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'api' }),
      })
      const body = (await response.json()) as { access_token?: string }
      if (!response.ok || !body.access_token) {
        throw new Error(`client credentials refused: ${JSON.stringify(body)}`)
      }
      return body.access_token
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export type TestProvider = Awaited<ReturnType<typeof startTestProvider>>

interface BrowserResponse {
  status: number
  url: string
  location?: string
  body: string
  contentType: string
}

/**
 * A browser, as far as a sign-in needs one: it follows redirects, keeps cookies per origin,
 * and sends requests for `appOrigin` to the app through `inject`, the rest over HTTP.
 */
export function createBrowser(t: TestApp, appOrigin: string) {
  const jars = new Map<string, Map<string, string>>()

  function remember(origin: string, setCookies: string[]) {
    const jar = jars.get(origin) ?? new Map<string, string>()
    jars.set(origin, jar)
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';')
      const index = pair.indexOf('=')
      const name = pair.slice(0, index).trim()
      const value = pair.slice(index + 1).trim()
      const expired = attributes.some((attribute) =>
        /^\s*(max-age=0|expires=thu, 01 jan 1970)/i.test(attribute),
      )
      if (expired || value === '') jar.delete(name)
      else jar.set(name, value)
    }
  }

  function cookieHeader(origin: string): string {
    return [...(jars.get(origin) ?? new Map()).entries()].map(([k, v]) => `${k}=${v}`).join('; ')
  }

  async function request(
    url: string,
    init: { method?: string; form?: Record<string, string> } = {},
  ): Promise<BrowserResponse> {
    const target = new URL(url)
    const method = init.method ?? 'GET'
    const body = init.form ? new URLSearchParams(init.form).toString() : undefined
    const headers: Record<string, string> = { cookie: cookieHeader(target.origin) }
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded'
    if (target.origin === appOrigin) {
      const response = await t.app.inject({
        method: method as 'GET' | 'POST',
        url: target.pathname + target.search,
        headers,
        payload: body,
      })
      const setCookie = response.headers['set-cookie']
      remember(target.origin, setCookie === undefined ? [] : [setCookie].flat())
      return {
        status: response.statusCode,
        url,
        location: response.headers.location as string | undefined,
        body: response.body,
        contentType: String(response.headers['content-type'] ?? ''),
      }
    }
    const response = await fetch(url, { method, headers, body, redirect: 'manual' })
    remember(target.origin, response.headers.getSetCookie())
    return {
      status: response.status,
      url,
      location: response.headers.get('location') ?? undefined,
      body: await response.text(),
      contentType: response.headers.get('content-type') ?? '',
    }
  }

  return {
    request,
    cookies: (origin: string) => jars.get(origin) ?? new Map<string, string>(),
    /**
     * Follows redirects from `url` and fills the provider's login (as `login`) and consent
     * forms, or cancels at the login page with `abort`, until a response comes back from the
     * app's callback; returns that response.
     */
    async signIn(url: string, login: string, options: { abort?: boolean } = {}) {
      let response = await request(url)
      for (let step = 0; step < 20; step++) {
        if (response.url.startsWith(appOrigin) && response.url.includes('/callback')) {
          return response
        }
        if (response.location) {
          response = await request(new URL(response.location, response.url).href)
          continue
        }
        const action = /<form[^>]*action="([^"]+)"/.exec(response.body)?.[1]
        const prompt = /name="prompt" value="([a-z]+)"/.exec(response.body)?.[1]
        if (response.status !== 200 || !action || !prompt) {
          throw new Error(
            `sign-in stuck at ${response.url}: ${response.status} ${response.body.slice(0, 300)}`,
          )
        }
        const actionUrl = new URL(action.replaceAll('&amp;', '&'), response.url).href
        if (prompt === 'login' && options.abort) {
          response = await request(`${actionUrl}/abort`)
          continue
        }
        response = await request(actionUrl, {
          method: 'POST',
          form: prompt === 'login' ? { prompt, login, password: 'any' } : { prompt },
        })
      }
      throw new Error('sign-in did not come back to the app')
    },
  }
}
