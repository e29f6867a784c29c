import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ROLES } from '../../../shared/caller.js'
import { AppError } from '../../../shared/errors.js'
import { problemResponses } from '../../../shared/schemas.js'
import { ModelNameSchema, PinnedVersionSchema } from '../card.js'
import { traceparentOf } from '../remote/remote-model.js'
import { ModelParamsSchema } from '../schemas.js'
import { retryAfterWhenQueueFull } from '../serving/retry-after.js'
import type {
  Generated,
  GenerationEvent,
  GenerationRequest,
  GenerationService,
  Usage,
} from './service.js'

export interface GenerationRoutesOptions {
  generation: GenerationService
  maxTokens: number
}

const tags = ['generation']
const config = { auth: { roles: ROLES }, rateLimitGroup: 'predict' as const }

const MessageSchema = Type.Object({
  role: Type.Union([
    Type.Literal('system'),
    Type.Literal('developer'),
    Type.Literal('user'),
    Type.Literal('assistant'),
  ]),
  content: Type.String({ maxLength: 100_000 }),
})

const StopSchema = Type.Union([
  Type.String({ minLength: 1, maxLength: 64 }),
  Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 4 }),
])

function samplingFields(maxTokens: number) {
  return {
    max_tokens: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: maxTokens,
        description: 'Tokens to generate at most (64 when absent).',
      }),
    ),
    temperature: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 2,
        description: '0 picks the most likely token; 1 when absent.',
      }),
    ),
    top_p: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1,
        description: 'Nucleus sampling mass; 1 when absent.',
      }),
    ),
    stop: Type.Optional(StopSchema),
    seed: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 4_294_967_295,
        description: 'The same seed gives the same text.',
      }),
    ),
    stream: Type.Optional(
      Type.Boolean({
        description: 'Stream Server-Sent Events, as `Accept: text/event-stream` does.',
      }),
    ),
  }
}

const UsageSchema = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
})
const FinishReasonSchema = Type.Union([Type.Literal('stop'), Type.Literal('length')])

const GeneratedSchema = Type.Object({
  model: Type.String(),
  version: Type.String(),
  text: Type.String(),
  finish_reason: FinishReasonSchema,
  usage: UsageSchema,
})

const ChatCompletionSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({ role: Type.Literal('assistant'), content: Type.String() }),
      finish_reason: FinishReasonSchema,
      logprobs: Type.Null(),
    }),
  ),
  usage: UsageSchema,
})

const eventStream = (description: string) => ({
  content: { 'text/event-stream': { schema: Type.String({ description }) } },
})

const failures = problemResponses(400, 404, 409, 413, 415, 422, 502, 503, 504)

const wantsStream = (request: FastifyRequest, stream?: boolean) =>
  stream ?? (request.headers.accept ?? '').includes('text/event-stream')

/**
 * Starts a generation with an abort signal tied to the client's connection, and reads its
 * first event before anything is sent: a problem until then (unknown model, open breaker,
 * failing upstream) is answered as problem+json with its status, not inside a 200 stream.
 */
async function start(
  _request: FastifyRequest,
  reply: FastifyReply,
  begin: (signal: AbortSignal) => Promise<Generated>,
) {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort()
  })
  const generated = await begin(controller.signal)
  const first = await generated.events.next()
  async function* events(): AsyncGenerator<GenerationEvent> {
    if (!first.done) yield first.value
    yield* generated.events
  }
  return { generated, events: events(), signal: controller.signal }
}

async function collect(events: AsyncIterable<GenerationEvent>) {
  let text = ''
  for await (const event of events) {
    if (event.type === 'token') text += event.text
    else return { text, finish_reason: event.finish_reason, usage: event.usage }
  }
  throw new AppError('INFERENCE_FAILED', 500, 'The generation ended without a result.')
}

/** A problem raised after the answer began: the stream's last event, never a stack. */
function streamedProblem(error: unknown, request: FastifyRequest) {
  const known = error instanceof AppError && error.status < 500 ? error : undefined
  const upstream = error instanceof AppError && [502, 503, 504].includes(error.status)
  const source = known ?? (upstream ? (error as AppError) : undefined)
  if (!source) request.log.error({ err: error }, 'generation failed mid-stream')
  return {
    type: 'about:blank',
    title: source ? source.code : 'INTERNAL_ERROR',
    status: source?.status ?? 500,
    code: source?.code ?? 'INTERNAL_ERROR',
    detail: source ? source.message : 'An internal error occurred.',
    request_id: request.id,
  }
}

const sse = (data: unknown, event?: string) =>
  `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`

function sendStream(reply: FastifyReply, lines: AsyncGenerator<string>) {
  reply
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache, no-transform')
    // Proxies such as nginx would otherwise buffer the stream and deliver it in one piece.
    .header('x-accel-buffering', 'no')
  return reply.send(Readable.from(lines, { objectMode: false }))
}

