import { Link } from 'wouter'
import { Choice } from '../components/fields.js'
import { ListTable } from '../components/list-table.js'
import { formatPercent, formatTime } from '../lib/format.js'
import { useSession } from '../lib/session.js'
import type { Job } from '../lib/types.js'
import { useRefresh } from '../lib/use-load.js'
import { usePagedList } from '../lib/use-paged-list.js'

type JobStatus = Job['status']
const STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled']
/** How often the list asks again while any job on it is still moving. */
const REFRESH_MS = 2000

export function JobsScreen() {
  const { api } = useSession()
  const jobs = usePagedList(
    { status: '' as JobStatus | '' },
    async ({ status, page }, signal) =>
      (
        await api.GET('/v1/jobs', {
          params: { query: { status: status || undefined, page, page_size: 20 } },
          signal,
        })
      ).data,
  )
  // A live list: one request every few seconds while something runs, none when all rest.
  // Each job's own page follows it event by event over Server-Sent Events.
  const moving = jobs.data?.items.some((job) => job.status === 'queued' || job.status === 'running')
  useRefresh(jobs.reload, REFRESH_MS, moving === true)

  return (
    <section aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      <div className="filters">
        <Choice
          label="Status"
          name="status"
          value={jobs.filters.status}
          options={[{ id: '', label: 'Any status' }, ...STATUSES.map((s) => ({ id: s, label: s }))]}
          onChange={(status) => jobs.setFilter('status', status)}
        />
      </div>
      <ListTable
        label="Jobs"
        list={jobs}
        columns={[
          { label: 'Job' },
          { label: 'Type' },
          { label: 'Status' },
          { label: 'Progress' },
          { label: 'Created' },
        ]}
      >
        {jobs.data?.items.map((job) => (
          <tr key={job.id}>
            <td>
              <Link href={`/jobs/${job.id}`}>{job.id.slice(0, 8)}</Link>
            </td>
            <td>{job.type}</td>
            <td>{job.status}</td>
            <td>
              <progress
                max={1}
                value={job.progress}
                aria-label={`Progress of job ${job.id.slice(0, 8)}`}
              />{' '}
              {formatPercent(job.progress)}
            </td>
            <td>{formatTime(job.created_at)}</td>
          </tr>
        ))}
      </ListTable>
    </section>
  )
}
