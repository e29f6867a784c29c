import type { FastifyBaseLogger } from 'fastify'
import type { BatchingSettings } from '../../../config.js'
import { AppError, defineError } from '../../../shared/errors.js'
import type { ModelCard } from '../card.js'
import { ModelNotFound, ModelVersionNotFound, PredictionQueueFull } from '../errors.js'
import type { ActiveModelVersion } from '../repository.js'
import type { Feeds, InferenceBackend, LoadedModel, LoadOptions } from '../runtime/backend.js'
import { type BatchInfo, createModelBatcher, type MicroBatcher } from '../runtime/batcher.js'
import type { InferOptions, InferResult, ModelServer, ModelState, ServedVersion } from './types.js'

/** A version could not be loaded in this process; the message says why. */
export const ModelUnavailable = defineError('MODEL_UNAVAILABLE', 503)

/** Where versions and their bytes come from: the registry's tables. */
export interface ModelSource {
  /** The active version of every model, with its bytes. */
  activeVersions(): Promise<ActiveModelVersion[]>
  findServable(name: string, version: string): Promise<ActiveModelVersion | undefined>
  /** The active version of `name`: null when it has none, undefined when there is no model. */
  activeVersionOf(name: string): Promise<string | null | undefined>
  /** Every model's active version, without bytes: what `sync` compares with. */
  activeVersionNames(): Promise<{ name: string; version: string | null }[]>
}

export interface ModelServerOptions {
  backend: InferenceBackend
  source: ModelSource
  /** Versions loaded at once; beyond it the least recently used is unloaded. */
  maxLoaded: number
  batching: (model: string) => BatchingSettings
  loadOptions?: LoadOptions
  /** Called after each inference call, e.g. for the batch-size histogram. */
  onBatch?: (served: ServedVersion, info: BatchInfo) => void
  /** Rows one version's queue holds; beyond, requests get PREDICTION_QUEUE_FULL at once. */
  maxQueuedRows?: number
  /** Called for each request refused without running, e.g. for a counter. */
  onRejected?: (served: ServedVersion, reason: 'queue_full') => void
  log: FastifyBaseLogger
  /** How long a failed load is remembered before a request may try again. */
  retryAfterMs?: number
  /** How often `sync` runs on its own once started; 0 never. */
  syncIntervalMs?: number
  /** Serves a version whose card names a remote backend; it has no graph to load. */
  loadRemote?: (version: { name: string; version: string; card: ModelCard }) => LoadedModel
}

interface Entry {
  key: string
  name: string
  version: string
  /** Settles when the version is loaded; rejects with the load failure. */
  ready: Promise<void>
  state: ModelState['state']
  /** The version exists: its bytes were found. Until then a failure is not a load failure. */
  found?: boolean
  error?: string
  failedAt?: number
  served?: ServedVersion
  model?: LoadedModel
  batcher?: MicroBatcher<Feeds, Feeds>
  lastUsed: number
}

export interface ManagedModelServer extends ModelServer {
  /** Loads every active version; failures are recorded (see `states`), never thrown. */
  start(): Promise<void>
  /**
   * Makes `version` serve `name` in this process: loads it first, then switches, so requests
   * never wait for a load; requests already queued on the old version finish there.
   */
  activate(name: string, version: string): Promise<void>
  /** Unloads a version that was deleted. */
  forget(name: string, version: string): Promise<void>
  /**
   * Switches every model this process serves to the version the database says is active:
   * the safety net under the activation broadcast, which a Redis outage can lose.
   */
  sync(): Promise<void>
  /** Versions loaded now. */
  loadedCount(): number
  /** The loaded active version of each model, e.g. to document their inputs. */
  activeServed(): ServedVersion[]
  close(): Promise<void>
}

const keyOf = (name: string, version: string) => `${name}@${version}`

/** Failed loads of inactive versions remembered at once; older ones are forgotten. */
export const MAX_REMEMBERED_FAILURES = 16

/**
 * The models this process serves. Each loaded version has its own micro-batcher, so
 * concurrent predictions of one version share inference calls. Loading happens once per
 * version (concurrent requests share it); the active version of each model is remembered
 * here and changed by `activate`, which the registry calls on this instance and a broadcast
 * carries to the others.
 */
