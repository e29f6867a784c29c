import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rename, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { InTransaction } from '../../db/client.js'
import { type Caller, canSee } from '../../shared/caller.js'
import { ValidationFailed } from '../../shared/errors.js'
import type { JobParams } from '../jobs/contract.js'
import type { JobContext, JobHandlerRegistry } from '../jobs/handlers.js'
import { PermanentJobError } from '../jobs/handlers.js'
import type { ModelCard } from '../models/card.js'
import type { BatchPrediction } from '../models/serving/prediction-service.js'
import { convert, type DatasetColumn, nameColumns, type StoredValue } from './columns.js'
import { DatasetImportFailed } from './errors.js'
import { importFile } from './importer.js'
import type { DatasetFormat } from './readers.js'
import type { DatasetRepository } from './repository.js'
import type { RowStore } from './row-store.js'
import type { UploadFields } from './schemas.js'
import { type DatasetLimits, importedValues, importSettings } from './service.js'
import { removeFile } from './spool.js'
import { RowSketches } from './stats.js'
import type { DatasetRow } from './table.js'
import { encodeRows } from './writers.js'

export interface DatasetJobDeps {
  datasets: DatasetRepository
  rows: RowStore
  inTransaction: InTransaction
  limits: DatasetLimits
  /** Where `dataset_export` writes its files. */
  exportDir: string
  /** The role of a job's owner, who may be an admin or viewer reading others' datasets. */
  roleOf: (userId: string) => Promise<Caller['role'] | undefined>
  predictions: {
    predictBatch(
      model: string,
      instances: unknown[],
      options?: { version?: string },
    ): Promise<BatchPrediction>
    /** The card of the version that would answer. */
    card(model: string, options?: { version?: string }): Promise<ModelCard>
  }
  /** Rows sent to the model per call (PREDICT_BATCH_MAX). */
  predictChunkRows: number
}

/**
 * Registers `dataset_import`, `dataset_export` and `batch_predict`. Each leaves its effect
 * once however often it runs: the import rebuilds the dataset's own table and flips the
 * status in one statement; the export writes a temporary file and renames it; a prediction
 * writes a dataset whose id derives from the job's, so a re-run rebuilds it, never adds one.
 */
export function registerDatasetJobs(registry: JobHandlerRegistry, deps: DatasetJobDeps) {
  registry.register('dataset_import', (ctx) => runImport(deps, ctx), {
    // A failed import's upload is removed at once; this only catches what a crash left.
    cleanup: async ({ params }) => removeFile(params.upload_path),
  })
  registry.register('dataset_export', (ctx) => runExport(deps, ctx), {
    cleanup: async ({ result }) => {
      if (result) await removeFile(result.path)
    },
  })
  registry.register('batch_predict', (ctx) => runBatchPredict(deps, ctx))
}

async function runImport(deps: DatasetJobDeps, ctx: JobContext<'dataset_import'>) {
  const { params } = ctx.job
  const dataset = await deps.datasets.find(params.dataset_id)
  if (!dataset) {
    await removeFile(params.upload_path)
    throw new PermanentJobError('DATASET_NOT_FOUND', `Dataset ${params.dataset_id} is gone.`)
  }
  const done = {
    dataset_id: dataset.id,
    rows: dataset.rowCount,
    skipped: dataset.import.skipped_count ?? 0,
  }
  if (dataset.status === 'ready') {
    await removeFile(params.upload_path)
    return done
  }
  const options = (params.options ?? {}) as Partial<UploadFields>
  const head = new Uint8Array(0)
  const settings = importSettings(
    params.upload_path,
    params.format ?? dataset.format,
    head,
    { ...options, on_error: params.on_error },
    deps.limits,
  )
  let outcome: Awaited<ReturnType<typeof importFile>>
  try {
    outcome = await importFile(deps.rows, dataset.id, settings, (fraction, message) =>
      ctx.progress(fraction, message),
    )
  } catch (error) {
    if (!(error instanceof DatasetImportFailed)) throw error
    // A bad file stays bad: the dataset shows why, and the job fails without retrying.
    await deps.datasets.update(dataset.id, {
      status: 'failed',
      error: { code: error.code, message: error.message, ...error.extensions },
    })
    await removeFile(params.upload_path)
    throw new PermanentJobError(error.code, error.message)
  }
  const updated = await deps.datasets.update(dataset.id, importedValues(outcome, settings))
  await removeFile(params.upload_path)
  // Deleted while it imported: the table just built belongs to nothing.
  if (!updated) await deps.rows.dropTable(dataset.id)
  return { dataset_id: dataset.id, rows: outcome.rowCount, skipped: outcome.skipped.count }
}

