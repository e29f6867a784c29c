import { useState } from 'react'
import { Button } from 'react-aria-components'
import { EditDialog } from '../components/edit-dialog.js'
import { Choice, TextInput } from '../components/fields.js'
import { EditToggleActions, ListTable, SearchField, TitleRow } from '../components/list-table.js'
import { fieldErrorsOf } from '../components/problem-alert.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { Customer } from '../lib/types.js'
import { useAction } from '../lib/use-action.js'
import { usePagedList } from '../lib/use-paged-list.js'

type Tier = Customer['tier']
const TIERS = [
  { id: 'free', label: 'free' },
  { id: 'pro', label: 'pro' },
  { id: 'enterprise', label: 'enterprise' },
] as const

export function CustomersScreen() {
  const { api } = useSession()
  const can = usePermissions()
  const [editing, setEditing] = useState<Customer | 'new' | null>(null)
  const toggle = useAction()
  const customers = usePagedList(
    { q: '', tier: '' as Tier | '' },
    async ({ q, tier, page }, signal) =>
      (
        await api.GET('/v1/customers', {
          params: { query: { q: q || undefined, tier: tier || undefined, page, page_size: 20 } },
          signal,
        })
      ).data,
  )

  const setActive = (customer: Customer, isActive: boolean) =>
    toggle.run(async () => {
      await api.PATCH('/v1/customers/{id}', {
        params: { path: { id: customer.id } },
        body: { is_active: isActive },
      })
      customers.reload()
    })

  return (
    <section aria-labelledby="customers-title">
      <TitleRow id="customers-title" title="Customers">
        {can.manageCustomers ? (
          <Button className="primary" onPress={() => setEditing('new')}>
            New customer
          </Button>
        ) : null}
      </TitleRow>
      <div className="filters">
        <SearchField value={customers.filters.q} onChange={(q) => customers.setFilter('q', q)} />
        <Choice
          label="Tier"
          name="tier"
          value={customers.filters.tier}
          options={[{ id: '', label: 'Any tier' }, ...TIERS]}
          onChange={(tier) => customers.setFilter('tier', tier)}
        />
      </div>
      <ListTable
        label="Customers"
        list={customers}
        error={toggle.error}
        actions={can.manageCustomers}
        columns={[{ label: 'Name' }, { label: 'Email' }, { label: 'Tier' }, { label: 'Active' }]}
      >
        {customers.data?.items.map((customer) => (
          <tr key={customer.id}>
            <td>{customer.name}</td>
            <td>{customer.email}</td>
            <td>{customer.tier}</td>
            <td>{customer.is_active ? 'yes' : 'no'}</td>
            {can.manageCustomers ? (
              <EditToggleActions
                name={customer.name}
                active={customer.is_active}
                onEdit={() => setEditing(customer)}
                onToggle={() => void setActive(customer, !customer.is_active)}
              />
            ) : null}
          </tr>
        ))}
      </ListTable>
      {editing ? (
        <CustomerForm
          customer={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null)
            customers.reload()
          }}
        />
      ) : null}
    </section>
  )
}

function CustomerForm(props: {
  customer: Customer | null
  onClose: () => void
  onSaved: () => void
}) {
  const { api } = useSession()
  const [name, setName] = useState(props.customer?.name ?? '')
  const [email, setEmail] = useState(props.customer?.email ?? '')
  const [tier, setTier] = useState<Tier>(props.customer?.tier ?? 'free')
  const save = useAction()

  const submit = () =>
    void save.run(async () => {
      const body = { name, email, tier }
      if (props.customer) {
        await api.PATCH('/v1/customers/{id}', {
          params: { path: { id: props.customer.id } },
          body,
        })
      } else {
        await api.POST('/v1/customers', { body })
      }
      props.onSaved()
    })
  const errors = fieldErrorsOf(save.error)
  return (
    <EditDialog
      title={props.customer ? `Edit ${props.customer.name}` : 'New customer'}
      onClose={props.onClose}
      onSave={submit}
      error={save.error}
    >
      <TextInput label="Name" name="name" value={name} onChange={setName} error={errors.name} />
      <TextInput
        label="Email"
        name="email"
        type="email"
        value={email}
        onChange={setEmail}
        error={errors.email}
      />
      <Choice
        label="Tier"
        name="tier"
        value={tier}
        options={TIERS}
        onChange={(value) => setTier(value || 'free')}
        error={errors.tier}
      />
    </EditDialog>
  )
}
