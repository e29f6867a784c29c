import { createOrderFlowClient } from '@orderflow/client'
import { type FormEvent, useEffect, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { TextInput } from '../components/fields.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { useSessionState } from '../lib/session.js'
import { startSingleSignOn, takeReturnedSignOn } from '../lib/single-sign-on.js'

interface Provider {
  name: string
  display_name: string
  login_url: string
}

export function SignInScreen() {
  const { signIn, signInWithCode } = useSessionState()
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  const [providers, setProviders] = useState<Provider[]>([])

  useEffect(() => {
    const returned = takeReturnedSignOn()
    if (returned?.kind === 'mismatch') {
      setError(new Error('This sign-in was not started in this tab; sign in again.'))
    } else if (returned) {
      setBusy(true)
      signInWithCode(returned.code, returned.verifier).catch((failure: unknown) => {
        setError(failure)
        setBusy(false)
      })
    }
    // Without single sign-on the list is empty, and so is the row of buttons.
    createOrderFlowClient({ baseUrl: window.location.origin })
      .api.GET('/v1/auth/oidc', {})
      .then(({ data }) => setProviders(data.items))
      .catch(() => setProviders([]))
  }, [signInWithCode])

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await signIn(email, password)
    } catch (failure) {
      setError(failure)
      setBusy(false)
    }
  }

  const signOn = (provider: Provider) => {
    setBusy(true)
    setError(null)
    startSingleSignOn(provider.login_url).catch((failure: unknown) => {
      setError(failure)
      setBusy(false)
    })
  }

  return (
    <main id="main" className="sign-in">
      <h1>Sign in to OrderFlow</h1>
      <Form onSubmit={submit} className="card stack">
        <TextInput
          label="Email"
          name="email"
          type="email"
          autoComplete="username"
          value={email}
          onChange={setEmail}
          isRequired
        />
        <TextInput
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={setPassword}
          isRequired
        />
        <ProblemAlert error={error} />
        <Button type="submit" className="primary" isDisabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </Button>
      </Form>
      {providers.length > 0 ? (
        <section aria-label="Single sign-on" className="card stack">
          {providers.map((provider) => (
            <Button key={provider.name} isDisabled={busy} onPress={() => signOn(provider)}>
              Sign in with {provider.display_name}
            </Button>
          ))}
        </section>
      ) : null}
    </main>
  )
}
