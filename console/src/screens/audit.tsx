import { useState } from 'react'
import { Choice } from '../components/fields.js'
import { Pager } from '../components/pager.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { formatTime } from '../lib/format.js'
import { useSession } from '../lib/session.js'
import type { AuditEvent } from '../lib/types.js'
import { useLoad } from '../lib/use-load.js'

type Action = AuditEvent['action']
type ResourceType = AuditEvent['resource_type']
const ACTIONS: readonly Action[] = [
  'create',
  'update',
  'delete',
  'status_change',
  'sign_in',
  'sign_in_failed',
  'token_refresh',
  'refresh_token_reused',
  'sign_out',
]
const RESOURCES: readonly ResourceType[] = [
  'customer',
  'product',
  'order',
  'user',
  'api_key',
  'model',
  'session',
  'user_identity',
]

export function AuditScreen() {
  const { api } = useSession()
  const [action, setAction] = useState<Action | ''>('')
  const [resource, setResource] = useState<ResourceType | ''>('')
  const [page, setPage] = useState(1)
  const events = useLoad(
    async (signal) =>
      (
        await api.GET('/v1/audit-events', {
          params: {
            query: {
              action: action || undefined,
              resource_type: resource || undefined,
              page,
              page_size: 25,
            },
          },
          signal,
        })
      ).data,
    [api, action, resource, page],
  )
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <div className="filters">
        <Choice
          label="Action"
          name="action"
          value={action}
          options={[{ id: '', label: 'Any action' }, ...ACTIONS.map((a) => ({ id: a, label: a }))]}
          onChange={(value) => {
            setAction(value)
            setPage(1)
          }}
        />
        <Choice
          label="Resource"
          name="resource_type"
          value={resource}
          options={[
            { id: '', label: 'Any resource' },
            ...RESOURCES.map((r) => ({ id: r, label: r })),
          ]}
          onChange={(value) => {
            setResource(value)
            setPage(1)
          }}
        />
      </div>
      <ProblemAlert error={events.error} />
      <ScrollRegion label="Audit events">
        <table aria-busy={events.loading}>
          <caption className="visually-hidden">Audit events</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
              <th scope="col">Changes</th>
            </tr>
          </thead>
          <tbody>
            {events.data?.items.map((event) => (
              <tr key={event.id}>
                <td>{formatTime(event.at)}</td>
                <td>{actorName(event.actor)}</td>
                <td>{event.action}</td>
                <td>
                  {event.resource_type} {event.resource_id.slice(0, 8)}
                </td>
                <td>
                  <code className="changes">{JSON.stringify(event.changes)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollRegion>
      {events.data ? (
        <Pager
          page={events.data.page}
          totalPages={events.data.total_pages}
          total={events.data.total}
          onPage={setPage}
        />
      ) : null}
    </section>
  )
}

function actorName(actor: unknown): string {
  const a = actor as { email?: string; type?: string; id?: string } | null
  return a?.email ?? a?.type ?? a?.id?.slice(0, 8) ?? '—'
}