export function createModelServer(options: ModelServerOptions): ManagedModelServer {
  const { backend, source, log } = options
  const retryAfterMs = options.retryAfterMs ?? 10_000
  const entries = new Map<string, Entry>()
  /** The version serving each model; null for a model without an active version. */
  const active = new Map<string, string | null>()
  const switching = new Map<string, Promise<void>>()
  let closed = false
  let syncTimer: NodeJS.Timeout | undefined

  function load(name: string, version: string, bytes?: ActiveModelVersion): Entry {
    const entry: Entry = {
      key: keyOf(name, version),
      name,
      version,
      state: 'loading',
      lastUsed: performance.now(),
      ready: Promise.resolve(),
    }
    entry.ready = (async () => {
      let servable: ActiveModelVersion | undefined
      try {
        servable = bytes ?? (await source.findServable(name, version))
      } finally {
        // Until the version is known to exist, the key is only what a caller asked for:
        // nothing may stay behind under it, or distinct made-up versions would grow the map.
        if (!servable && entries.get(entry.key) === entry) entries.delete(entry.key)
      }
      entry.found = servable !== undefined
      if (!servable) {
        entry.state = 'unloaded'
        log.info({ model: name, version }, 'model version not found')
        throw new ModelVersionNotFound(`Model ${name} has no version ${version}.`)
      }
      const model =
        servable.card.backend && options.loadRemote
          ? options.loadRemote({ name, version, card: servable.card })
          : await backend.load(servable.onnx, { ...options.loadOptions, logId: entry.key })
      const served: ServedVersion = {
        name,
        version,
        card: servable.card,
        signature: model.signature,
      }
      const settings = options.batching(name)
      entry.model = model
      entry.served = served
      entry.batcher = createModelBatcher(model, {
        maxBatchSize: settings.maxBatchSize,
        maxWaitMs: settings.maxWaitMs,
        maxQueued: options.maxQueuedRows,
        onBatch: options.onBatch ? (info) => options.onBatch?.(served, info) : undefined,
      })
      entry.state = 'loaded'
      if (closed || entries.get(entry.key) !== entry) await retire(entry)
      else evictBeyondLimit(entry)
    })().catch((error: unknown) => {
      if (entry.state === 'loading' && entries.get(entry.key) === entry) {
        entry.state = 'failed'
        // Shown to callers: a domain reason (a bad graph) is theirs to read; anything else
        // (a database error carries its SQL and parameters) stays in the log below.
        entry.error = error instanceof AppError ? error.message : 'an internal error occurred'
        entry.failedAt = performance.now()
        log.error({ err: error, model: name, version }, 'model version failed to load')
        forgetOldFailures()
      }
      throw error
    })
    // A failure reaches whoever awaits it; an entry nobody awaited must not crash the process.
    entry.ready.catch(() => {})
    entries.set(entry.key, entry)
    return entry
  }

  /** Stops routing to the entry; what it has queued or running still finishes. */
  async function retire(entry: Entry): Promise<void> {
    if (entries.get(entry.key) === entry) entries.delete(entry.key)
    entry.state = 'unloaded'
    await entry.batcher?.close()
    await entry.model?.release()
  }

  /**
   * Failed loads are remembered so that a broken version is not loaded again on every request
   * (and so that /ready can name an active one), but only the newest few: pinned versions are
   * chosen by callers, and each failure holds its message.
   */
  function forgetOldFailures(): void {
    const failed = [...entries.values()].filter(
      (entry) => entry.state === 'failed' && active.get(entry.name) !== entry.version,
    )
    const excess = failed.length - MAX_REMEMBERED_FAILURES
    if (excess <= 0) return
    failed.sort((a, b) => (a.failedAt ?? 0) - (b.failedAt ?? 0))
    for (const entry of failed.slice(0, excess)) entries.delete(entry.key)
  }

  /** Unloads least recently used versions beyond the limit, inactive ones first. */
  function evictBeyondLimit(keep: Entry): void {
    const loaded = [...entries.values()].filter((entry) => entry.state === 'loaded')
    const excess = loaded.length - options.maxLoaded
    if (excess <= 0) return
    const isActive = (entry: Entry) => active.get(entry.name) === entry.version
    const victims = loaded
      .filter((entry) => entry !== keep)
      .sort((a, b) => Number(isActive(a)) - Number(isActive(b)) || a.lastUsed - b.lastUsed)
      .slice(0, excess)
    for (const victim of victims) {
      log.info({ model: victim.name, version: victim.version }, 'model version unloaded (LRU)')
      void retire(victim)
    }
  }

  async function versionFor(name: string, pinned?: string): Promise<string> {
    if (pinned !== undefined) return pinned
    let version = active.get(name)
    if (version === undefined) {
      // Registered after this instance started (possibly on another instance).
      version = await source.activeVersionOf(name)
      if (version === undefined) throw new ModelNotFound(`Model ${name} does not exist.`)
      if (!active.has(name)) active.set(name, version)
      version = active.get(name) ?? null
    }
    if (version === null) throw new ModelNotFound(`Model ${name} has no active version.`)
    return version
  }

  /** The loaded entry for a request, loading it when needed. */
  async function acquire(name: string, pinned?: string): Promise<Entry> {
    if (closed) throw new ModelUnavailable('The model server is shutting down.')
    const version = await versionFor(name, pinned)
    const key = keyOf(name, version)
    let entry = entries.get(key)
    if (entry?.state === 'failed' && performance.now() - (entry.failedAt ?? 0) >= retryAfterMs) {
      entries.delete(key)
      entry = undefined
    }
    entry ??= load(name, version)
    try {
      await entry.ready
    } catch (error) {
      // Not found, or the lookup itself failed (the database): not a load failure.
      if (!entry.found) throw error
      throw new ModelUnavailable(
        `Model ${name} version ${version} cannot be loaded: ${entry.error}`,
      )
    }
    return entry
  }

  async function switchTo(name: string, version: string): Promise<void> {
    if (active.get(name) === version) return
    const next = await acquire(name, version)
    const previous = active.get(name)
    active.set(name, version)
    log.info({ model: name, version, previous }, 'model version activated')
    const old = previous ? entries.get(keyOf(name, previous)) : undefined
    if (old && old !== next) await retire(old)
  }

  async function infer(
    name: string,
    feeds: Feeds | ((served: ServedVersion) => Feeds),
    inferOptions: InferOptions = {},
  ) {
    // A retired entry (swapped out or evicted while this request awaited) is skipped; the
    // check and the submit run in one turn of the event loop, so a submit always lands on a
    // batcher that will run it.
    for (;;) {
      const entry = await acquire(name, inferOptions.version)
      if (entry.state !== 'loaded' || !entry.batcher || !entry.served) continue
      entry.lastUsed = performance.now()
      const served = entry.served
      const pending = entry.batcher.submit(typeof feeds === 'function' ? feeds(served) : feeds)
      try {
        return { served, outputs: await pending } satisfies InferResult
      } catch (error) {
        if (error instanceof PredictionQueueFull) options.onRejected?.(served, 'queue_full')
        throw error
      }
    }
  }

  return {
    infer,

    async resolve(name, inferOptions = {}) {
      const entry = await acquire(name, inferOptions.version)
      return entry.served as ServedVersion
    },

    isReady(name, version) {
      const wanted = version ?? active.get(name)
      if (!wanted) return false
      return entries.get(keyOf(name, wanted))?.state === 'loaded'
    },

    allActiveReady() {
      return [...active].every(
        ([name, version]) =>
          version === null || entries.get(keyOf(name, version))?.state !== 'failed',
      )
    },

    states() {
      const states: ModelState[] = []
      for (const entry of entries.values()) {
        states.push({
          name: entry.name,
          version: entry.version,
          active: active.get(entry.name) === entry.version,
          state: entry.state,
          ...(entry.error ? { error: entry.error } : {}),
        })
      }
      return states.sort(
        (a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version),
      )
    },

    async start() {
      const versions = await source.activeVersions()
      for (const servable of versions) active.set(servable.name, servable.version)
      // More active models than may be loaded: the first ones by name load now, the others
      // on their first request, instead of loading all only to unload the surplus.
      const now = versions.slice(0, options.maxLoaded)
      // Side by side: each session loads on a thread of its own.
      await Promise.all(
        now.map((servable) => {
          const entry = entries.get(keyOf(servable.name, servable.version))
          return (entry ?? load(servable.name, servable.version, servable)).ready.catch(() => {})
        }),
      )
      const failed = this.states().filter((state) => state.state === 'failed')
      const interval = options.syncIntervalMs ?? 0
      if (interval > 0 && !syncTimer) {
        syncTimer = setInterval(() => {
          this.sync().catch((error: unknown) => {
            log.warn({ err: error }, 'could not compare active model versions with the database')
          })
        }, interval)
        // The process may exit while a sync is due.
        syncTimer.unref()
      }
      log.info(
        {
          loaded: now.length - failed.length,
          failed: failed.map((state) => state.name),
          deferred: versions.length - now.length,
        },
        'active models loaded',
      )
    },

    activate(name, version) {
      // One switch per model at a time, in call order: two quick activations must end on
      // the second even when the first one's version takes longer to load.
      const previous = switching.get(name) ?? Promise.resolve()
      const next = previous.catch(() => {}).then(() => switchTo(name, version))
      switching.set(name, next)
      void next
        .finally(() => {
          if (switching.get(name) === next) switching.delete(name)
        })
        .catch(() => {})
      return next
    },

    async sync() {
      const wanted = await source.activeVersionNames()
      await Promise.all(
        wanted
          // Models this process has not served yet are looked up on their first request.
          .filter(({ name, version }) => active.has(name) && active.get(name) !== version)
          .map(async ({ name, version }) => {
            if (version === null) return
            try {
              await this.activate(name, version)
              log.info({ model: name, version }, 'active version caught up with the database')
            } catch (error) {
              log.error(
                { err: error, model: name, version },
                'could not switch to the active version',
              )
            }
          }),
      )
    },

    async forget(name, version) {
      const entry = entries.get(keyOf(name, version))
      if (entry) await retire(entry)
    },

    activeServed() {
      const served: ServedVersion[] = []
      for (const [name, version] of active) {
        const entry = version ? entries.get(keyOf(name, version)) : undefined
        if (entry?.state === 'loaded' && entry.served) served.push(entry.served)
      }
      return served
    },

    loadedCount() {
      let count = 0
      for (const entry of entries.values()) if (entry.state === 'loaded') count++
      return count
    },

    async close() {
      closed = true
      clearInterval(syncTimer)
      await Promise.all([...entries.values()].map((entry) => retire(entry)))
    },
  }
}
