import { type FormEvent, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { Link } from 'wouter'
import { FileField, TextInput } from '../components/fields.js'
import { ListTable, SearchField } from '../components/list-table.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { UploadProgress } from '../components/upload-progress.js'
import { formatBytes, formatTime } from '../lib/format.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { Dataset } from '../lib/types.js'
import { usePagedList } from '../lib/use-paged-list.js'
import { useUpload } from '../lib/use-upload.js'

export function DatasetsScreen() {
  const { api } = useSession()
  const can = usePermissions()
  const datasets = usePagedList(
    { q: '' },
    async ({ q, page }, signal) =>
      (
        await api.GET('/v1/datasets', {
          params: { query: { q: q || undefined, page, page_size: 20 } },
          signal,
        })
      ).data,
  )
  return (
    <section aria-labelledby="datasets-title">
      <h1 id="datasets-title">Datasets</h1>
      {can.manageDatasets ? <UploadForm onUploaded={datasets.reload} /> : null}
      <div className="filters">
        <SearchField value={datasets.filters.q} onChange={(q) => datasets.setFilter('q', q)} />
      </div>
      <ListTable
        label="Datasets"
        list={datasets}
        columns={[
          { label: 'Name' },
          { label: 'Format' },
          { label: 'Status' },
          { label: 'Rows', numeric: true },
          { label: 'Size', numeric: true },
          { label: 'Created' },
        ]}
      >
        {datasets.data?.items.map((dataset) => (
          <tr key={dataset.id}>
            <td>
              <Link href={`/datasets/${dataset.id}`}>{dataset.name}</Link>
            </td>
            <td>{dataset.format}</td>
            <td>{dataset.status}</td>
            <td className="num">{dataset.row_count}</td>
            <td className="num">{formatBytes(dataset.size_bytes)}</td>
            <td>{formatTime(dataset.created_at)}</td>
          </tr>
        ))}
      </ListTable>
    </section>
  )
}

function UploadForm({ onUploaded }: { onUploaded: () => void }) {
  const [file, setFile] = useState<File | null>(null)
  const [name, setName] = useState('')
  const [outcome, setOutcome] = useState<{ dataset: Dataset; jobId: string | null } | null>(null)
  const upload = useUpload('/v1/datasets')

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    if (!file) return
    setOutcome(null)
    const form = new FormData()
    if (name) form.append('name', name)
    // The service reads the fields before the file: the file goes last.
    form.append('file', file)
    const body = await upload.send(form)
    if (!body) return
    setOutcome(
      'dataset' in body
        ? { dataset: body.dataset, jobId: body.job_id }
        : { dataset: body, jobId: null },
    )
    onUploaded()
  }

  return (
    <Form onSubmit={submit} className="card stack" aria-label="Upload a dataset">
      <h2>Upload a dataset</h2>
      <p className="hint">CSV with a header row, a JSON array, NDJSON or Parquet.</p>
      <FileField
        label="File"
        choose="Choose a file"
        accept={['.csv', '.json', '.ndjson', '.parquet', 'text/csv']}
        file={file}
        onSelect={(chosen) => {
          setFile(chosen)
          if (chosen && !name) setName(chosen.name.replace(/\.[^.]+$/, ''))
        }}
      />
      <TextInput label="Name" name="name" value={name} onChange={setName} />
      <Button type="submit" className="primary" isDisabled={!file || upload.sending}>
        Upload
      </Button>
      <UploadProgress label="Upload progress" progress={upload.progress} />
      <ProblemAlert error={upload.error} />
      {outcome ? (
        <p role="status">
          Uploaded <Link href={`/datasets/${outcome.dataset.id}`}>{outcome.dataset.name}</Link>
          {outcome.jobId ? (
            <>
              ; importing in{' '}
              <Link href={`/jobs/${outcome.jobId}`}>job {outcome.jobId.slice(0, 8)}</Link>
            </>
          ) : null}
          .
        </p>
      ) : null}
    </Form>
  )
}