/** The dataset a job's owner may read, ready; a permanent failure otherwise. */
async function readableDataset(deps: DatasetJobDeps, ownerId: string | null, id: string) {
  const dataset = await deps.datasets.find(id)
  const role = ownerId ? await deps.roleOf(ownerId) : undefined
  const visible =
    dataset && ownerId && role && canSee({ userId: ownerId, role, apiKeyId: null }, dataset.ownerId)
  if (!dataset || !visible) {
    throw new PermanentJobError('DATASET_NOT_FOUND', `Dataset ${id} does not exist.`)
  }
  if (dataset.status !== 'ready') {
    throw new PermanentJobError('DATASET_NOT_READY', `Dataset ${id} is ${dataset.status}.`)
  }
  return dataset
}

async function runExport(deps: DatasetJobDeps, ctx: JobContext<'dataset_export'>) {
  const { params } = ctx.job
  const dataset = await readableDataset(deps, ctx.job.owner_id, params.dataset_id)
  await mkdir(deps.exportDir, { recursive: true })
  const path = join(deps.exportDir, `${ctx.job.id}.${params.format}`)
  // Written aside and renamed: a killed run never leaves a half file under the final name.
  const partial = `${path}.partial`
  let rows = 0
  const total = Math.max(dataset.rowCount, 1)
  const batches = async function* () {
    for await (const batch of deps.datasets.streamRows(dataset.id, dataset.columns)) {
      rows += batch.length
      await ctx.progress(Math.min(rows / total, 0.99), `exported ${rows} rows`)
      yield batch
    }
  }
  await pipeline(
    Readable.from(encodeRows(params.format, dataset.columns, batches())),
    createWriteStream(partial),
  )
  await rename(partial, path)
  return {
    dataset_id: dataset.id,
    format: params.format,
    path,
    bytes: (await stat(path)).size,
    rows,
  }
}