export const generationRoutes: FastifyPluginAsyncTypebox<GenerationRoutesOptions> = async (
  app,
  { generation, maxTokens },
) => {
  app.addHook('onError', retryAfterWhenQueueFull)

  app.post(
    '/models/:name/generate',
    {
      config,
      schema: {
        summary: 'Generate text',
        description:
          'Continues a `prompt` (or a chat as `messages`) with a text-generation model. Answers ' +
          'JSON, or with `Accept: text/event-stream` (or `"stream": true`) streams `token` ' +
          'events as they are produced and a final `done` event with `finish_reason` and ' +
          '`usage`; a client that disconnects stops the generation.',
        tags,
        params: ModelParamsSchema,
        querystring: Type.Object({ version: Type.Optional(PinnedVersionSchema) }),
        body: Type.Object(
          {
            prompt: Type.Optional(Type.String({ maxLength: 100_000 })),
            messages: Type.Optional(Type.Array(MessageSchema, { minItems: 1, maxItems: 256 })),
            ...samplingFields(maxTokens),
          },
          { additionalProperties: false },
        ),
        response: {
          200: {
            content: {
              'application/json': { schema: GeneratedSchema },
              ...eventStream(
                '`event: token` `{"text"}` per token, then `event: done` `{model, version, finish_reason, usage}`; a failure after the start is an `event: error` problem.',
              ).content,
            },
          },
          ...failures,
        },
      },
    },
    async (request, reply) => {
      const { stream, ...body } = request.body
      const { generated, events } = await start(request, reply, (signal) =>
        generation.generate(request.params.name, body as GenerationRequest, {
          signal,
          version: request.query.version,
          traceparent: traceparentOf(request),
        }),
      )
      const identity = { model: generated.model, version: generated.version }
      if (!wantsStream(request, stream)) return { ...identity, ...(await collect(events)) }
      return sendStream(
        reply,
        (async function* () {
          try {
            for await (const event of events) {
              if (event.type === 'token') yield sse({ text: event.text }, 'token')
              else
                yield sse(
                  { ...identity, finish_reason: event.finish_reason, usage: event.usage },
                  'done',
                )
            }
          } catch (error) {
            yield sse(streamedProblem(error, request), 'error')
          }
        })(),
      )
    },
  )

  app.post(
    '/chat/completions',
    {
      config,
      schema: {
        summary: 'Chat completion (OpenAI-compatible)',
        description:
          'The OpenAI chat completions API over the text-generation models: `model` names one ' +
          'of them. Streams `chat.completion.chunk` events ending with `data: [DONE]` when ' +
          '`stream` is true. Accepts an API key as `Authorization: Bearer <key>`, so the ' +
          'official OpenAI clients work unchanged. Other OpenAI parameters are accepted and ignored.',
        tags,
        body: Type.Object({
          model: ModelNameSchema,
          messages: Type.Array(MessageSchema, { minItems: 1, maxItems: 256 }),
          max_completion_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: maxTokens })),
          n: Type.Optional(Type.Literal(1)),
          stream_options: Type.Optional(
            Type.Union([
              Type.Object({ include_usage: Type.Optional(Type.Boolean()) }),
              Type.Null(),
            ]),
          ),
          ...samplingFields(maxTokens),
        }),
        response: {
          200: {
            content: {
              'application/json': { schema: ChatCompletionSchema },
              ...eventStream('`data: <chat.completion.chunk>` per token, then `data: [DONE]`.')
                .content,
            },
          },
          ...failures,
        },
      },
    },
    async (request, reply) => {
      const body = request.body
      const { generated, events } = await start(request, reply, (signal) =>
        generation.generate(
          body.model,
          {
            messages: body.messages.map(({ role, content }) => ({
              role: role === 'developer' ? 'system' : role,
              content,
            })),
            max_tokens: body.max_completion_tokens ?? body.max_tokens,
            temperature: body.temperature,
            top_p: body.top_p,
            stop: body.stop,
            seed: body.seed,
          },
          { signal, traceparent: traceparentOf(request) },
        ),
      )
      const id = `chatcmpl-${randomUUID()}`
      const created = Math.floor(Date.now() / 1000)
      const head = {
        id,
        created,
        model: generated.model,
        system_fingerprint: `${generated.model}@${generated.version}`,
      }
      if (!body.stream) {
        const { text, finish_reason, usage } = await collect(events)
        return {
          ...head,
          object: 'chat.completion' as const,
          choices: [
            {
              index: 0,
              message: { role: 'assistant' as const, content: text },
              finish_reason,
              logprobs: null,
            },
          ],
          usage,
        }
      }
      const includeUsage = body.stream_options?.include_usage === true
      const chunk = (choices: unknown[], usage?: Usage) =>
        sse({ ...head, object: 'chat.completion.chunk', choices, ...(usage ? { usage } : {}) })
      return sendStream(
        reply,
        (async function* () {
          yield chunk([
            { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null },
          ])
          try {
            for await (const event of events) {
              if (event.type === 'token') {
                yield chunk([{ index: 0, delta: { content: event.text }, finish_reason: null }])
              } else {
                yield chunk([{ index: 0, delta: {}, finish_reason: event.finish_reason }])
                if (includeUsage) yield chunk([], event.usage)
              }
            }
          } catch (error) {
            // The OpenAI clients read an `error` member in a data event as a failure.
            const problem = streamedProblem(error, request)
            yield sse({
              error: { message: problem.detail, type: problem.code, code: problem.code },
            })
          }
          yield 'data: [DONE]\n\n'
        })(),
      )
    },
  )
}
