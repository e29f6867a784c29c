import { type FormEvent, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { TextInput } from '../components/fields.js'
import { fieldErrorsOf, ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { formatTime } from '../lib/format.js'
import { useSession } from '../lib/session.js'
import type { ApiKey } from '../lib/types.js'
import { useLoad } from '../lib/use-load.js'

export function ApiKeysScreen() {
  const { api } = useSession()
  const keys = useLoad(
    async (signal) => (await api.GET('/v1/api-keys', { signal })).data.items,
    [api],
  )
  const [name, setName] = useState('')
  const [created, setCreated] = useState<{ name: string; key: string } | null>(null)
  const [error, setError] = useState<unknown>(null)

  const create = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    try {
      const { data } = await api.POST('/v1/api-keys', { body: { name } })
      // The service stores only a hash: this is the one time the key can be shown.
      setCreated({ name: data.name, key: data.key })
      setName('')
      keys.reload()
    } catch (failure) {
      setError(failure)
    }
  }
  const revoke = async (key: ApiKey) => {
    setError(null)
    try {
      await api.DELETE('/v1/api-keys/{id}', { params: { path: { id: key.id } } })
      keys.reload()
    } catch (failure) {
      setError(failure)
    }
  }
  const errors = fieldErrorsOf(error)

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <Form onSubmit={create} className="card stack" aria-label="Create an API key">
        <TextInput
          label="Key name"
          name="name"
          value={name}
          onChange={setName}
          error={errors.name}
        />
        <Button type="submit" className="primary">
          Create key
        </Button>
      </Form>
      {created ? (
        <div className="card notice" role="status">
          <p>
            Key <strong>{created.name}</strong> created. Copy it now: it will not be shown again.
          </p>
          <code data-testid="new-key" className="secret">
            {created.key}
          </code>
          <Button className="quiet" onPress={() => setCreated(null)}>
            Done
          </Button>
        </div>
      ) : null}
      {Object.keys(errors).length === 0 ? <ProblemAlert error={error ?? keys.error} /> : null}
      <ScrollRegion label="Your API keys">
        <table>
          <caption className="visually-hidden">Your API keys</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.data?.map((key) => (
              <tr key={key.id}>
                <td>{key.name}</td>
                <td>
                  <code>{key.prefix}</code>
                </td>
                <td>{formatTime(key.created_at)}</td>
                <td>{formatTime(key.last_used_at)}</td>
                <td>
                  <Button
                    className="danger"
                    onPress={() => void revoke(key)}
                    aria-label={`Revoke ${key.name}`}
                  >
                    Revoke
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {keys.data?.length === 0 ? <p>No keys yet.</p> : null}
      </ScrollRegion>
    </section>
  )
}
