import { type FormEvent, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { Choice, TextInput } from '../components/fields.js'
import { FormModal } from '../components/modal.js'
import { Pager } from '../components/pager.js'
import { fieldErrorsOf, ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { formatMoney } from '../lib/format.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { Product } from '../lib/types.js'
import { useLoad } from '../lib/use-load.js'

const SORTS = [
  { id: 'name', label: 'Name' },
  { id: '-price', label: 'Highest price' },
  { id: 'price', label: 'Lowest price' },
  { id: '-created_at', label: 'Newest' },
] as const
type Sort = (typeof SORTS)[number]['id']

export function ProductsScreen() {
  const { api } = useSession()
  const can = usePermissions()
  const [q, setQ] = useState('')
  const [sort, setSort] = useState<Sort>('name')
  const [page, setPage] = useState(1)
  const [editing, setEditing] = useState<Product | 'new' | null>(null)
  const [error, setError] = useState<unknown>(null)
  const products = useLoad(
    async (signal) =>
      (
        await api.GET('/v1/products', {
          params: { query: { q: q || undefined, sort, page, page_size: 20 } },
          signal,
        })
      ).data,
    [api, q, sort, page],
  )

  const setActive = async (product: Product, isActive: boolean) => {
    setError(null)
    try {
      await api.PATCH('/v1/products/{id}', {
        params: { path: { id: product.id } },
        body: { is_active: isActive },
      })
      products.reload()
    } catch (failure) {
      setError(failure)
    }
  }

  return (
    <section aria-labelledby="products-title">
      <div className="title-row">
        <h1 id="products-title">Products</h1>
        {can.manageProducts ? (
          <Button className="primary" onPress={() => setEditing('new')}>
            New product
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
          label="Sort"
          name="sort"
          value={sort}
          options={SORTS}
          onChange={(value) => setSort((value || 'name') as Sort)}
        />
      </div>
      <ProblemAlert error={products.error ?? error} />
      <ScrollRegion label="Products">
        <table aria-busy={products.loading}>
          <caption className="visually-hidden">Products</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">SKU</th>
              <th scope="col" className="num">
                Price
              </th>
              <th scope="col" className="num">
                Stock
              </th>
              <th scope="col">Active</th>
              {can.manageProducts ? (
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              ) : null}
            </tr>
          </thead>
          <tbody>
            {products.data?.items.map((product) => (
              <tr key={product.id}>
                <td>{product.name}</td>
                <td>{product.sku}</td>
                <td className="num">{formatMoney(product.price)}</td>
                <td className="num">{product.stock}</td>
                <td>{product.is_active ? 'yes' : 'no'}</td>
                {can.manageProducts ? (
                  <td className="row-actions">
                    <Button onPress={() => setEditing(product)} aria-label={`Edit ${product.name}`}>
                      Edit
                    </Button>
                    <Button
                      className="quiet"
                      onPress={() => void setActive(product, !product.is_active)}
                      aria-label={`${product.is_active ? 'Deactivate' : 'Activate'} ${product.name}`}
                    >
                      {product.is_active ? 'Deactivate' : 'Activate'}
                    </Button>
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollRegion>
      {products.data ? (
        <Pager
          page={products.data.page}
          totalPages={products.data.total_pages}
          total={products.data.total}
          onPage={setPage}
        />
      ) : null}
      {editing ? (
        <ProductForm
          product={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null)
            products.reload()
          }}
        />
      ) : null}
    </section>
  )
}

function ProductForm(props: { product: Product | null; onClose: () => void; onSaved: () => void }) {
  const { api } = useSession()
  const [sku, setSku] = useState(props.product?.sku ?? '')
  const [name, setName] = useState(props.product?.name ?? '')
  const [description, setDescription] = useState(props.product?.description ?? '')
  const [price, setPrice] = useState(props.product?.price ?? '')
  const [stock, setStock] = useState(String(props.product?.stock ?? 0))
  const [error, setError] = useState<unknown>(null)

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    // The form sends what was typed; the service's validation names every field it refuses.
    const body = {
      sku,
      name,
      description: description || undefined,
      price,
      stock: stock === '' ? undefined : Number(stock),
    }
    try {
      if (props.product) {
        await api.PATCH('/v1/products/{id}', {
          params: { path: { id: props.product.id } },
          body,
        })
      } else {
        await api.POST('/v1/products', { body })
      }
      props.onSaved()
    } catch (failure) {
      setError(failure)
    }
  }
  const errors = fieldErrorsOf(error)
  return (
    <FormModal
      title={props.product ? `Edit ${props.product.name}` : 'New product'}
      isOpen
      onClose={props.onClose}
    >
      <Form onSubmit={submit} className="stack">
        <TextInput label="SKU" name="sku" value={sku} onChange={setSku} error={errors.sku} />
        <TextInput label="Name" name="name" value={name} onChange={setName} error={errors.name} />
        <TextInput
          label="Description"
          name="description"
          multiline
          value={description}
          onChange={setDescription}
          error={errors.description}
        />
        <TextInput
          label="Price"
          name="price"
          inputMode="decimal"
          value={price}
          onChange={setPrice}
          error={errors.price}
          description="A decimal amount, such as 19.99"
        />
        <TextInput
          label="Stock"
          name="stock"
          type="number"
          inputMode="numeric"
          value={stock}
          onChange={setStock}
          error={errors.stock}
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
