import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ModelCard } from '../../../src/modules/models/card.js'
import { createTestUser, type TestUser, unique } from '../../../test/helpers.js'
import { buildJobsTestApp, type JobsTestApp } from '../../../test/jobs.js'
import { MODELS_DIR, registerVersion } from '../../../test/models.js'
import {
  ApiError,
  createOrderFlowClient,
  type GenerationEvent,
  type JobEvent,
  type OrderFlowClient,
} from '../src/index.js'

const tinyCard = JSON.parse(
  readFileSync(new URL('tiny-text.card.json', MODELS_DIR), 'utf8'),
) as ModelCard
const tinyBytes = new Uint8Array(readFileSync(new URL('tiny-text.onnx', MODELS_DIR)))

let t: JobsTestApp
let alice: TestUser
let client: OrderFlowClient
let model: string

beforeAll(async () => {
  t = await buildJobsTestApp()
  alice = await createTestUser(t)
  const admin = await createTestUser(t, 'admin')
  model = `tiny-text-${unique().toLowerCase()}`
  await registerVersion(t, admin, { ...tinyCard, name: model }, tinyBytes)
  await t.app.listen({ host: '127.0.0.1', port: 0 })
  client = createOrderFlowClient({
    baseUrl: `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`,
  })
  await client.signIn(alice.email, alice.password)
})
afterAll(() => t?.close())

const startJob = (steps: number, stepMs = 20) =>
  t.app.jobs.enqueue({
    type: 'test_effect',
    params: { key: unique(), steps, step_ms: stepMs },
    owner_id: alice.id,
  })

async function collect<T>(events: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = []
  for await (const event of events) all.push(event)
  return all
}

/** The start of an event stream up to the end of its `count`-th event; the rest is dropped. */
async function firstEvents(response: Response, count: number): Promise<string> {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`the stream ended before ${count} events`)
    text += decoder.decode(value, { stream: true })
    let end = 0
    let events = 0
    for (const block of text.split('\n\n').slice(0, -1)) {
      end += block.length + 2
      if (block.split('\n').some((line) => line.startsWith('id:'))) events += 1
      if (events === count) {
        await reader.cancel()
        return text.slice(0, end)
      }
    }
  }
}

describe('following a job', () => {
  it('when a job runs to its end, then its events arrive numbered and in order, ending with its final status', async () => {
    const job = await startJob(4)
    const events = await collect(client.followJob(job.id))

    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))
    expect(events[0]).toMatchObject({ event: 'status', data: { status: 'running' } })
    const progress = events.flatMap((e) => (e.event === 'progress' ? [e.data.progress] : []))
    expect(progress).toHaveLength(4)
    expect(progress).toEqual([...progress].sort((a, b) => a - b))
    expect(events.at(-1)).toMatchObject({
      event: 'status',
      data: { status: 'succeeded', progress: 1 },
    })
  })

  it('when it starts after a known event, then it gets exactly the events after it', async () => {
    const job = await startJob(3, 1)
    const all = await collect(client.followJob(job.id))
    const rest = await collect(client.followJob(job.id, { lastEventId: 2 }))
    expect(rest).toEqual(all.slice(2))
  })

  it('when the connection drops mid-job, then the client resumes after the last event, missing and repeating none', async () => {
    const resumedFrom: (string | null)[] = []
    let dropped = false
    // A network that cuts the first event stream after its third event, as a proxy's idle
    // timeout or a restarting instance would.
    const flaky = createOrderFlowClient({
      baseUrl: `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`,
      fetch: async (request) => {
        const response = await fetch(request)
        if (!request.url.endsWith('/events')) return response
        resumedFrom.push(request.headers.get('last-event-id'))
        if (dropped) return response
        dropped = true
        return new Response(await firstEvents(response, 3), response)
      },
    })
    await flaky.signIn(alice.email, alice.password)
    const job = await startJob(8, 30)

    const events = await collect(flaky.followJob(job.id))
    // running, 8 progress events, succeeded: each once, in order.
    expect(events.map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
    expect(events.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } })
    expect(resumedFrom).toEqual([null, '3'])
  })

  it('when the caller aborts, then the stream stops with the abort and no event after it', async () => {
    const job = await startJob(50, 40)
    const controller = new AbortController()
    const seen: JobEvent[] = []
    const outcome = await (async () => {
      for await (const event of client.followJob(job.id, { signal: controller.signal })) {
        seen.push(event)
        if (seen.length === 2) controller.abort()
      }
    })().catch((error: unknown) => error)
    expect(outcome).toMatchObject({ name: 'AbortError' })
    expect(seen).toHaveLength(2)
    const { data: cancelled } = await client.api.POST('/v1/jobs/{id}/cancel', {
      params: { path: { id: job.id } },
    })
    expect(cancelled.cancel_requested).toBe(true)
  })

  it('when the job is someone else’s, then following it raises the 404 before any event', async () => {
    const bob = await createTestUser(t)
    const job = await t.app.jobs.enqueue({
      type: 'test_effect',
      params: { key: unique(), steps: 1, step_ms: 1 },
      owner_id: bob.id,
    })
    const error = await collect(client.followJob(job.id)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 404 })
  })
})

