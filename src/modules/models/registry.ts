import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { InTransaction } from '../../db/client.js'
import type { ModelRow } from '../../db/schema/index.js'
import { assertValid } from '../../platform/validation.js'
import { isForeignKeyViolation, isUniqueViolation, ValidationFailed } from '../../shared/errors.js'
import { type Actor, SYSTEM_ACTOR } from '../audit/actor.js'
import { createdChanges, deletedChanges } from '../audit/changes.js'
import { recordAudit } from '../audit/log.js'
import { type ModelCard, ModelCardSchema } from './card.js'
import { cardInconsistencies } from './card-consistency.js'
import {
  ModelNotFound,
  ModelSignatureMismatch,
  ModelVersionActive,
  ModelVersionExists,
  ModelVersionNotFound,
} from './errors.js'
import type { AllowedHosts } from './remote/allowed-hosts.js'
import type { ActiveModelVersion, ModelRepository, ModelVersionInfo } from './repository.js'
import type { InferenceBackend } from './runtime/backend.js'
import type { Model, ModelSummary, ModelVersion } from './schemas.js'
import { signatureMismatches } from './signature.js'

/** How the registry tells the serving side about changes; all optional for registry-only use. */
export interface ServingHooks {
  /** Loads a version before it is activated; rejects when it cannot serve here. */
  prepare(name: string, version: string): Promise<void>
  /** After the commit: `version` now serves `name`. */
  activated(name: string, version: string): Promise<void>
  /** After the commit: `version` of `name` no longer exists. */
  removed(name: string, version: string): Promise<void>
}

export interface ModelRegistryDeps {
  models: ModelRepository
  inTransaction: InTransaction
  /** Loads each uploaded graph once, to check it and read its signature. */
  backend: Pick<InferenceBackend, 'load'>
  serving?: ServingHooks
  /** Hosts a card's remote backend may name (REMOTE_BACKEND_ALLOWED_HOSTS); none when absent. */
  allowedHosts?: Pick<AllowedHosts, 'allows'>
}

export interface ModelRegistration {
  /** A model card; validated against `ModelCardSchema` here. */
  card: unknown
  onnx: Uint8Array
  actor: Actor
}

export interface ShippedModels {
  registered: string[]
  skipped: string[]
}

const VERSION_CONSTRAINT = 'model_versions_pkey'
const ACTIVE_CONSTRAINT = 'models_active_version_fkey'
const CARD_SUFFIX = '.card.json'
/** What the audit log records of a version: its identity, never the bytes. */
const AUDITED_FIELDS = ['version', 'onnx_sha256', 'size_bytes'] as const

/** Every version of a model answers the same kind of question. */
function assertSameTask(model: ModelRow, card: ModelCard): void {
  if (model.task !== card.task) {
    throw new ValidationFailed(
      [{ path: 'card.task', message: `must be ${model.task}, the task of ${model.name}` }],
      'The card does not fit the registered model.',
    )
  }
}

function toVersion(row: ModelVersionInfo, model: ModelRow): ModelVersion {
  return {
    version: row.version,
    active: row.version === model.activeVersion,
    onnx_sha256: row.onnxSha256,
    size_bytes: row.sizeBytes,
    metrics: row.card.metrics,
    created_at: row.createdAt.toISOString(),
    created_by: row.createdBy,
  }
}

function toModel(row: ModelRow, versions: ModelVersionInfo[]): Model {
  const active = versions.find((version) => version.version === row.activeVersion)
  return {
    name: row.name,
    task: row.task,
    active_version: row.activeVersion,
    card: active?.card ?? null,
    metrics: active?.card.metrics ?? null,
    versions: versions.map((version) => toVersion(version, row)),
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  }
}

function toSummary(row: ModelRow, versions: ModelVersionInfo[]): ModelSummary {
  const { card: _card, versions: _versions, ...model } = toModel(row, versions)
  return { ...model, version_count: versions.length }
}

/**
 * The model registry: versions of ONNX graphs with their cards, stored in the database, and
 * which version of each model serves predictions. Registration refuses what could not be
 * served: an invalid card, bytes that do not load, or a card that does not describe the graph.
 */
