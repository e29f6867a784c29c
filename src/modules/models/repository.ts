import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import {
  type ModelRow,
  models,
  modelVersions,
  type NewModelRow,
  type NewModelVersionRow,
} from '../../db/schema/index.js'
import type { ModelCard } from './card.js'

/** Every column but the bytes: lists and details never read the graphs. */
const versionInfo = {
  modelId: modelVersions.modelId,
  version: modelVersions.version,
  card: modelVersions.card,
  onnxSha256: modelVersions.onnxSha256,
  sizeBytes: modelVersions.sizeBytes,
  createdAt: modelVersions.createdAt,
  createdBy: modelVersions.createdBy,
}

export type ModelVersionInfo = {
  modelId: string
  version: string
  card: ModelCard
  onnxSha256: string
  sizeBytes: number
  createdAt: Date
  createdBy: string | null
}

export interface ActiveModelVersion {
  name: string
  version: string
  card: ModelCard
  onnx: Uint8Array
}

/** What a server needs to load a version. */
const servable = {
  name: models.name,
  version: modelVersions.version,
  card: modelVersions.card,
  onnx: modelVersions.onnx,
}

export function createModelRepository(db: Database) {
  return {
    /**
     * The model called `values.name`, created if it does not exist, locked until the
     * transaction ends so concurrent registrations of one model take turns.
     */
    async upsertForUpdate(values: NewModelRow, tx: Executor): Promise<ModelRow> {
      const [row] = await tx
        .insert(models)
        .values(values)
        .onConflictDoUpdate({ target: models.name, set: { updatedAt: sql`now()` } })
        .returning()
      if (!row) throw new Error('INSERT ... RETURNING returned no row')
      return row
    },

    async findByName(name: string, tx: Executor = db): Promise<ModelRow | undefined> {
      const [row] = await tx.select().from(models).where(eq(models.name, name))
      return row
    },

    async findByNameForUpdate(name: string, tx: Executor): Promise<ModelRow | undefined> {
      const [row] = await tx.select().from(models).where(eq(models.name, name)).for('update')
      return row
    },

    async list(tx: Executor = db): Promise<ModelRow[]> {
      return tx.select().from(models).orderBy(asc(models.name))
    },

    async setActiveVersion(id: string, version: string, tx: Executor): Promise<ModelRow> {
      const [row] = await tx
        .update(models)
        .set({ activeVersion: version, updatedAt: sql`now()` })
        .where(eq(models.id, id))
        .returning()
      if (!row) throw new Error(`model ${id} vanished inside its transaction`)
      return row
    },

    async touch(id: string, tx: Executor): Promise<void> {
      await tx.update(models).set({ updatedAt: sql`now()` }).where(eq(models.id, id))
    },

    async insertVersion(values: NewModelVersionRow, tx: Executor): Promise<ModelVersionInfo> {
      const [row] = await tx.insert(modelVersions).values(values).returning(versionInfo)
      if (!row) throw new Error('INSERT ... RETURNING returned no row')
      return row
    },

    async findVersion(
      modelId: string,
      version: string,
      tx: Executor = db,
    ): Promise<ModelVersionInfo | undefined> {
      const [row] = await tx
        .select(versionInfo)
        .from(modelVersions)
        .where(and(eq(modelVersions.modelId, modelId), eq(modelVersions.version, version)))
      return row
    },

    /** The versions of all these models in one query, newest first. */
    async listVersions(modelIds: string[], tx: Executor = db): Promise<ModelVersionInfo[]> {
      if (modelIds.length === 0) return []
      return tx
        .select(versionInfo)
        .from(modelVersions)
        .where(inArray(modelVersions.modelId, modelIds))
        .orderBy(desc(modelVersions.createdAt), desc(modelVersions.version))
    },

    async deleteVersion(
      modelId: string,
      version: string,
      tx: Executor,
    ): Promise<ModelVersionInfo | undefined> {
      const [row] = await tx
        .delete(modelVersions)
        .where(and(eq(modelVersions.modelId, modelId), eq(modelVersions.version, version)))
        .returning(versionInfo)
      return row
    },

    /** The active version of every model, with its bytes, to load at start. */
    async activeVersions(tx: Executor = db): Promise<ActiveModelVersion[]> {
      return tx
        .select(servable)
        .from(models)
        .innerJoin(
          modelVersions,
          and(
            eq(modelVersions.modelId, models.id),
            eq(modelVersions.version, models.activeVersion),
          ),
        )
        .orderBy(asc(models.name))
    },

    /** Every model's active version, without bytes. */
    async activeVersionNames(
      tx: Executor = db,
    ): Promise<{ name: string; version: string | null }[]> {
      return tx
        .select({ name: models.name, version: models.activeVersion })
        .from(models)
        .orderBy(asc(models.name))
    },

    /** One version with its bytes, to load; undefined when the model or version is unknown. */
    async findServable(
      name: string,
      version: string,
      tx: Executor = db,
    ): Promise<ActiveModelVersion | undefined> {
      const [row] = await tx
        .select(servable)
        .from(models)
        .innerJoin(modelVersions, eq(modelVersions.modelId, models.id))
        .where(and(eq(models.name, name), eq(modelVersions.version, version)))
      return row
    },
  }
}

export type ModelRepository = ReturnType<typeof createModelRepository>
