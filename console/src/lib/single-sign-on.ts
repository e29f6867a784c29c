/**
 * The console's side of single sign-on: it starts the service's sign-in with a PKCE
 * challenge and a state of its own, and on the way back redeems the one-time code.
 * Only the verifier and the state wait in sessionStorage, across the trip to the provider,
 * which leaves this page; the tokens stay in memory as with a password sign-in.
 */
const PENDING_KEY = 'orderflow.single-sign-on'

/** Where the service sends the browser back with the code; always an allowed target. */
export function consoleRedirectUri(): string {
  return `${window.location.origin}/console/`
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/, '')
}

const randomText = () => base64url(crypto.getRandomValues(new Uint8Array(32)))

/** Leaves the page for the provider, through the service's login URL for it. */
export async function startSingleSignOn(loginUrl: string): Promise<void> {
  const verifier = randomText()
  const state = randomText()
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ state, verifier }))
  const url = new URL(loginUrl, window.location.origin)
  url.search = new URLSearchParams({
    redirect_uri: consoleRedirectUri(),
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
  }).toString()
  window.location.assign(url.href)
}

export type ReturnedSignOn =
  | { kind: 'code'; code: string; verifier: string }
  | { kind: 'mismatch' }
  | undefined

/**
 * The sign-on this page came back from, taken once: the code and state leave the address
 * bar and the pending verifier leaves storage, so a reload or a second call finds nothing.
 * A state this tab did not send (another tab's sign-in, a forged link) is a mismatch.
 */
export function takeReturnedSignOn(): ReturnedSignOn {
  const params = new URLSearchParams(window.location.search)
  const code = params.get('code')
  if (!code) return undefined
  const pending = sessionStorage.getItem(PENDING_KEY)
  sessionStorage.removeItem(PENDING_KEY)
  window.history.replaceState(null, '', window.location.pathname)
  const { state, verifier } = (pending ? JSON.parse(pending) : {}) as {
    state?: string
    verifier?: string
  }
  if (!state || !verifier || params.get('state') !== state) return { kind: 'mismatch' }
  return { kind: 'code', code, verifier }
}
