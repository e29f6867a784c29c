import { LineChart } from '../components/line-chart.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { useSession } from '../lib/session.js'
import type { ModelStats } from '../lib/types.js'
import { useLoad, useRefresh } from '../lib/use-load.js'

/** How often the open screen asks for fresh figures: half a window. */
const REFRESH_MS = 5000

type Figures = ModelStats['totals']

const ms = (value: number | undefined) => (value === undefined ? '—' : `${value} ms`)
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' })

/** Whole-span figures in words: what the charts show, and what a test can read. */
function Totals({ totals }: { totals: Figures }) {
  const rows: [string, string, string][] = [
    ['requests', 'Requests', String(totals.requests)],
    ['rate', 'Rate', `${totals.rate_per_second} /s`],
    ['p50', 'Latency p50', ms(totals.latency_ms?.p50)],
    ['p95', 'Latency p95', ms(totals.latency_ms?.p95)],
    ['p99', 'Latency p99', ms(totals.latency_ms?.p99)],
    ['batches', 'Inference calls', String(totals.batches)],
    ['batch-mean', 'Mean batch size', String(totals.batch_size?.mean ?? '—')],
    ['batch-max', 'Largest batch', String(totals.batch_size?.max ?? '—')],
  ]
  return (
    <dl className="facts">
      {rows.map(([key, label, value]) => (
        <div key={key} className="fact">
          <dt>{label}</dt>
          <dd data-testid={`stats-${key}`}>{value}</dd>
        </div>
      ))}
    </dl>
  )
}

/**
 * The model's recent serving, from `GET /v1/models/{name}/stats`: request rate, latency
 * percentiles and batch sizes per window, as charts with the same figures in a table.
 */
export function ModelStatsPanel({ model }: { model: string }) {
  const { api } = useSession()
  const stats = useLoad(
    async (signal) =>
      (await api.GET('/v1/models/{name}/stats', { params: { path: { name: model } }, signal }))
        .data,
    [api, model],
  )
  useRefresh(stats.reload, REFRESH_MS)
  if (!stats.data) return <ProblemAlert error={stats.error} />
  const { windows, totals, window_seconds: seconds } = stats.data
  const minutes = Math.round((windows.length * seconds) / 60)
  const span = { from: `${minutes} min ago`, to: 'now' }
  const latest = windows.at(-1)
  return (
    <section className="card" aria-labelledby="stats-title">
      <h2 id="stats-title">Serving, last {minutes} minutes</h2>
      <p className="hint">
        As this instance served it, in {seconds}-second windows; refreshed every {REFRESH_MS / 1000}{' '}
        seconds.
      </p>
      <ProblemAlert error={stats.error} />
      <Totals totals={totals} />
      <div className="charts">
        <LineChart
          title="Request rate"
          unit="requests per second"
          series={[{ name: 'rate', values: windows.map((w) => w.rate_per_second) }]}
          summary={`${totals.requests} requests in all; ${latest?.rate_per_second ?? 0} per second in the current window.`}
          {...span}
        />
        <LineChart
          title="Latency"
          unit="milliseconds"
          series={(['p50', 'p95', 'p99'] as const).map((name) => ({
            name,
            values: windows.map((w) => w.latency_ms?.[name] ?? null),
          }))}
          summary={
            totals.latency_ms
              ? `Over the span: p50 ${totals.latency_ms.p50} ms, p95 ${totals.latency_ms.p95} ms, p99 ${totals.latency_ms.p99} ms.`
              : 'No request yet.'
          }
          {...span}
        />
        <LineChart
          title="Batch size"
          unit="rows per inference call"
          series={[
            { name: 'mean', values: windows.map((w) => w.batch_size?.mean ?? null) },
            { name: 'largest', values: windows.map((w) => w.batch_size?.max ?? null) },
          ]}
          summary={
            totals.batch_size
              ? `${totals.batches} calls; mean size ${totals.batch_size.mean} rows, largest ${totals.batch_size.max}.`
              : 'No inference call yet.'
          }
          {...span}
        />
      </div>
      <details>
        <summary>Figures by window</summary>
        <ScrollRegion label="Figures by window">
          <table>
            <thead>
              <tr>
                <th scope="col">From</th>
                <th scope="col" className="num">
                  Requests
                </th>
                <th scope="col" className="num">
                  Per second
                </th>
                <th scope="col" className="num">
                  p50 / p95 / p99 (ms)
                </th>
                <th scope="col" className="num">
                  Calls
                </th>
                <th scope="col" className="num">
                  Mean / largest batch
                </th>
              </tr>
            </thead>
            <tbody>
              {windows.map((w) => (
                <tr key={w.start}>
                  <td>{clock.format(new Date(w.start))}</td>
                  <td className="num">{w.requests}</td>
                  <td className="num">{w.rate_per_second}</td>
                  <td className="num">
                    {w.latency_ms
                      ? `${w.latency_ms.p50} / ${w.latency_ms.p95} / ${w.latency_ms.p99}`
                      : '—'}
                  </td>
                  <td className="num">{w.batches}</td>
                  <td className="num">
                    {w.batch_size ? `${w.batch_size.mean} / ${w.batch_size.max}` : '—'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollRegion>
      </details>
    </section>
  )
}
