import type { RemoteBackend } from '../card.js'
import { UpstreamFailed } from '../errors.js'
import type { UpstreamClient, UpstreamKey } from '../remote/upstream.js'
import type { FinishReason, GenerationEvent, GenerationRequest, Usage } from './service.js'

/** A line of server-sent events longer than this is not a chat completion chunk. */
const MAX_LINE_BYTES = 1_048_576

export interface ChatStreamOptions {
  upstream: UpstreamClient
  key: UpstreamKey
  backend: RemoteBackend
  request: GenerationRequest
  signal?: AbortSignal
  traceparent?: string
}

interface Chunk {
  choices?: { delta?: { content?: unknown }; finish_reason?: unknown }[]
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown }
}

/** The `data:` payloads of an event stream, one per event, from raw chunks. */
async function* dataLines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of chunks) {
    buffer += decoder.decode(chunk, { stream: true })
    let end = buffer.indexOf('\n')
    while (end >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, '')
      buffer = buffer.slice(end + 1)
      if (line.startsWith('data:')) yield line.slice(5).trimStart()
      end = buffer.indexOf('\n')
    }
    if (buffer.length > MAX_LINE_BYTES) throw new Error('an event longer than the limit')
  }
}

const isCount = (value: unknown): value is number =>
  Number.isSafeInteger(value) && (value as number) >= 0

/**
 * Streams a chat completion from an OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI).
 * The upstream call is opened before this resolves, with the client's retries, so only a
 * failure before the first token is retried. Every chunk is checked; anything else ends the
 * stream with a 502 problem, never forwarded as it came.
 */
export async function streamChatCompletion(
  options: ChatStreamOptions,
): Promise<AsyncGenerator<GenerationEvent>> {
  const { request, backend, key } = options
  const stream = await options.upstream.openStream({
    key,
    url: `${backend.url.replace(/\/+$/, '')}/v1/chat/completions`,
    signal: options.signal,
    traceparent: options.traceparent,
    body: {
      model: backend.model,
      messages: request.messages ?? [{ role: 'user', content: request.prompt ?? '' }],
      stream: true,
      stream_options: { include_usage: true },
      ...(request.max_tokens === undefined ? {} : { max_tokens: request.max_tokens }),
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(request.top_p === undefined ? {} : { top_p: request.top_p }),
      ...(request.stop === undefined ? {} : { stop: request.stop }),
      ...(request.seed === undefined ? {} : { seed: request.seed }),
    },
  })
  const who = `The remote backend of ${key.model} ${key.version}`
  return (async function* () {
    let finish: FinishReason | undefined
    let usage: Usage | undefined
    let completion = 0
    let done = false
    try {
      for await (const data of dataLines(stream.chunks)) {
        if (data === '[DONE]') {
          done = true
          break
        }
        let chunk: Chunk
        try {
          chunk = JSON.parse(data) as Chunk
        } catch {
          throw new UpstreamFailed(`${who} streamed something that is not JSON.`)
        }
        if (typeof chunk !== 'object' || chunk === null) {
          throw new UpstreamFailed(`${who} streamed something that is not a completion chunk.`)
        }
        const choice = chunk.choices?.[0]
        const content = choice?.delta?.content
        if (content !== undefined && content !== null && typeof content !== 'string') {
          throw new UpstreamFailed(`${who} streamed a delta whose content is not text.`)
        }
        if (typeof content === 'string' && content.length > 0) {
          completion++
          yield { type: 'token', text: content }
        }
        const reason = choice?.finish_reason
        if (reason !== undefined && reason !== null) finish = reason === 'stop' ? 'stop' : 'length'
        const counts = chunk.usage
        if (counts && isCount(counts.prompt_tokens) && isCount(counts.completion_tokens)) {
          usage = {
            prompt_tokens: counts.prompt_tokens,
            completion_tokens: counts.completion_tokens,
            total_tokens: counts.prompt_tokens + counts.completion_tokens,
          }
        }
      }
    } catch (error) {
      if (options.signal?.aborted) return
      if (error instanceof UpstreamFailed || (error as { status?: number }).status) throw error
      throw new UpstreamFailed(`${who} stream failed: ${(error as Error).message}.`)
    } finally {
      stream.cancel()
    }
    if (options.signal?.aborted) return
    if (!done && finish === undefined) throw new UpstreamFailed(`${who} ended its stream early.`)
    yield {
      type: 'done',
      finish_reason: finish ?? 'stop',
      usage: usage ?? { prompt_tokens: 0, completion_tokens: completion, total_tokens: completion },
    }
  })()
}
