import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'

/**
 * What a sign-in in progress must remember between the redirect to the provider and the
 * callback, kept in the browser that started it (no server state, any instance answers).
 */
export interface LoginState {
  provider: string
  state: string
  nonce: string
  codeVerifier: string
  /** Where the front end wants the one-time code (an allowed redirect URI). */
  clientRedirectUri: string
  /**
   * Whether the front end named `clientRedirectUri` itself (rather than taking the default):
   * then it must name it again to redeem the code (RFC 6749 §4.1.3).
   */
  clientRedirectUriNamed?: boolean
  /** The front end's own `state`, handed back with the code. */
  clientState?: string
  /** The front end's own PKCE challenge (S256), checked when it redeems the code. */
  clientCodeChallenge?: string
  /** Seconds since the epoch after which the sign-in must start again. */
  expiresAt: number
}

/**
 * Seals the login state into a cookie value: base64url JSON and an HMAC-SHA256 over it,
 * with a key derived from the access-token secret for this use alone. The expiry sits
 * inside the signed part, because a cookie's own Max-Age is the browser's to honour. Not
 * encrypted: the browser holding it is the one signing in, and it learns nothing it could
 * use elsewhere (the PKCE verifier only works with the code the provider sends it anyway).
 */
export function createLoginStateSealer(secret: string) {
  const key = Buffer.from(
    hkdfSync('sha256', secret, Buffer.alloc(0), 'orderflow oidc login state', 32),
  )
  const mac = (data: string) => createHmac('sha256', key).update(data).digest()

  return {
    seal(state: LoginState): string {
      const data = Buffer.from(JSON.stringify(state)).toString('base64url')
      return `${data}.${mac(data).toString('base64url')}`
    },

    /** The state, when the value is one this service sealed and it has not expired. */
    open(value: string | undefined, nowSeconds: number): LoginState | undefined {
      const [data, signature, ...rest] = (value ?? '').split('.')
      if (!data || !signature || rest.length > 0) return undefined
      const given = Buffer.from(signature, 'base64url')
      const expected = mac(data)
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
      const state = JSON.parse(Buffer.from(data, 'base64url').toString()) as LoginState
      return state.expiresAt > nowSeconds ? state : undefined
    },
  }
}

export type LoginStateSealer = ReturnType<typeof createLoginStateSealer>
