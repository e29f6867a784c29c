import { useState } from 'react'
import { Link } from 'wouter'
import { Choice, TextInput } from '../components/fields.js'
import { Pager } from '../components/pager.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { formatMoney, formatTime } from '../lib/format.js'
import { ORDER_STATUSES } from '../lib/orders.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { OrderStatus } from '../lib/types.js'
import { useLoad } from '../lib/use-load.js'

const SORTS = [
  { id: '-created_at', label: 'Newest first' },
  { id: 'created_at', label: 'Oldest first' },
  { id: '-total', label: 'Largest total' },
  { id: 'total', label: 'Smallest total' },
  { id: 'status', label: 'Status' },
] as const
type Sort = (typeof SORTS)[number]['id']

export function OrdersScreen() {
  const { api } = useSession()
  const can = usePermissions()
  const [status, setStatus] = useState<OrderStatus | ''>('')
  const [q, setQ] = useState('')
  const [sort, setSort] = useState<Sort>('-created_at')
  const [page, setPage] = useState(1)
  const orders = useLoad(
    async (signal) =>
      (
        await api.GET('/v1/orders', {
          params: {
            query: { page, page_size: 20, sort, status: status || undefined, q: q || undefined },
          },
          signal,
        })
      ).data,
    [api, page, sort, status, q],
  )
  const refilter =
    <T,>(set: (value: T) => void) =>
    (value: T) => {
      set(value)
      setPage(1)
    }

  return (
    <section aria-labelledby="orders-title">
      <div className="title-row">
        <h1 id="orders-title">Orders</h1>
        {can.placeOrders ? (
          <Link href="/orders/new" className="button primary">
            Place an order
          </Link>
        ) : null}
      </div>
      <div className="filters">
        <TextInput label="Search" name="q" type="search" value={q} onChange={refilter(setQ)} />
        <Choice
          label="Status"
          name="status"
          value={status}
          options={[
            { id: '', label: 'Any status' },
            ...ORDER_STATUSES.map((s) => ({ id: s, label: s })),
          ]}
          onChange={refilter(setStatus)}
        />
        <Choice
          label="Sort"
          name="sort"
          value={sort}
          options={SORTS}
          onChange={(value) => refilter(setSort)((value || '-created_at') as Sort)}
        />
      </div>
      <ProblemAlert error={orders.error} />
      <ScrollRegion label="Orders">
        <table aria-busy={orders.loading}>
          <caption className="visually-hidden">Orders</caption>
          <thead>
            <tr>
              <th scope="col">Order</th>
              <th scope="col">Customer</th>
              <th scope="col">Status</th>
              <th scope="col" className="num">
                Total
              </th>
              <th scope="col">Placed</th>
            </tr>
          </thead>
          <tbody>
            {orders.data?.items.map((order) => (
              <tr key={order.id}>
                <td>
                  <Link href={`/orders/${order.id}`}>{order.id.slice(0, 8)}</Link>
                </td>
                <td>{order.customer_name}</td>
                <td>
                  <span className={`status status-${order.status}`}>{order.status}</span>
                </td>
                <td className="num">{formatMoney(order.total)}</td>
                <td>{formatTime(order.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {orders.data && orders.data.items.length === 0 ? <p>No orders match.</p> : null}
      </ScrollRegion>
      {orders.data ? (
        <Pager
          page={orders.data.page}
          totalPages={orders.data.total_pages}
          total={orders.data.total}
          onPage={setPage}
        />
      ) : null}
    </section>
  )
}