/** A UUID that only this job maps to, so every run of it writes the same dataset. */
export function outputDatasetId(jobId: string): string {
  const hex = createHash('sha256').update(`batch_predict:${jobId}`).digest('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

const INSTANCE_PATH = /^body\.instances\[(\d+)\](?:\.(.+))?$/

/** Refused instances' problems by index: `petal_length: must be at most 10`. */
function errorsByIndex(errors: { path: string; message: string }[]): Map<number, string> {
  const found = new Map<number, string>()
  for (const { path, message } of errors) {
    const match = INSTANCE_PATH.exec(path)
    if (!match) continue
    const index = Number(match[1])
    const text = match[2] ? `${match[2]} ${message}` : message
    found.set(index, found.has(index) ? `${found.get(index)}; ${text}` : text)
  }
  return found
}

async function runBatchPredict(deps: DatasetJobDeps, ctx: JobContext<'batch_predict'>) {
  const { params } = ctx.job
  const outputId = outputDatasetId(ctx.job.id)
  const existing = await deps.datasets.find(outputId)
  if (existing?.status === 'ready') {
    return { dataset_id: outputId, rows: existing.rowCount, errors: errorCount(existing) }
  }
  const input = await readableDataset(deps, ctx.job.owner_id, params.dataset_id)
  const { version } = params
  const unknown = Object.entries(params.mapping).filter(
    ([, column]) => !input.columns.some((c) => c.name === column),
  )
  if (unknown.length > 0) {
    throw new PermanentJobError(
      'VALIDATION_FAILED',
      `The mapping names columns the dataset lacks: ${unknown.map(([, c]) => c).join(', ')}.`,
    )
  }
  let card: ModelCard
  try {
    card = await deps.predictions.card(params.model, { version })
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code && (error as { status?: number }).status === 404)
      throw new PermanentJobError(code, (error as Error).message)
    throw error
  }
  const labels =
    card.task === 'classification' ? (card.outputs.find((o) => o.labels)?.labels ?? []) : []
  const columns = predictionColumns(input.columns, card, labels)
  const sketches = new RowSketches(columns.length)
  let done = 0
  let refused = 0
  try {
    const sink = await deps.rows.openSink(outputId, columns)
    try {
      for await (const batch of deps.datasets.streamRows(
        input.id,
        input.columns,
        deps.predictChunkRows,
      )) {
        const instances = batch.map((row) =>
          Object.fromEntries(
            Object.entries(params.mapping).map(([name, column]) => [name, row[column]]),
          ),
        )
        const { predictions, problems } = await predictChunk(deps, params, instances, version)
        for (const [i, row] of batch.entries()) {
          const prediction = predictions[i] ?? null
          const values: StoredValue[] = input.columns.map((c) =>
            convert(row[c.name], c.type, false),
          )
          values.push(prediction ? (prediction.prediction as StoredValue) : null)
          for (const label of labels) values.push(prediction?.probabilities?.[label] ?? null)
          const problem = prediction ? null : (problems.get(i) ?? 'refused by the model')
          if (problem) refused++
          values.push(problem)
          sketches.add(values)
          const waiting = sink.write(values)
          if (waiting) await waiting
        }
        done += batch.length
        await ctx.progress(
          Math.min(done / Math.max(input.rowCount, 1), 0.99),
          `predicted ${done} of ${input.rowCount} rows`,
        )
      }
      await sink.close()
    } catch (error) {
      await sink.abort()
      throw error
    }
    const stats = await deps.rows.finishTable(outputId, columns, sketches)
    columns.forEach((column, i) => {
      column.stats = stats[i]
    })
    await deps.datasets.insert({
      id: outputId,
      ownerId: ctx.job.owner_id ?? input.ownerId,
      name: `${input.name.slice(0, 150)} (${card.name} ${card.version} predictions)`,
      description: `Predictions of ${card.name} ${card.version} over dataset ${input.id}.`,
      format: input.format as DatasetFormat,
      status: 'ready',
      columns,
      rowCount: done,
      sizeBytes: 0,
      sha256: null,
      import: { skipped_count: refused },
      jobId: ctx.job.id,
    })
  } catch (error) {
    await deps.rows.dropTable(outputId).catch(() => {})
    throw error
  }
  return { dataset_id: outputId, rows: done, errors: refused }
}

function errorCount(dataset: DatasetRow): number {
  return dataset.import.skipped_count ?? 0
}

/** A chunk's predictions (null where refused) and each refused row's problem. */
async function predictChunk(
  deps: DatasetJobDeps,
  params: JobParams<'batch_predict'>,
  instances: Record<string, unknown>[],
  version: string | undefined,
) {
  try {
    const result = await deps.predictions.predictBatch(params.model, instances, { version })
    return { predictions: result.predictions, problems: errorsByIndex(result.errors) }
  } catch (error) {
    // Every row of the chunk refused: each gets its error, and the job goes on.
    if (!(error instanceof ValidationFailed)) throw error
    return { predictions: instances.map(() => null), problems: errorsByIndex(error.errors) }
  }
}

/** The input's columns, then `prediction`, a probability per class and `error`. */
function predictionColumns(
  input: readonly DatasetColumn[],
  card: ModelCard,
  labels: readonly string[],
): DatasetColumn[] {
  const added: Pick<DatasetColumn, 'type' | 'nullable'>[] = [
    { type: card.task === 'classification' ? 'string' : 'number', nullable: true },
    ...labels.map(() => ({ type: 'number' as const, nullable: true })),
    { type: 'string', nullable: true },
  ]
  const names = nameColumns([
    ...input.map((c) => c.name),
    'prediction',
    ...labels.map((label) => `probability_${label}`),
    'error',
  ])
  return names.map((named, i) => {
    const own = input[i]
    const extra = added[i - input.length] as Pick<DatasetColumn, 'type' | 'nullable'>
    return {
      ...named,
      source_name: own?.source_name ?? named.source_name,
      type: own?.type ?? extra.type,
      nullable: own?.nullable ?? extra.nullable,
    }
  })
}
