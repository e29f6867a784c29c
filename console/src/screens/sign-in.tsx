import { type FormEvent, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { TextInput } from '../components/fields.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { useSessionState } from '../lib/session.js'

export function SignInScreen() {
  const { signIn } = useSessionState()
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)

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
    </main>
  )
}
