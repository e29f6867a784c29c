import { type FormEvent, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { Choice, TextInput } from '../components/fields.js'
import { FormModal } from '../components/modal.js'
import { Pager } from '../components/pager.js'
import { fieldErrorsOf, ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { Customer } from '../lib/types.js'
import { useLoad } from '../lib/use-load.js'

type Tier = Customer['tier']
const TIERS = [
  { id: 'free', label: 'free' },
  { id: 'pro', label: 'pro' },
  { id: 'enterprise', label: 'enterprise' },
] as const

export function CustomersScreen() {
  const { api } = useSession()
  const can = usePermissions()
  const [q, setQ] = useState('')
  const [tier, setTier] = useState<Tier | ''>('')
  const [page, setPage] = useState(1)
  const [editing, setEditing] = useState<Customer | 'new' | null>(null)
  const [error, setError] = useState<unknown>(null)
  const customers = useLoad(
    async (signal) =>
      (
        await api.GET('/v1/customers', {
          params: { query: { q: q || undefined, tier: tier || undefined, page, page_size: 20 } },
          signal,
        })
      ).data,
    [api, q, tier, page],
  )

  const setActive = async (customer: Customer, isActive: boolean) => {
    setError(null)
    try {
      await api.PATCH('/v1/customers/{id}', {
        params: { path: { id: customer.id } },
        body: { is_active: isActive },
      })
      customers.reload()
    } catch (failure) {
      setError(failure)
    }
  }

  return (
    <section aria-labelledby="customers-title">
      <div className="title-row">
        <h1 id="customers-title">Customers</h1>
        {can.manageCustomers ? (
          <Button className="primary" onPress={() => setEditing('new')}>
            New customer
          </Button>
        ) : null}
      </div>
      <div className="filters">
        <TextInput
          label="Search"
          name="q"
          type="search"
          value={q}
          onChange={(value) => {
            setQ(value)
            setPage(1)
          }}
        />
        <Choice
          label="Tier"
          name="tier"
          value={tier}
          options={[{ id: '', label: 'Any tier' }, ...TIERS]}
          onChange={(value) => {
            setTier(value)
            setPage(1)
          }}
        />
      </div>
      <ProblemAlert error={customers.error ?? error} />
      <ScrollRegion label="Customers">
        <table aria-busy={customers.loading}>
          <caption className="visually-hidden">Customers</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Email</th>
              <th scope="col">Tier</th>
              <th scope="col">Active</th>
              {can.manageCustomers ? (
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              ) : null}
            </tr>
          </thead>
          <tbody>
            {customers.data?.items.map((customer) => (
              <tr key={customer.id}>
                <td>{customer.name}</td>
                <td>{customer.email}</td>
                <td>{customer.tier}</td>
                <td>{customer.is_active ? 'yes' : 'no'}</td>
                {can.manageCustomers ? (
                  <td className="row-actions">
                    <Button
                      onPress={() => setEditing(customer)}
                      aria-label={`Edit ${customer.name}`}
                    >
                      Edit
                    </Button>
                    <Button
                      className="quiet"
                      onPress={() => void setActive(customer, !customer.is_active)}
                      aria-label={`${customer.is_active ? 'Deactivate' : 'Activate'} ${customer.name}`}
                    >
                      {customer.is_active ? 'Deactivate' : 'Activate'}
                    </Button>
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollRegion>
      {customers.data ? (
        <Pager
          page={customers.data.page}
          totalPages={customers.data.total_pages}
          total={customers.data.total}
          onPage={setPage}
        />
      ) : null}
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
  const [error, setError] = useState<unknown>(null)

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    const body = { name, email, tier }
    try {
      if (props.customer) {
        await api.PATCH('/v1/customers/{id}', {
          params: { path: { id: props.customer.id } },
          body,
        })
      } else {
        await api.POST('/v1/customers', { body })
      }
      props.onSaved()
    } catch (failure) {
      setError(failure)
    }
  }
  const errors = fieldErrorsOf(error)
  return (
    <FormModal
      title={props.customer ? `Edit ${props.customer.name}` : 'New customer'}
      isOpen
      onClose={props.onClose}
    >
      <Form onSubmit={submit} className="stack">
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
        {Object.keys(errors).length === 0 ? <ProblemAlert error={error} /> : null}
        <div className="actions">
          <Button type="submit" className="primary">
            Save
          </Button>
          <Button className="quiet" onPress={props.onClose}>
            Cancel
          </Button>
        </div>
      </Form>
    </FormModal>
  )
}
