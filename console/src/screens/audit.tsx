import { Choice } from '../components/fields.js'
import { ListTable } from '../components/list-table.js'
import { formatTime } from '../lib/format.js'
import { useSession } from '../lib/session.js'
import type { AuditEvent } from '../lib/types.js'
import { usePagedList } from '../lib/use-paged-list.js'

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
  const events = usePagedList(
    { action: '' as Action | '', resource: '' as ResourceType | '' },
    async ({ action, resource, page }, signal) =>
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
  )
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <div className="filters">
        <Choice
          label="Action"
          name="action"
          value={events.filters.action}
          options={[{ id: '', label: 'Any action' }, ...ACTIONS.map((a) => ({ id: a, label: a }))]}
          onChange={(action) => events.setFilter('action', action)}
        />
        <Choice
          label="Resource"
          name="resource_type"
          value={events.filters.resource}
          options={[
            { id: '', label: 'Any resource' },
            ...RESOURCES.map((r) => ({ id: r, label: r })),
          ]}
          onChange={(resource) => events.setFilter('resource', resource)}
        />
      </div>
      <ListTable
        label="Audit events"
        list={events}
        columns={[
          { label: 'When' },
          { label: 'Who' },
          { label: 'Action' },
          { label: 'Resource' },
          { label: 'Changes' },
        ]}
      >
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
      </ListTable>
    </section>
  )
}

function actorName(actor: unknown): string {
  const a = actor as { email?: string; type?: string; id?: string } | null
  return a?.email ?? a?.type ?? a?.id?.slice(0, 8) ?? '—'
}
