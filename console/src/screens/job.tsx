import { useEffect, useState } from 'react'
import { Button } from 'react-aria-components'
import { Link } from 'wouter'
import { ProblemAlert } from '../components/problem-alert.js'
import { formatPercent, formatTime } from '../lib/format.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { Job } from '../lib/types.js'

const FINISHED: ReadonlySet<string> = new Set(['succeeded', 'failed', 'cancelled'])

export function JobScreen({ params }: { params: { id: string } }) {
  const { api, client } = useSession()
  const can = usePermissions()
  const [job, setJob] = useState<Job | null>(null)
  const [error, setError] = useState<unknown>(null)

  // The job as it is now, then every change as the service announces it.
  useEffect(() => {
    const controller = new AbortController()
    const follow = async () => {
      const { data } = await api.GET('/v1/jobs/{id}', {
        params: { path: { id: params.id } },
        signal: controller.signal,
      })
      setJob(data)
      if (FINISHED.has(data.status)) return
      for await (const event of client.followJob(params.id, { signal: controller.signal })) {
        if (event.event === 'progress') {
          setJob((current) =>
            current
              ? { ...current, progress: event.data.progress, progress_message: event.data.message }
              : current,
          )
        } else {
          // The final state carries fields the event does not (finished_at): read it whole.
          const { data: latest } = await api.GET('/v1/jobs/{id}', {
            params: { path: { id: params.id } },
            signal: controller.signal,
          })
          setJob(latest)
        }
      }
    }
    follow().catch((failure) => {
      if (!controller.signal.aborted) setError(failure)
    })
    return () => controller.abort()
  }, [api, client, params.id])

  const cancel = async () => {
    setError(null)
    try {
      const { data } = await api.POST('/v1/jobs/{id}/cancel', {
        params: { path: { id: params.id } },
      })
      setJob(data)
    } catch (failure) {
      setError(failure)
    }
  }

  if (!job) return error ? <ProblemAlert error={error} /> : <p aria-busy="true">Loading…</p>
  const result = job.result as { dataset_id?: string; rows?: number } | null
  const params_ = job.params as { dataset_id?: string } | null
  const datasetId = result?.dataset_id ?? params_?.dataset_id
  return (
    <section aria-labelledby="job-title">
      <p>
        <Link href="/jobs">← Jobs</Link>
      </p>
      <h1 id="job-title">
        Job {job.id.slice(0, 8)} <small>{job.type}</small>
      </h1>
      <dl className="facts">
        <dt>Status</dt>
        <dd data-testid="job-status">{job.status}</dd>
        <dt>Created</dt>
        <dd>{formatTime(job.created_at)}</dd>
        <dt>Finished</dt>
        <dd>{formatTime(job.finished_at)}</dd>
        <dt>Attempts</dt>
        <dd>
          {job.attempts} of {job.max_attempts}
        </dd>
      </dl>
      <div className="progress-row">
        <progress max={1} value={job.progress} aria-label="Job progress" />
        <span aria-live="polite">
          {formatPercent(job.progress)}
          {job.progress_message ? ` · ${job.progress_message}` : ''}
        </span>
      </div>
      {job.error ? (
        <p className="alert">
          {job.error.code}: {job.error.message}
        </p>
      ) : null}
      <ProblemAlert error={error} />
      {can.startJobs && !FINISHED.has(job.status) && !job.cancel_requested ? (
        <Button className="danger" onPress={() => void cancel()}>
          Cancel job
        </Button>
      ) : null}
      {job.status === 'succeeded' && datasetId ? (
        <p>
          Result: <Link href={`/datasets/${datasetId}`}>the dataset</Link>
          {typeof result?.rows === 'number' ? ` (${result.rows} rows)` : ''}
        </p>
      ) : null}
    </section>
  )
}
