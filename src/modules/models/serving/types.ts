import type { ModelCard } from '../card.js'
import type { Feeds, ModelSignature } from '../runtime/backend.js'

/** A model version as it serves: its card and the signature its graph declares. */
export interface ServedVersion {
  name: string
  version: string
  card: ModelCard
  signature: ModelSignature
}

export interface InferOptions {
  /** Pins a version; the active one when omitted. */
  version?: string
}

export interface InferResult {
  served: ServedVersion
  outputs: Feeds
}

/** How one model version stands in this process. */
export interface ModelState {
  name: string
  version: string
  active: boolean
  state: 'loading' | 'loaded' | 'failed' | 'unloaded'
  /** Why loading failed. */
  error?: string
}

/**
 * The models this process serves: active versions loaded at start, pinned versions loaded on
 * demand, each behind its own micro-batcher.
 */
export interface ModelServer {
  /**
   * Runs feeds (leading dim = rows) through the micro-batcher of the version; rejects with
   * MODEL_NOT_FOUND / MODEL_VERSION_NOT_FOUND (404) or MODEL_UNAVAILABLE (503, load failed).
   * Feeds built by a function are built for the version that will run them, at the moment
   * they are queued: a request that spans an activation never mixes two versions' inputs.
   */
  infer(
    name: string,
    feeds: Feeds | ((served: ServedVersion) => Feeds),
    options?: InferOptions,
  ): Promise<InferResult>
  /** The version that would answer, loading it when needed; rejects as `infer` does. */
  resolve(name: string, options?: InferOptions): Promise<ServedVersion>
  /** True when the version (the active one when omitted) is loaded and serving. */
  isReady(name: string, version?: string): boolean
  /** Every active model loaded: what /ready and /v2/health/ready report. */
  allActiveReady(): boolean
  states(): ModelState[]
}
