import { type FormEvent, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { Link, useLocation } from 'wouter'
import { Choice, TextInput } from '../components/fields.js'
import { Pager } from '../components/pager.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { download } from '../lib/download.js'
import { formatBytes, formatTime } from '../lib/format.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { Dataset } from '../lib/types.js'
import { useLoad } from '../lib/use-load.js'

type Column = Dataset['columns'][number]
const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'contains'] as const
type Operator = (typeof OPERATORS)[number]

interface RowsPage {
  items: Record<string, unknown>[]
  page: number
  total: number
  total_pages: number
}

export function DatasetScreen({ params }: { params: { id: string } }) {
  const { api, client } = useSession()
  const can = usePermissions()
  const dataset = useLoad(
    async (signal) =>
      (await api.GET('/v1/datasets/{id}', { params: { path: { id: params.id } }, signal })).data,
    [api, params.id],
  )
  const [error, setError] = useState<unknown>(null)

  if (dataset.error) return <ProblemAlert error={dataset.error} />
  if (!dataset.data) return <p aria-busy="true">Loading…</p>
  const d = dataset.data
  return (
    <section aria-labelledby="dataset-title">
      <p>
        <Link href="/datasets">← Datasets</Link>
      </p>
      <h1 id="dataset-title">{d.name}</h1>
      <dl className="facts">
        <dt>Status</dt>
        <dd data-testid="dataset-status">{d.status}</dd>
        <dt>Rows</dt>
        <dd>{d.row_count}</dd>
        <dt>Size</dt>
        <dd>{formatBytes(d.size_bytes)}</dd>
        <dt>Created</dt>
        <dd>{formatTime(d.created_at)}</dd>
      </dl>
      {d.status === 'importing' ? (
        <p>
          Importing…{' '}
          {d.job_id ? <Link href={`/jobs/${d.job_id}`}>follow the import job</Link> : null}{' '}
          <Button onPress={dataset.reload}>Refresh</Button>
        </p>
      ) : null}
      {d.error ? <p className="alert">{d.error.message}</p> : null}
      <ProblemAlert error={error} />
      {d.status === 'ready' ? (
        <>
          <div className="actions">
            {(['csv', 'ndjson', 'parquet'] as const).map((format) => (
              <Button
                key={format}
                onPress={() =>
                  void download(
                    client,
                    `/v1/datasets/${d.id}/download?format=${format}`,
                    `${d.name}.${format}`,
                  ).catch(setError)
                }
              >
                Download {format.toUpperCase()}
              </Button>
            ))}
          </div>
          <h2>Columns</h2>
          <ColumnsTable columns={d.columns} />
          <h2>Rows</h2>
          <RowsTable dataset={d} />
          {can.startJobs ? <BatchPredictForm dataset={d} /> : null}
        </>
      ) : null}
    </section>
  )
}

