import { useId } from 'react'

export interface Series {
  name: string
  /** One value per point, oldest first; null where there is none (nothing was served). */
  values: (number | null)[]
}

const WIDTH = 300
const HEIGHT = 100

/** A round ceiling for the axis: 1, 2 or 5 times a power of ten. */
function niceMax(value: number): number {
  if (value <= 0) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  return ([1, 2, 5, 10].find((step) => step * power >= value) ?? 10) * power
}

interface Point {
  x: number
  y: number
  /** Neither neighbour has a value: drawn as a dot, since no line reaches it. */
  alone: boolean
}

function pointsOf(values: (number | null)[], max: number): (Point | null)[] {
  const step = values.length > 1 ? WIDTH / (values.length - 1) : 0
  return values.map((value, index) =>
    value === null
      ? null
      : {
          x: index * step,
          y: HEIGHT - (value / max) * HEIGHT,
          alone: (values[index - 1] ?? null) === null && (values[index + 1] ?? null) === null,
        },
  )
}

/** The series' line, broken where a value is missing. */
function pathOf(points: (Point | null)[]): string {
  return points
    .flatMap((point, index) =>
      point ? [`${points[index - 1] ? 'L' : 'M'}${point.x.toFixed(1)} ${point.y.toFixed(1)}`] : [],
    )
    .join(' ')
}

/**
 * A small line chart in SVG, without a charting library: a few series over the same points,
 * an axis from zero to a round maximum, and a legend. The picture is named by its title and
 * described in words (`summary`); the figures themselves are in a table beside it.
 */
export function LineChart(props: {
  title: string
  unit: string
  series: Series[]
  /** What the chart shows, said in words for those who cannot see it. */
  summary: string
  /** Labels of the first and last points, e.g. "5 min ago" and "now". */
  from: string
  to: string
}) {
  const id = useId()
  const top = niceMax(Math.max(0, ...props.series.flatMap((s) => s.values.map((v) => v ?? 0))))
  return (
    <figure className="chart">
      <figcaption id={`${id}-title`}>
        {props.title} <span className="hint">({props.unit})</span>
      </figcaption>
      <div className="chart-frame">
        <span className="chart-top" aria-hidden="true">
          {top}
        </span>
        <svg
          viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
          role="img"
          aria-labelledby={`${id}-title`}
          aria-describedby={`${id}-summary`}
        >
          <title>{props.title}</title>
          <line className="chart-axis" x1="0" y1={HEIGHT} x2={WIDTH} y2={HEIGHT} />
          {props.series.map((series, index) => {
            const points = pointsOf(series.values, top)
            return (
              <g key={series.name} className={`chart-series-${index}`}>
                <path className="chart-line" d={pathOf(points)} />
                {points.map((point, at) =>
                  point?.alone ? (
                    // biome-ignore lint/suspicious/noArrayIndexKey: a point's place is its identity
                    <circle key={at} className="chart-dot" cx={point.x} cy={point.y} r="2.5" />
                  ) : null,
                )}
              </g>
            )
          })}
        </svg>
      </div>
      <div className="chart-scale" aria-hidden="true">
        <span>{props.from}</span>
        <span>{props.to}</span>
      </div>
      <p id={`${id}-summary`} className="hint">
        {props.series.length > 1
          ? props.series.map((series, index) => (
              <span key={series.name} className={`chart-key chart-key-${index}`}>
                {series.name}
              </span>
            ))
          : null}
        {props.summary}
      </p>
    </figure>
  )
}
