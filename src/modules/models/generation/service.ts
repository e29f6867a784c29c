import { ValidationFailed } from '../../../shared/errors.js'
import type { Generation } from '../card.js'
import { ModelTaskMismatch } from '../errors.js'
import type { UpstreamClient } from '../remote/upstream.js'
import { tensor } from '../runtime/backend.js'
import type { ModelServer, ServedVersion } from '../serving/types.js'
import { streamChatCompletion } from './openai-upstream.js'
import { createSampler, createStopFilter } from './sampler.js'

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export interface GenerationRequest {
  prompt?: string
  messages?: ChatMessage[]
  max_tokens?: number
  temperature?: number
  top_p?: number
  stop?: string | string[]
  seed?: number
}

export type FinishReason = 'stop' | 'length'

export interface Usage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
}

/** What a generation yields: text as it is produced, then one final event. */
export type GenerationEvent =
  | { type: 'token'; text: string }
  | { type: 'done'; finish_reason: FinishReason; usage: Usage }

export interface GenerationContext {
  /** Aborted when the client goes away: generation (and an upstream call) stops. */
  signal?: AbortSignal
  traceparent?: string
  version?: string
}

export interface Generated {
  model: string
  version: string
  events: AsyncGenerator<GenerationEvent>
}

export interface GenerationServiceDeps {
  server: Pick<ModelServer, 'resolve' | 'infer'>
  upstream: UpstreamClient
  /** The largest max_tokens a request may ask for. */
  maxTokens: number
}

const DEFAULT_MAX_TOKENS = 64

/** A chat for a model without a chat template: the contents, one per line, then a new line. */
export function promptOf(request: GenerationRequest): string {
  if (request.prompt !== undefined) return request.prompt
  return `${(request.messages ?? []).map((message) => message.content).join('\n')}\n`
}

function checkRequest(request: GenerationRequest, maxTokens: number): void {
  const problems = []
  if ((request.prompt === undefined) === (request.messages === undefined)) {
    problems.push({ path: 'body', message: 'must have exactly one of prompt and messages' })
  }
  if (request.messages?.length === 0) {
    problems.push({ path: 'body.messages', message: 'must not be empty' })
  }
  if ((request.max_tokens ?? 0) > maxTokens) {
    problems.push({ path: 'body.max_tokens', message: `must be at most ${maxTokens}` })
  }
  if (problems.length > 0) throw new ValidationFailed(problems)
}

/**
 * Text generation: a shipped character-level model run step by step in this process (each
 * step one inference call, batched with other generations' steps), or an OpenAI-compatible
 * server streamed through the remote-backend client.
 */
export function createGenerationService({ server, upstream, maxTokens }: GenerationServiceDeps) {
  async function* local(
    served: ServedVersion,
    generation: Generation,
    request: GenerationRequest,
    context: GenerationContext,
  ): AsyncGenerator<GenerationEvent> {
    const prompt = promptOf(request)
    const limit = request.max_tokens ?? DEFAULT_MAX_TOKENS
    const sample = createSampler({
      temperature: request.temperature ?? 1,
      topP: request.top_p ?? 1,
      seed: request.seed,
    })
    const stops = typeof request.stop === 'string' ? [request.stop] : (request.stop ?? [])
    const filter = createStopFilter(stops)
    const { vocabulary, context_length: width, pad } = generation
    const indexOf = new Map(vocabulary.map((char, index) => [char, index]))
    const padIndex = BigInt(indexOf.get(pad) ?? 0)
    // The window of the last `width` characters, as indexes; unknown characters read as pad.
    const window: bigint[] = Array.from(prompt.slice(-width), (char) =>
      BigInt(indexOf.get(char) ?? Number(padIndex)),
    )
    while (window.length < width) window.unshift(padIndex)
    const promptTokens = [...prompt].length
    let generated = 0
    let finish: FinishReason = 'length'
    while (generated < limit) {
      if (context.signal?.aborted) return
      const { outputs } = await server.infer(
        served.name,
        { [generation.input]: tensor('int64', [1, width], BigInt64Array.from(window)) },
        { version: served.version },
      )
      const logits = outputs[generation.output]
      if (logits?.type !== 'float32') throw new Error('the model gave no logits')
      const next = sample(logits.data)
      generated++
      window.shift()
      window.push(BigInt(next))
      const { emit, stopped } = filter.push(vocabulary[next] ?? pad)
      if (emit) yield { type: 'token', text: emit }
      if (stopped) {
        finish = 'stop'
        break
      }
    }
    if (finish === 'length') {
      const rest = filter.flush()
      if (rest) yield { type: 'token', text: rest }
    }
    yield {
      type: 'done',
      finish_reason: finish,
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: generated,
        total_tokens: promptTokens + generated,
      },
    }
  }

  return {
    /**
     * Starts a generation. Resolving the model and, for a remote one, opening the upstream
     * stream happen before this resolves, so a caller learns of a missing model or an open
     * breaker as a problem before any byte of an answer is sent.
     */
    async generate(
      name: string,
      request: GenerationRequest,
      context: GenerationContext = {},
    ): Promise<Generated> {
      checkRequest(request, maxTokens)
      const served = await server.resolve(name, { version: context.version })
      const { card } = served
      if (card.task !== 'text-generation') {
        throw new ModelTaskMismatch(`Model ${name} is a ${card.task} model: use its predict route.`)
      }
      const identity = { model: served.name, version: served.version }
      if (card.backend?.kind === 'openai') {
        const events = await streamChatCompletion({
          upstream,
          key: identity,
          backend: card.backend,
          request,
          signal: context.signal,
          traceparent: context.traceparent,
        })
        return { ...identity, events }
      }
      if (!card.generation) throw new ModelTaskMismatch(`Model ${name} cannot generate text.`)
      return { ...identity, events: local(served, card.generation, request, context) }
    },
  }
}

export type GenerationService = ReturnType<typeof createGenerationService>
