import { useState } from 'react'
import { Button } from 'react-aria-components'
import { Link } from 'wouter'
import { ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { formatMoney, formatTime } from '../lib/format.js'
import { NEXT_STATUSES } from '../lib/orders.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { OrderStatus } from '../lib/types.js'
import { useLoad } from '../lib/use-load.js'

export function OrderScreen({ params }: { params: { id: string } }) {
  const { api } = useSession()
  const can = usePermissions()
  const order = useLoad(
    async (signal) =>
      (await api.GET('/v1/orders/{id}', { params: { path: { id: params.id } }, signal })).data,
    [api, params.id],
  )
  // The status history is the audit log's, which only admins may read.
  const history = useLoad(
    async (signal) =>
      can.readAudit
        ? (
            await api.GET('/v1/audit-events', {
              params: {
                query: { resource_type: 'order', resource_id: params.id, page_size: 100 },
              },
              signal,
            })
          ).data.items
        : [],
    [api, params.id, can.readAudit, order.data?.status],
  )
  const [moveError, setMoveError] = useState<unknown>(null)
  const [moving, setMoving] = useState(false)

  const move = async (status: OrderStatus) => {
    setMoving(true)
    setMoveError(null)
    try {
      await api.POST('/v1/orders/{id}/status', {
        params: { path: { id: params.id } },
        body: { status },
      })
      order.reload()
    } catch (error) {
      setMoveError(error)
    } finally {
      setMoving(false)
    }
  }

  if (order.error) return <ProblemAlert error={order.error} />
  if (!order.data) return <p aria-busy="true">Loading…</p>
  const o = order.data
  const next = NEXT_STATUSES[o.status]
  return (
    <section aria-labelledby="order-title">
      <p>
        <Link href="/orders">← Orders</Link>
      </p>
      <h1 id="order-title">Order {o.id.slice(0, 8)}</h1>
      <dl className="facts">
        <dt>Customer</dt>
        <dd>{o.customer_name}</dd>
        <dt>Status</dt>
        <dd>
          <span className={`status status-${o.status}`} data-testid="order-status">
            {o.status}
          </span>
        </dd>
        <dt>Total</dt>
        <dd>{formatMoney(o.total)}</dd>
        <dt>Placed</dt>
        <dd>{formatTime(o.created_at)}</dd>
        {o.notes ? (
          <>
            <dt>Notes</dt>
            <dd>{o.notes}</dd>
          </>
        ) : null}
      </dl>
      {can.moveOrders && next.length > 0 ? (
        <fieldset className="actions plain">
          <legend className="visually-hidden">Move the order</legend>
          {next.map((status) => (
            <Button
              key={status}
              className={status === 'cancelled' ? 'danger' : 'primary'}
              isDisabled={moving}
              onPress={() => void move(status)}
            >
              {status === 'cancelled' ? 'Cancel order' : `Mark ${status}`}
            </Button>
          ))}
        </fieldset>
      ) : null}
      <ProblemAlert error={moveError} />
      <h2>Items</h2>
      <ScrollRegion label="Items">
        <table>
          <thead>
            <tr>
              <th scope="col">Product</th>
              <th scope="col">SKU</th>
              <th scope="col" className="num">
                Quantity
              </th>
              <th scope="col" className="num">
                Unit price
              </th>
              <th scope="col" className="num">
                Line total
              </th>
            </tr>
          </thead>
          <tbody>
            {o.items.map((item) => (
              <tr key={item.id}>
                <td>{item.product_name}</td>
                <td>{item.sku}</td>
                <td className="num">{item.quantity}</td>
                <td className="num">{formatMoney(item.unit_price)}</td>
                <td className="num">{formatMoney(item.line_total)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollRegion>
      <h2>History</h2>
      {/* The audit log lists newest first; a history reads oldest first. */}
      {can.readAudit ? (
        <ol className="timeline" data-testid="order-history">
          {history.data?.toReversed().map((event) => (
            <li key={event.id}>
              <time dateTime={event.at}>{formatTime(event.at)}</time> {describe(event)}
            </li>
          ))}
        </ol>
      ) : (
        <p>The status history comes from the audit log, which admins read.</p>
      )}
    </section>
  )
}

function describe(event: { action: string; changes: Record<string, unknown> }): string {
  const status = event.changes.status as { before?: string; after?: string } | undefined
  if (event.action === 'status_change' && status && typeof status === 'object')
    return `${status.before ?? '?'} → ${status.after ?? '?'}`
  return event.action === 'create' ? 'placed' : event.action.replace('_', ' ')
}
