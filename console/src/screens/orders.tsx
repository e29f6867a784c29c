import { Link } from 'wouter'
import { Choice } from '../components/fields.js'
import { ListTable, SearchField, TitleRow } from '../components/list-table.js'
import { formatMoney, formatTime } from '../lib/format.js'
import { ORDER_STATUSES } from '../lib/orders.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { OrderStatus } from '../lib/types.js'
import { usePagedList } from '../lib/use-paged-list.js'

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
  const orders = usePagedList(
    { q: '', status: '' as OrderStatus | '', sort: '-created_at' as Sort },
    async ({ q, status, sort, page }, signal) =>
      (
        await api.GET('/v1/orders', {
          params: {
            query: { page, page_size: 20, sort, status: status || undefined, q: q || undefined },
          },
          signal,
        })
      ).data,
  )

  return (
    <section aria-labelledby="orders-title">
      <TitleRow id="orders-title" title="Orders">
        {can.placeOrders ? (
          <Link href="/orders/new" className="button primary">
            Place an order
          </Link>
        ) : null}
      </TitleRow>
      <div className="filters">
        <SearchField value={orders.filters.q} onChange={(q) => orders.setFilter('q', q)} />
        <Choice
          label="Status"
          name="status"
          value={orders.filters.status}
          options={[
            { id: '', label: 'Any status' },
            ...ORDER_STATUSES.map((s) => ({ id: s, label: s })),
          ]}
          onChange={(status) => orders.setFilter('status', status)}
        />
        <Choice
          label="Sort"
          name="sort"
          value={orders.filters.sort}
          options={SORTS}
          onChange={(sort) => orders.setFilter('sort', sort || '-created_at')}
        />
      </div>
      <ListTable
        label="Orders"
        list={orders}
        empty="No orders match."
        columns={[
          { label: 'Order' },
          { label: 'Customer' },
          { label: 'Status' },
          { label: 'Total', numeric: true },
          { label: 'Placed' },
        ]}
      >
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
      </ListTable>
    </section>
  )
}
