import { type FormEvent, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { Link, useLocation } from 'wouter'
import { Choice, TextInput } from '../components/fields.js'
import { fieldErrorsOf, ProblemAlert } from '../components/problem-alert.js'
import { formatMoney } from '../lib/format.js'
import { useSession } from '../lib/session.js'
import type { Product } from '../lib/types.js'
import { useLoad } from '../lib/use-load.js'

interface Line {
  product: Product
  quantity: number
}

export function NewOrderScreen() {
  const { api } = useSession()
  const [, navigate] = useLocation()
  const [customerQuery, setCustomerQuery] = useState('')
  const [customerId, setCustomerId] = useState('')
  const [productQuery, setProductQuery] = useState('')
  const [lines, setLines] = useState<Line[]>([])
  const [notes, setNotes] = useState('')
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)

  const customers = useLoad(
    async (signal) =>
      (
        await api.GET('/v1/customers', {
          params: { query: { q: customerQuery || undefined, is_active: true, page_size: 20 } },
          signal,
        })
      ).data.items,
    [api, customerQuery],
  )
  const products = useLoad(
    async (signal) =>
      (
        await api.GET('/v1/products', {
          params: { query: { q: productQuery || undefined, is_active: true, page_size: 10 } },
          signal,
        })
      ).data.items,
    [api, productQuery],
  )

  const add = (product: Product) =>
    setLines((current) =>
      current.some((line) => line.product.id === product.id)
        ? current
        : [...current, { product, quantity: 1 }],
    )
  const setQuantity = (id: string, quantity: number) =>
    setLines((current) =>
      current.map((line) => (line.product.id === id ? { ...line, quantity } : line)),
    )

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const { data } = await api.POST('/v1/orders', {
        body: {
          customer_id: customerId,
          items: lines.map((line) => ({ product_id: line.product.id, quantity: line.quantity })),
          notes: notes || null,
        },
        // One order however often the button is pressed or the request retried.
        headers: { 'idempotency-key': crypto.randomUUID() },
      })
      navigate(`/orders/${data.id}`)
    } catch (failure) {
      setError(failure)
      setBusy(false)
    }
  }
  const errors = fieldErrorsOf(error)

  return (
    <section aria-labelledby="new-order-title">
      <p>
        <Link href="/orders">← Orders</Link>
      </p>
      <h1 id="new-order-title">Place an order</h1>
      <Form onSubmit={submit} className="stack">
        <fieldset className="card stack">
          <legend>Customer</legend>
          <TextInput
            label="Find a customer"
            name="customer_query"
            type="search"
            value={customerQuery}
            onChange={setCustomerQuery}
          />
          <Choice
            label="Customer"
            name="customer_id"
            value={customerId}
            error={errors.customer_id}
            options={[
              { id: '', label: 'Choose a customer' },
              ...(customers.data ?? []).map((c) => ({ id: c.id, label: `${c.name} <${c.email}>` })),
            ]}
            onChange={setCustomerId}
          />
        </fieldset>
        <fieldset className="card stack">
          <legend>Products</legend>
          <TextInput
            label="Find a product"
            name="product_query"
            type="search"
            value={productQuery}
            onChange={setProductQuery}
          />
          <ul className="pick-list" aria-label="Matching products">
            {products.data?.map((product) => (
              <li key={product.id}>
                <span>
                  {product.name} <small>({product.sku})</small> · {formatMoney(product.price)} ·{' '}
                  <span className={product.stock > 0 ? 'stock' : 'stock out'}>
                    {product.stock} in stock
                  </span>
                </span>
                <Button
                  isDisabled={product.stock === 0}
                  onPress={() => add(product)}
                  aria-label={`Add ${product.name}`}
                >
                  Add
                </Button>
              </li>
            ))}
          </ul>
          {lines.length > 0 ? (
            <table>
              <caption>In this order</caption>
              <thead>
                <tr>
                  <th scope="col">Product</th>
                  <th scope="col">Quantity</th>
                  <th scope="col">
                    <span className="visually-hidden">Remove</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {lines.map((line, index) => (
                  <tr key={line.product.id}>
                    <td>{line.product.name}</td>
                    <td>
                      <TextInput
                        label={`Quantity of ${line.product.name}`}
                        name={`items.${index}.quantity`}
                        type="number"
                        inputMode="numeric"
                        value={String(line.quantity)}
                        error={errors[`items.${index}.quantity`]}
                        onChange={(value) => setQuantity(line.product.id, Number(value))}
                      />
                    </td>
                    <td>
                      <Button
                        className="quiet"
                        onPress={() => setLines((current) => current.filter((l) => l !== line))}
                      >
                        Remove
                      </Button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p>No products yet.</p>
          )}
        </fieldset>
        <TextInput label="Notes" name="notes" multiline value={notes} onChange={setNotes} />
        <ProblemAlert error={error} />
        <Button type="submit" className="primary" isDisabled={busy || lines.length === 0}>
          Place order
        </Button>
      </Form>
    </section>
  )
}
