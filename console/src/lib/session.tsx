import { type ApiClient, createOrderFlowClient, type OrderFlowClient } from '@orderflow/client'
import { createContext, type ReactNode, useCallback, useContext, useMemo, useState } from 'react'
import { consoleRedirectUri } from './single-sign-on.js'
import type { Me, Role } from './types.js'

interface Session {
  me: Me
  api: ApiClient
  client: OrderFlowClient
  signOut: () => Promise<void>
}

interface SessionState {
  session: Session | null
  signIn: (email: string, password: string) => Promise<void>
  /** Finishes a single sign-on with the one-time code the service sent back. */
  signInWithCode: (code: string, codeVerifier: string) => Promise<void>
}

const SessionContext = createContext<SessionState | null>(null)

/**
 * Holds the signed-in session. Tokens live only inside the client object, in this page's
 * memory: nothing goes to localStorage, sessionStorage or cookies, so a reload signs out
 * and another tab knows nothing of them.
 */
export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(null)

  /** Starts a session on a new client once `authenticate` has signed it in. */
  const start = useCallback(async (authenticate: (client: OrderFlowClient) => Promise<void>) => {
    const client = createOrderFlowClient({
      baseUrl: window.location.origin,
      // A refresh that fails (revoked, reused, expired) ends the session on this page too.
      onSessionChange: (signedIn) => {
        if (!signedIn) setSession(null)
      },
    })
    await authenticate(client)
    const { data: me } = await client.api.GET('/v1/users/me')
    const signOut = async () => {
      try {
        await client.signOut()
      } finally {
        setSession(null)
      }
    }
    setSession({ me, api: client.api, client, signOut })
  }, [])

  const signIn = useCallback(
    (email: string, password: string) => start((client) => client.signIn(email, password)),
    [start],
  )
  const signInWithCode = useCallback(
    (code: string, codeVerifier: string) =>
      start((client) =>
        client.signInWithCode(code, { redirectUri: consoleRedirectUri(), codeVerifier }),
      ),
    [start],
  )

  const value = useMemo(
    () => ({ session, signIn, signInWithCode }),
    [session, signIn, signInWithCode],
  )
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>
}

export function useSessionState(): SessionState {
  const state = useContext(SessionContext)
  if (!state) throw new Error('useSessionState outside SessionProvider')
  return state
}

/** The signed-in session; screens render only inside the signed-in layout. */
export function useSession(): Session {
  const { session } = useSessionState()
  if (!session) throw new Error('useSession without a session')
  return session
}

const WRITERS: readonly Role[] = ['admin', 'user']

/** What the caller's role may do, mirroring the service's route guards (which still decide). */
export function usePermissions() {
  const { me } = useSession()
  const admin = me.role === 'admin'
  const writer = WRITERS.includes(me.role)
  return {
    admin,
    writer,
    manageProducts: admin,
    manageCustomers: writer,
    placeOrders: writer,
    moveOrders: writer,
    manageModels: admin,
    manageDatasets: writer,
    startJobs: writer,
    readAudit: admin,
  }
}