export function createModelRegistry({
  models,
  inTransaction,
  backend,
  serving,
  allowedHosts,
}: ModelRegistryDeps) {
  async function detail(name: string): Promise<Model> {
    const row = await models.findByName(name)
    if (!row) throw new ModelNotFound(`Model ${name} does not exist.`)
    return toModel(row, await models.listVersions([row.id]))
  }

  /** Loads the graph once to check it against the card; the session is released at once. */
  async function checkGraph(card: ModelCard, onnx: Uint8Array): Promise<void> {
    const loaded = await backend.load(onnx, { logId: `${card.name}@${card.version}` })
    try {
      const mismatches = signatureMismatches(card, loaded.signature)
      if (mismatches.length > 0) {
        throw new ModelSignatureMismatch(
          `The card of ${card.name} ${card.version} does not describe the ONNX graph: ${mismatches.length} mismatch(es).`,
          { errors: mismatches },
        )
      }
    } finally {
      await loaded.release()
    }
  }

  /** A remote version has no graph, and its upstream must be one the operator allowed. */
  function checkRemote(card: ModelCard, onnx: Uint8Array): void {
    const problems = []
    if (!allowedHosts?.allows(card.backend?.url ?? '')) {
      problems.push({
        path: 'card.backend.url',
        message: 'names a host that is not in REMOTE_BACKEND_ALLOWED_HOSTS',
      })
    }
    if (onnx.byteLength > 0) {
      problems.push({
        path: 'onnx',
        message: 'must be absent: the model runs on its remote backend',
      })
    }
    if (problems.length > 0) {
      throw new ValidationFailed(problems, 'The remote backend cannot be registered.')
    }
  }

  async function register({ card: input, onnx, actor }: ModelRegistration): Promise<Model> {
    const card = assertValid<ModelCard>(ModelCardSchema, input, 'card')
    const contradictions = cardInconsistencies(card)
    if (contradictions.length > 0) {
      throw new ValidationFailed(
        contradictions,
        `The card contradicts itself: ${contradictions.length} problem(s).`,
      )
    }
    const taken = `Model ${card.name} already has a version ${card.version}.`
    // Checked before loading, which costs a worker thread; the insert below settles races.
    const existing = await models.findByName(card.name)
    if (existing && (await models.findVersion(existing.id, card.version))) {
      throw new ModelVersionExists(taken)
    }
    if (existing) assertSameTask(existing, card)
    if (card.backend) checkRemote(card, onnx)
    else await checkGraph(card, onnx)
    const onnxSha256 = createHash('sha256').update(onnx).digest('hex')
    let activated = false
    try {
      await inTransaction(async (tx) => {
        const model = await models.upsertForUpdate({ name: card.name, task: card.task }, tx)
        assertSameTask(model, card)
        const version = await models.insertVersion(
          {
            modelId: model.id,
            version: card.version,
            card,
            onnx,
            onnxSha256,
            sizeBytes: onnx.byteLength,
            createdBy: actor.userId,
          },
          tx,
        )
        const changes = createdChanges(toVersion(version, model), AUDITED_FIELDS)
        // A model's first version serves at once; later ones wait for an explicit activation.
        if (model.activeVersion === null) {
          await models.setActiveVersion(model.id, version.version, tx)
          changes.active_version = { before: null, after: version.version }
          activated = true
        }
        await recordAudit(tx, actor, {
          action: 'create',
          resourceType: 'model',
          resourceId: model.name,
          changes,
        })
      })
    } catch (error) {
      if (isUniqueViolation(error, VERSION_CONSTRAINT)) throw new ModelVersionExists(taken)
      throw error
    }
    if (activated) await serving?.activated(card.name, card.version)
    return detail(card.name)
  }

  return {
    register,

    /** Makes `version` the one that serves `name`'s predictions. */
    async activate(name: string, version: string, actor: Actor): Promise<Model> {
      const current = await models.findByName(name)
      if (!current) throw new ModelNotFound(`Model ${name} does not exist.`)
      if (!(await models.findVersion(current.id, version))) {
        throw new ModelVersionNotFound(`Model ${name} has no version ${version}.`)
      }
      // Loaded before the switch, outside the transaction: requests never wait for a load,
      // and a version that cannot load here is refused while the old one keeps serving.
      if (current.activeVersion !== version) await serving?.prepare(name, version)
      let changed = false
      await inTransaction(async (tx) => {
        const model = await models.findByNameForUpdate(name, tx)
        if (!model) throw new ModelNotFound(`Model ${name} does not exist.`)
        if (!(await models.findVersion(model.id, version, tx))) {
          throw new ModelVersionNotFound(`Model ${name} has no version ${version}.`)
        }
        if (model.activeVersion === version) return
        await models.setActiveVersion(model.id, version, tx)
        changed = true
        await recordAudit(tx, actor, {
          action: 'update',
          resourceType: 'model',
          resourceId: name,
          changes: { active_version: { before: model.activeVersion, after: version } },
        })
      })
      if (changed) await serving?.activated(name, version)
      return detail(name)
    },

    /** Deletes a version that does not serve; the active one must be replaced first. */
    async remove(name: string, version: string, actor: Actor): Promise<void> {
      const active = new ModelVersionActive(
        `Version ${version} of ${name} is active; activate another version before removing it.`,
      )
      try {
        await inTransaction(async (tx) => {
          const model = await models.findByNameForUpdate(name, tx)
          if (!model) throw new ModelNotFound(`Model ${name} does not exist.`)
          if (model.activeVersion === version) throw active
          const removed = await models.deleteVersion(model.id, version, tx)
          if (!removed) throw new ModelVersionNotFound(`Model ${name} has no version ${version}.`)
          await models.touch(model.id, tx)
          await recordAudit(tx, actor, {
            action: 'delete',
            resourceType: 'model',
            resourceId: name,
            changes: deletedChanges(toVersion(removed, model), AUDITED_FIELDS),
          })
        })
      } catch (error) {
        if (isForeignKeyViolation(error, ACTIVE_CONSTRAINT)) throw active
        throw error
      }
      await serving?.removed(name, version)
    },

    /** Every model by name; a registry holds few, so there is no paging. */
    async list(): Promise<ModelSummary[]> {
      const rows = await models.list()
      const versions = await models.listVersions(rows.map((row) => row.id))
      return rows.map((row) =>
        toSummary(
          row,
          versions.filter((version) => version.modelId === row.id),
        ),
      )
    },

    get: detail,

    /** The active version of each model with its bytes: what a starting instance loads. */
    activeVersions(): Promise<ActiveModelVersion[]> {
      return models.activeVersions()
    },

    /**
     * Registers each model shipped in `dir` (`<name>.onnx` beside `<name>.card.json`) whose
     * name has no version yet, so a first start serves them and later starts change nothing.
     */
    async registerShippedModels(dir: string, actor: Actor = SYSTEM_ACTOR): Promise<ShippedModels> {
      const names = (await readdir(dir))
        .filter((file) => file.endsWith(CARD_SUFFIX))
        .map((file) => file.slice(0, -CARD_SUFFIX.length))
        .sort()
      const result: ShippedModels = { registered: [], skipped: [] }
      for (const name of names) {
        if (await models.findByName(name)) {
          result.skipped.push(name)
          continue
        }
        const [card, onnx] = await Promise.all([
          readFile(join(dir, `${name}${CARD_SUFFIX}`), 'utf8').then((text) => JSON.parse(text)),
          readFile(join(dir, `${name}.onnx`)),
        ])
        try {
          await register({ card, onnx: new Uint8Array(onnx), actor })
          result.registered.push(name)
        } catch (error) {
          // Another instance starting at the same moment registered it first.
          if (!(error instanceof ModelVersionExists)) throw error
          result.skipped.push(name)
        }
      }
      return result
    },
  }
}

export type ModelRegistry = ReturnType<typeof createModelRegistry>
