import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import type { WebSocket } from 'ws'
import { callerOf } from '../../platform/auth.js'
import { IdParamsSchema, problemResponses } from '../../shared/schemas.js'
import type { JobEvent } from './repository.js'
import {
  JobCreateSchema,
  JobEventsHeadersSchema,
  JobListQuerySchema,
  JobPageSchema,
  JobSchema,
} from './schemas.js'
import type { JobService } from './service.js'

export interface JobRoutesOptions {
  jobs: JobService
  /** Seconds between SSE comment lines that keep idle proxies from closing the stream. */
  heartbeatMs?: number
}

const tags = ['jobs']
const locationOf = ({ id }: { id: string }) => `/v1/jobs/${id}`
const ownership =
  'A user sees only the jobs they started (another user’s job answers 404); viewers and ' +
  'admins see every job.'

/** WebSocket close codes of the job stream; documented in docs/JOBS.md. */
export const WS_CLOSE = { jobEnded: 1000, goingAway: 1001, error: 1011 } as const

/** One Server-Sent Event: the id is the event's sequence number, for Last-Event-ID. */
function sseFrame(event: JobEvent): string {
  return `id: ${event.seq}\nevent: ${event.kind}\ndata: ${JSON.stringify(event.data)}\n\n`
}

export const jobRoutes: FastifyPluginAsyncTypebox<JobRoutesOptions> = async (
  app,
  { jobs, heartbeatMs = 15_000 },
) => {
  // Streams end when the app closes, or its server would wait for them for ever.
  const streams = new Set<AbortController>()
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.abort()
  })
  const openStream = () => {
    const controller = new AbortController()
    streams.add(controller)
    return { signal: controller.signal, controller, done: () => streams.delete(controller) }
  }

  app.post(
    '',
    {
      schema: {
        summary: 'Start a job',
        description:
          'Queues a job and answers at once with 202, the job and its `Location`. Users may ' +
          'start `batch_predict` and `dataset_export`; the other types (`dataset_import`, ' +
          '`email`, `housekeeping`) are started by the service itself (422 here). Follow the ' +
          'job at its Location, its `/events` (SSE) or its `/ws` (WebSocket).',
        tags,
        body: JobCreateSchema,
        response: { 202: JobSchema, ...problemResponses(400, 404, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const job = await jobs.create(callerOf(request), request.body, request.id)
      return reply.code(202).header('location', locationOf(job)).send(job)
    },
  )

  app.get(
    '',
    {
      schema: {
        summary: 'List jobs',
        description: `Newest first; filter by \`status\` and \`type\`. ${ownership}`,
        tags,
        querystring: JobListQuerySchema,
        response: { 200: JobPageSchema, ...problemResponses(422) },
      },
    },
    async (request) => jobs.list(callerOf(request), request.query),
  )

  app.get(
    '/:id',
    {
      schema: {
        summary: 'Get a job',
        description: `Status, progress, result or error, attempts. ${ownership}`,
        tags,
        params: IdParamsSchema,
        response: { 200: JobSchema, ...problemResponses(404, 422) },
      },
    },
    async (request) => jobs.get(callerOf(request), request.params.id),
  )

  app.post(
    '/:id/cancel',
    {
      schema: {
        summary: 'Cancel a job',
        description:
          'A queued job ends `cancelled` at once; a running one gets `cancel_requested` and ' +
          'ends `cancelled` at its next progress checkpoint (a handler that finishes first ' +
          'ends `succeeded`). A job that already ended answers 409 JOB_FINISHED.',
        tags,
        params: IdParamsSchema,
        response: { 200: JobSchema, ...problemResponses(404, 409, 422) },
      },
    },
    async (request) => jobs.cancel(callerOf(request), request.params.id),
  )

  app.get(
    '/:id/events',
    {
      schema: {
        summary: 'Follow a job (Server-Sent Events)',
        description:
          'Every progress and status event of the job, from the first (or after ' +
          '`Last-Event-ID`), then live until the job ends; then the stream closes. Event ' +
          'ids are the job’s event sequence numbers, so a reconnect with `Last-Event-ID` ' +
          'resumes without gaps or repeats. Event names: `progress`, `status`.',
        tags,
        params: IdParamsSchema,
        headers: JobEventsHeadersSchema,
        response: {
          200: {
            description: 'A text/event-stream of the job’s events.',
            content: { 'text/event-stream': { schema: Type.String() } },
          },
          ...problemResponses(404, 422),
        },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request)
      await jobs.get(caller, request.params.id) // 404 before the stream starts
      const after = Number(request.headers['last-event-id'] ?? 0)
      const stream = openStream()
      reply.raw.on('close', () => stream.controller.abort())
      startEventStream(reply)
      const heartbeat = setInterval(() => reply.raw.write(': keep-alive\n\n'), heartbeatMs)
      try {
        for await (const event of jobs.events(caller, request.params.id, after, stream.signal)) {
          reply.raw.write(sseFrame(event))
        }
      } catch (error) {
        request.log.warn({ err: error }, 'job event stream failed')
      } finally {
        clearInterval(heartbeat)
        stream.done()
        reply.raw.end()
      }
    },
  )

  app.get(
    '/:id/ws',
    {
      websocket: true,
      schema: { params: IdParamsSchema },
      // The job is checked before the upgrade, so a foreign or missing one answers 404.
      preHandler: async (request) => {
        await jobs.get(callerOf(request), (request.params as { id: string }).id)
      },
    },
    async (socket: WebSocket, request) => {
      const stream = openStream()
      socket.on('close', () => stream.controller.abort())
      // The stream is one-way: whatever a client sends is ignored.
      socket.on('message', () => {})
      const { id } = request.params as { id: string }
      try {
        for await (const event of jobs.events(callerOf(request), id, 0, stream.signal)) {
          socket.send(JSON.stringify({ id: event.seq, event: event.kind, data: event.data }))
        }
        socket.close(stream.signal.aborted ? WS_CLOSE.goingAway : WS_CLOSE.jobEnded)
      } catch (error) {
        request.log.warn({ err: error }, 'job websocket failed')
        socket.close(WS_CLOSE.error)
      } finally {
        stream.done()
      }
    },
  )
}

function startEventStream(reply: FastifyReply) {
  reply.hijack()
  const headers = reply.getHeaders() as Record<string, string>
  reply.raw.writeHead(200, {
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    // Stops nginx from buffering the stream.
    'x-accel-buffering': 'no',
    // A stream is the connection's last answer: no idle keep-alive socket is left behind
    // for a closing server to wait for.
    connection: 'close',
  })
  reply.raw.write(': stream open\n\n')
}
