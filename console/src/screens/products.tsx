import { useState } from 'react'
import { Button } from 'react-aria-components'
import { EditDialog } from '../components/edit-dialog.js'
import { Choice, TextInput } from '../components/fields.js'
import { EditToggleActions, ListTable, SearchField, TitleRow } from '../components/list-table.js'
import { fieldErrorsOf } from '../components/problem-alert.js'
import { formatMoney } from '../lib/format.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { Product } from '../lib/types.js'
import { useAction } from '../lib/use-action.js'
import { usePagedList } from '../lib/use-paged-list.js'

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
  const [editing, setEditing] = useState<Product | 'new' | null>(null)
  const toggle = useAction()
  const products = usePagedList(
    { q: '', sort: 'name' as Sort },
    async ({ q, sort, page }, signal) =>
      (
        await api.GET('/v1/products', {
          params: { query: { q: q || undefined, sort, page, page_size: 20 } },
          signal,
        })
      ).data,
  )

  const setActive = (product: Product, isActive: boolean) =>
    toggle.run(async () => {
      await api.PATCH('/v1/products/{id}', {
        params: { path: { id: product.id } },
        body: { is_active: isActive },
      })
      products.reload()
    })

  return (
    <section aria-labelledby="products-title">
      <TitleRow id="products-title" title="Products">
        {can.manageProducts ? (
          <Button className="primary" onPress={() => setEditing('new')}>
            New product
          </Button>
        ) : null}
      </TitleRow>
      <div className="filters">
        <SearchField value={products.filters.q} onChange={(q) => products.setFilter('q', q)} />
        <Choice
          label="Sort"
          name="sort"
          value={products.filters.sort}
          options={SORTS}
          onChange={(value) => products.setFilter('sort', value || 'name')}
        />
      </div>
      <ListTable
        label="Products"
        list={products}
        error={toggle.error}
        actions={can.manageProducts}
        columns={[
          { label: 'Name' },
          { label: 'SKU' },
          { label: 'Price', numeric: true },
          { label: 'Stock', numeric: true },
          { label: 'Active' },
        ]}
      >
        {products.data?.items.map((product) => (
          <tr key={product.id}>
            <td>{product.name}</td>
            <td>{product.sku}</td>
            <td className="num">{formatMoney(product.price)}</td>
            <td className="num">{product.stock}</td>
            <td>{product.is_active ? 'yes' : 'no'}</td>
            {can.manageProducts ? (
              <EditToggleActions
                name={product.name}
                active={product.is_active}
                onEdit={() => setEditing(product)}
                onToggle={() => void setActive(product, !product.is_active)}
              />
            ) : null}
          </tr>
        ))}
      </ListTable>
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
  const save = useAction()

  const submit = () =>
    void save.run(async () => {
      // The form sends what was typed; the service's validation names every field it refuses.
      const body = {
        sku,
        name,
        description: description || undefined,
        price,
        stock: stock === '' ? undefined : Number(stock),
      }
      if (props.product) {
        await api.PATCH('/v1/products/{id}', {
          params: { path: { id: props.product.id } },
          body,
        })
      } else {
        await api.POST('/v1/products', { body })
      }
      props.onSaved()
    })
  const errors = fieldErrorsOf(save.error)
  return (
    <EditDialog
      title={props.product ? `Edit ${props.product.name}` : 'New product'}
      onClose={props.onClose}
      onSave={submit}
      error={save.error}
    >
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
    </EditDialog>
  )
}
