import type { PredictionLogRow } from '../../../db/schema/index.js'
import { ValidationFailed } from '../../../shared/errors.js'
import { type PageQuery, pageOf, toPage } from '../../../shared/schemas.js'
import type { ModelCard } from '../card.js'
import { ModelNotFound } from '../errors.js'
import type { ModelRepository } from '../repository.js'
import { driftOf, type FeatureDrift } from './drift.js'
import type { PredictionLogRepository, TimeRange } from './repository.js'

export interface MonitoringDeps {
  logs: Pick<PredictionLogRepository, 'page' | 'inputs'>
  models: Pick<ModelRepository, 'findByName' | 'findVersion'>
  /** PSI above which an input is flagged. */
  threshold: number
  /** Logged rows one drift report reads at most (the newest of the window). */
  maxRows: number
  now?: () => Date
}

export interface RangeQuery {
  from?: string
  to?: string
}

export interface DriftReport {
  model: string
  version: string
  from: string | null
  to: string
  rows: number
  threshold: number
  drifted: boolean
  features: FeatureDrift[]
}

function rangeOf({ from, to }: RangeQuery, now: Date): TimeRange & { to: Date } {
  const range = {
    from: from === undefined ? undefined : new Date(from),
    to: to === undefined ? now : new Date(to),
  }
  if (range.from && range.from >= range.to) {
    throw new ValidationFailed(
      [{ path: 'querystring.from', message: 'must be before to' }],
      'The time range is empty.',
    )
  }
  return range
}

function toEntry(row: PredictionLogRow) {
  return {
    id: row.id,
    model: row.model,
    version: row.version,
    inputs: row.inputs,
    output: row.output,
    latency_ms: row.latencyMs,
    request_id: row.requestId,
    caller: { user_id: row.userId, api_key_id: row.apiKeyId },
    created_at: row.createdAt.toISOString(),
  }
}

/** Reading the prediction log: its pages, and the drift of a window's inputs. */
export function createMonitoringService({
  logs,
  models,
  threshold,
  maxRows,
  now = () => new Date(),
}: MonitoringDeps) {
  async function activeCard(name: string): Promise<{ version: string; card: ModelCard }> {
    const model = await models.findByName(name)
    const version =
      model?.activeVersion == null
        ? undefined
        : await models.findVersion(model.id, model.activeVersion)
    if (!version) throw new ModelNotFound(`Model ${name} does not exist.`)
    return version
  }

  async function drift(name: string, query: RangeQuery): Promise<DriftReport> {
    const { version, card } = await activeCard(name)
    const range = rangeOf(query, now())
    const rows = await logs.inputs(name, range, maxRows)
    const features = driftOf(card, rows, threshold)
    return {
      model: name,
      version,
      from: range.from?.toISOString() ?? null,
      to: range.to.toISOString(),
      rows: rows.length,
      threshold,
      drifted: features.some((feature) => feature.drifted),
      features,
    }
  }

  return {
    async list(name: string, query: RangeQuery & PageQuery) {
      await activeCard(name)
      const { rows, total } = await logs.page(name, rangeOf(query, now()), pageOf(query))
      return toPage(rows.map(toEntry), total, query)
    },
    drift,
  }
}

export type MonitoringService = ReturnType<typeof createMonitoringService>
