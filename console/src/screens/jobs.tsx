import { useState } from 'react'
import { Link } from 'wouter'
import { Choice } from '../components/fields.js'
import { Pager } from '../components/pager.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { formatPercent, formatTime } from '../lib/format.js'
import { useSession } from '../lib/session.js'
import type { Job } from '../lib/types.js'
import { useLoad, useRefresh } from '../lib/use-load.js'

type JobStatus = Job['status']
const STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled']
/** How often the list asks again while any job on it is still moving. */
const REFRESH_MS = 2000

export function JobsScreen() {
  const { api } = useSession()
  const [status, setStatus] = useState<JobStatus | ''>('')
  const [page, setPage] = useState(1)
  const jobs = useLoad(
    async (signal) =>
      (
        await api.GET('/v1/jobs', {
          params: { query: { status: status || undefined, page, page_size: 20 } },
          signal,
        })
      ).data,
    [api, status, page],
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
          value={status}
          options={[{ id: '', label: 'Any status' }, ...STATUSES.map((s) => ({ id: s, label: s }))]}
          onChange={(value) => {
            setStatus(value)
            setPage(1)
          }}
        />
      </div>
      <ProblemAlert error={jobs.error} />
      <ScrollRegion label="Jobs">
        <table>
          <caption className="visually-hidden">Jobs</caption>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
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
          </tbody>
        </table>
      </ScrollRegion>
      {jobs.data ? (
        <Pager
          page={jobs.data.page}
          totalPages={jobs.data.total_pages}
          total={jobs.data.total}
          onPage={setPage}
        />
      ) : null}
    </section>
  )
}