function ColumnsTable({ columns }: { columns: Column[] }) {
  const show = (value: unknown) => (value === null || value === undefined ? '—' : String(value))
  return (
    <ScrollRegion label="Columns">
      <table>
        <thead>
          <tr>
            <th scope="col">Column</th>
            <th scope="col">Type</th>
            <th scope="col">Nulls</th>
            <th scope="col">Distinct</th>
            <th scope="col">Min</th>
            <th scope="col">Max</th>
            <th scope="col">Mean</th>
          </tr>
        </thead>
        <tbody>
          {columns.map((column) => (
            <tr key={column.name}>
              <th scope="row">{column.name}</th>
              <td>
                {column.type}
                {column.nullable ? '?' : ''}
              </td>
              <td>{show(column.stats?.null_count)}</td>
              <td>
                {show(column.stats?.distinct_count)}
                {column.stats && !column.stats.distinct_exact ? ' (est.)' : ''}
              </td>
              <td>{show(column.stats?.min)}</td>
              <td>{show(column.stats?.max)}</td>
              <td>{typeof column.stats?.mean === 'number' ? column.stats.mean.toFixed(3) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollRegion>
  )
}

function RowsTable({ dataset }: { dataset: Dataset }) {
  const { client } = useSession()
  const [page, setPage] = useState(1)
  const [column, setColumn] = useState('')
  const [operator, setOperator] = useState<Operator>('eq')
  const [value, setValue] = useState('')
  const [applied, setApplied] = useState<{ column: string; operator: Operator; value: string }>()
  // Filters are named `filter[<column>][<op>]`, one query key per column: the typed call
  // cannot spell such keys, so the page is read with the client's authenticated fetch.
  const rows = useLoad(
    async (signal) => {
      const query = new URLSearchParams({ page: String(page), page_size: '20' })
      if (applied) query.set(`filter[${applied.column}][${applied.operator}]`, applied.value)
      const response = await client.fetch(`/v1/datasets/${dataset.id}/rows?${query}`, { signal })
      return (await response.json()) as RowsPage
    },
    [client, dataset.id, page, applied],
  )

  const filter = (event: FormEvent) => {
    event.preventDefault()
    setPage(1)
    setApplied(column && value !== '' ? { column, operator, value } : undefined)
  }
  return (
    <>
      <Form onSubmit={filter} className="filters" aria-label="Filter rows">
        <Choice
          label="Column"
          name="filter_column"
          value={column}
          options={[
            { id: '', label: 'No filter' },
            ...dataset.columns.map((c) => ({ id: c.name, label: c.name })),
          ]}
          onChange={setColumn}
        />
        <Choice
          label="Operator"
          name="filter_operator"
          value={operator}
          options={OPERATORS.map((op) => ({ id: op, label: op }))}
          onChange={(op) => setOperator(op || 'eq')}
        />
        <TextInput label="Value" name="filter_value" value={value} onChange={setValue} />
        <Button type="submit">Apply</Button>
      </Form>
      <ProblemAlert error={rows.error} />
      <ScrollRegion label="Rows">
        <table aria-busy={rows.loading} data-testid="rows">
          <thead>
            <tr>
              {dataset.columns.map((c) => (
                <th key={c.name} scope="col">
                  {c.name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.data?.items.map((row, index) => (
              // Rows have no identity of their own; their place in the page is it.
              // biome-ignore lint/suspicious/noArrayIndexKey: see above
              <tr key={index}>
                {dataset.columns.map((c) => (
                  <td key={c.name}>{row[c.name] === null ? '—' : String(row[c.name])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollRegion>
      {rows.data ? (
        <Pager
          page={rows.data.page}
          totalPages={rows.data.total_pages}
          total={rows.data.total}
          onPage={setPage}
        />
      ) : null}
    </>
  )
}

function BatchPredictForm({ dataset }: { dataset: Dataset }) {
  const { api } = useSession()
  const [, navigate] = useLocation()
  const models = useLoad(
    async (signal) =>
      (await api.GET('/v1/models', { signal })).data.filter(
        (m) => m.task !== 'text-generation' && m.active_version,
      ),
    [api],
  )
  const [model, setModel] = useState('')
  const card = useLoad(
    async (signal) =>
      model
        ? (await api.GET('/v1/models/{name}', { params: { path: { name: model } }, signal })).data
            .card
        : null,
    [api, model],
  )
  const [mapping, setMapping] = useState<Record<string, string>>({})
  const [error, setError] = useState<unknown>(null)
  const inputs = (card.data?.inputs ?? []) as { name: string; required?: boolean }[]
  // Inputs map to the column of the same name unless chosen otherwise.
  const columnFor = (input: string) =>
    mapping[input] ?? (dataset.columns.some((c) => c.name === input) ? input : '')

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    const chosen = Object.fromEntries(
      inputs.map((input) => [input.name, columnFor(input.name)]).filter(([, column]) => column),
    )
    try {
      const { data } = await api.POST('/v1/jobs', {
        body: {
          type: 'batch_predict',
          params: { model, dataset_id: dataset.id, mapping: chosen },
        },
      })
      navigate(`/jobs/${data.id}`)
    } catch (failure) {
      setError(failure)
    }
  }
  return (
    <Form onSubmit={submit} className="card stack" aria-label="Batch prediction">
      <h2>Batch prediction</h2>
      <Choice
        label="Model"
        name="model"
        value={model}
        options={[
          { id: '', label: 'Choose a model' },
          ...(models.data ?? []).map((m) => ({ id: m.name, label: m.name })),
        ]}
        onChange={(value) => {
          setModel(value)
          setMapping({})
        }}
      />
      {inputs.length > 0 ? (
        <fieldset className="grid-form">
          <legend>Columns for the model's inputs</legend>
          {inputs.map((input) => (
            <Choice
              key={input.name}
              label={input.name}
              name={`mapping.${input.name}`}
              value={columnFor(input.name)}
              options={[
                { id: '', label: input.required ? 'Choose a column' : 'Use the default' },
                ...dataset.columns.map((c) => ({ id: c.name, label: c.name })),
              ]}
              onChange={(column) => setMapping((m) => ({ ...m, [input.name]: column }))}
            />
          ))}
        </fieldset>
      ) : null}
      <ProblemAlert error={error} />
      <Button type="submit" className="primary" isDisabled={!model}>
        Start batch prediction
      </Button>
    </Form>
  )
}
