import { Link, useLocation } from 'wouter'
import { ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { formatTime } from '../lib/format.js'
import { usePermissions, useSession } from '../lib/session.js'
import { useLoad } from '../lib/use-load.js'
import { ModelUploadForm } from './model-upload.js'

export function ModelsScreen() {
  const { api } = useSession()
  const can = usePermissions()
  const [, navigate] = useLocation()
  const models = useLoad(async (signal) => (await api.GET('/v1/models', { signal })).data, [api])
  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">Models</h1>
      <ProblemAlert error={models.error} />
      <ScrollRegion label="Models">
        <table aria-busy={models.loading}>
          <caption className="visually-hidden">Models</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Task</th>
              <th scope="col">Active version</th>
              <th scope="col" className="num">
                Versions
              </th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {models.data?.map((model) => (
              <tr key={model.name}>
                <td>
                  <Link href={`/models/${model.name}`}>{model.name}</Link>
                </td>
                <td>{model.task}</td>
                <td>{model.active_version ?? '—'}</td>
                <td className="num">{model.version_count}</td>
                <td>{formatTime(model.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollRegion>
      {can.manageModels ? (
        <ModelUploadForm
          title="Register a model"
          onUploaded={(model) => navigate(`/models/${model.name}`)}
        />
      ) : null}
    </section>
  )
}