describe('streaming text generation', () => {
  it('when a generation is streamed, then tokens arrive one by one and a final done tells the usage', async () => {
    const events = await collect(
      client.generate(model, { prompt: 'Ada ', max_tokens: 12, seed: 3, temperature: 0 }),
    )
    const tokens = events.filter(
      (e): e is Extract<GenerationEvent, { type: 'token' }> => e.type === 'token',
    )
    const done = events.at(-1)
    expect(done?.type).toBe('done')
    expect(events.filter((e) => e.type === 'done')).toHaveLength(1)
    if (done?.type !== 'done') throw new Error('no done event')
    expect(done.model).toBe(model)
    expect(done.usage.completion_tokens).toBe(tokens.length)
    expect(tokens.length).toBeGreaterThan(0)

    // The same request, unstreamed, writes the same text: the stream lost nothing.
    const { data } = await client.api.POST('/v1/models/{name}/generate', {
      params: { path: { name: model } },
      body: { prompt: 'Ada ', max_tokens: 12, seed: 3, temperature: 0 },
    })
    expect(tokens.map((token) => token.text).join('')).toBe(data.text)
  })

  it('when the caller aborts mid-stream, then the loop ends with the abort after the tokens it read', async () => {
    const controller = new AbortController()
    const seen: GenerationEvent[] = []
    const outcome = await (async () => {
      for await (const event of client.generate(
        model,
        { prompt: 'Ada ', max_tokens: 200, seed: 1 },
        { signal: controller.signal },
      )) {
        seen.push(event)
        if (seen.length === 3) controller.abort()
      }
    })().catch((error: unknown) => error)
    expect(outcome).toMatchObject({ name: 'AbortError' })
    expect(seen).toHaveLength(3)
    expect(seen.every((e) => e.type === 'token')).toBe(true)
  })

  it('when the request is refused, then the problem is raised before any token', async () => {
    const unknownModel = await collect(
      client.generate(`missing-${unique().toLowerCase()}`, { prompt: 'x' }),
    ).catch((e: unknown) => e)
    expect(unknownModel).toBeInstanceOf(ApiError)
    expect(unknownModel).toMatchObject({ status: 404, code: 'MODEL_NOT_FOUND' })

    const invalid = await collect(client.generate(model, { prompt: 'x', max_tokens: 0 })).catch(
      (e: unknown) => e,
    )
    expect(invalid).toMatchObject({ status: 422, code: 'VALIDATION_FAILED' })
    expect((invalid as ApiError).errors.map((e) => e.path)).toEqual(['body.max_tokens'])
  })
})
