import { AsyncLocalStorage } from 'node:async_hooks'
import { ValidationFailed } from '../../../shared/errors.js'
import type { ModelCard } from '../card.js'
import { ModelTaskMismatch, UpstreamFailed } from '../errors.js'
import { datatypeOf, decodeInferRequest } from '../kserve/codec.js'
import type { InferRequest } from '../kserve/schemas.js'
import type { Feeds, LoadedModel, ModelSignature, TensorData } from '../runtime/backend.js'
import type { UpstreamClient } from './upstream.js'

/**
 * The trace context of the request being served. A micro-batch sent upstream carries the
 * context of the request that opened it: one call cannot carry several parents.
 */
export const traceContext = new AsyncLocalStorage<{ traceparent?: string }>()

/**
 * The request's `traceparent`, when it sent exactly one: passed on as it is while tracing is
 * off (with tracing on, the upstream call carries its own span's instead).
 */
export function traceparentOf(request: { headers: Record<string, unknown> }): string | undefined {
  const value = request.headers.traceparent
  return typeof value === 'string' ? value : undefined
}

/**
 * Makes the request's trace context the one its remote calls carry. Entering a context
 * switches on Node's async hooks, after which every promise of the process pays for
 * propagating it (about 4 % of the CPU of `POST /v1/predict`); a request without a
 * `traceparent` has nothing to carry, so it enters one only to clear what an earlier
 * request left in this execution context.
 */
export function enterTraceContext(request: { headers: Record<string, unknown> }): void {
  const traceparent = traceparentOf(request)
  if (traceparent === undefined && traceContext.getStore() === undefined) return
  traceContext.enterWith({ traceparent })
}

/** What the card says the graph takes and answers: a remote model has no graph here to read. */
export function cardSignature(card: ModelCard): ModelSignature {
  return {
    inputs: card.preprocessing.tensors.map((tensor) => ({
      name: tensor.name,
      type: tensor.dtype,
      shape: [...tensor.shape],
    })),
    outputs: card.outputs.map((output) => ({
      name: output.name,
      type: output.dtype,
      shape: [...output.shape],
    })),
  }
}

function jsonData(feed: TensorData): unknown[] {
  if (feed.type === 'int64' || feed.type === 'uint64') return Array.from(feed.data, Number)
  if (feed.type === 'string') return [...feed.data]
  return Array.from(feed.data as ArrayLike<number>)
}

/** The upstream's answer has the protocol's outer shape; the codec checks every tensor. */
function outputsOf(answer: unknown): InferRequest['inputs'] {
  const outputs = (answer as { outputs?: unknown } | null)?.outputs
  if (!Array.isArray(outputs)) throw new Error('the answer has no outputs array')
  for (const [index, output] of outputs.entries()) {
    const { name, shape, datatype, data } = (output ?? {}) as Record<string, unknown>
    const wellFormed =
      typeof name === 'string' &&
      typeof datatype === 'string' &&
      Array.isArray(data) &&
      Array.isArray(shape) &&
      shape.every((dim) => Number.isSafeInteger(dim) && (dim as number) >= 0)
    if (!wellFormed) throw new Error(`outputs[${index}] is not a tensor`)
  }
  return outputs as InferRequest['inputs']
}

export interface RemoteModelOptions {
  name: string
  version: string
  card: ModelCard
  upstream: UpstreamClient
}

/**
 * A model version served by a KServe v2 (Open Inference Protocol) server: each micro-batch is
 * one `infer` call. The answer is checked against the card (every declared output, its
 * datatype, its shape with one row per request row, every element) before anyone reads it.
 */
export function createRemoteModel({
  name,
  version,
  card,
  upstream,
}: RemoteModelOptions): LoadedModel {
  const signature = cardSignature(card)
  const backend = card.backend
  const expected: ModelSignature = { inputs: signature.outputs, outputs: [] }
  let released = false
  return {
    signature,
    async run(feeds: Feeds): Promise<Feeds> {
      if (backend?.kind !== 'kserve-v2') {
        throw new ModelTaskMismatch(`Model ${name} generates text: use its generate route.`)
      }
      if (released) throw new UpstreamFailed(`Model ${name} ${version} was unloaded.`)
      const rows = Object.values(feeds)[0]?.dims[0] ?? 0
      const base = backend.url.replace(/\/+$/, '')
      const answer = await upstream.postJson({
        key: { model: name, version },
        url: `${base}/v2/models/${encodeURIComponent(backend.model)}/infer`,
        body: {
          inputs: Object.entries(feeds).map(([input, feed]) => ({
            name: input,
            shape: [...feed.dims],
            datatype: datatypeOf(feed.type),
            data: jsonData(feed),
          })),
          outputs: card.outputs.map((output) => ({ name: output.name })),
        },
        traceparent: traceContext.getStore()?.traceparent,
      })
      const wanted = new Set(card.outputs.map((output) => output.name))
      try {
        const outputs = outputsOf(answer).filter((output) => wanted.has(output.name))
        const decoded = decodeInferRequest(expected, { inputs: outputs })
        for (const [output, tensor] of Object.entries(decoded)) {
          if (tensor.dims[0] !== rows) {
            throw new Error(`'${output}' has ${tensor.dims[0]} rows for ${rows} asked`)
          }
        }
        return decoded
      } catch (error) {
        const reason =
          error instanceof ValidationFailed
            ? error.errors
                .slice(0, 3)
                .map(
                  (problem) =>
                    `${problem.path.replace('body.inputs', 'outputs')} ${problem.message}`,
                )
                .join('; ')
            : (error as Error).message
        throw new UpstreamFailed(
          `The remote backend of ${name} ${version} answered something that does not fit its card: ${reason}.`,
        )
      }
    },
    async release() {
      released = true
    },
  }
}
