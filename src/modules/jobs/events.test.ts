import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { buildJobsTestApp, type JobsTestApp, parseSse } from '../../../test/jobs.js'
import { createTestUser, injectAs, type TestUser, unique } from '../../../test/helpers.js'

describe('job events (SSE and WebSocket)', () => {
  let t: JobsTestApp
  let alice: TestUser
  let bob: TestUser
  let base: string

  beforeAll(async () => {
    t = await buildJobsTestApp()
    alice = await createTestUser(t)
    bob = await createTestUser(t)
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    base = `127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
  })
  afterAll(() => t?.close())

  const start = (params: Record<string, unknown> = {}) =>
    t.app.jobs.enqueue({
      type: 'test_effect',
      params: { key: unique(), steps: 5, step_ms: 40, ...params },
      owner_id: alice.id,
    })

  it('when a client follows a job, then it gets numbered, monotone progress and the final state, and the stream closes', async () => {
    const job = await start()
    const response = await injectAs(t, alice)({ method: 'GET', url: `/v1/jobs/${job.id}/events` })
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toContain('text/event-stream')
    const events = parseSse(response.body)
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))
    const progress = events.filter((e) => e.event === 'progress').map((e) => Number(e.data.progress))
    expect(progress.length).toBe(5)
    expect(progress).toEqual([...progress].sort((a, b) => a - b))
    expect(events.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded', progress: 1 } })
    expect(events[0]).toMatchObject({ event: 'status', data: { status: 'running' } })
  })

  it('when a client reconnects with Last-Event-ID, then it gets exactly the events after it', async () => {
    const job = await start({ steps: 3, step_ms: 1 })
    const all = parseSse(
      (await injectAs(t, alice)({ method: 'GET', url: `/v1/jobs/${job.id}/events` })).body,
    )
    const resumed = parseSse(
      (
        await injectAs(t, alice)({
          method: 'GET',
          url: `/v1/jobs/${job.id}/events`,
          headers: { 'last-event-id': '2' },
        })
      ).body,
    )
    expect(resumed).toEqual(all.slice(2))
    const afterEnd = await injectAs(t, alice)({
      method: 'GET',
      url: `/v1/jobs/${job.id}/events`,
      headers: { 'last-event-id': String(all.length) },
    })
    expect(parseSse(afterEnd.body)).toEqual([])
  })

  it('when a live stream drops mid-job and resumes with Last-Event-ID, then nothing is missed or repeated', async () => {
    const job = await start({ steps: 8, step_ms: 60 })
    const seen: number[] = []
    const read = async (lastEventId: number | null, stopAfter: number) => {
      const controller = new AbortController()
      const response = await fetch(`http://${base}/v1/jobs/${job.id}/events`, {
        headers: {
          ...alice.headers,
          ...(lastEventId === null ? {} : { 'last-event-id': String(lastEventId) }),
        },
        signal: controller.signal,
      })
      const reader = (response.body as ReadableStream<Uint8Array>).getReader()
      const decoder = new TextDecoder()
      let buffer = ''
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          buffer += decoder.decode(value, { stream: true })
          const cut = buffer.lastIndexOf('\n\n')
          if (cut < 0) continue
          for (const event of parseSse(buffer.slice(0, cut + 2))) {
            seen.push(event.id)
            if (seen.length >= stopAfter) return
          }
          buffer = buffer.slice(cut + 2)
        }
      } finally {
        controller.abort()
      }
    }
    await read(null, 3)
    await read(seen.at(-1) ?? 0, 1000)
    // running, 8 progress events, succeeded: each once, in order.
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
  })

  const connect = (url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]) =>
    new Promise<{ messages: { id: number; event: string; data: Record<string, unknown> }[]; code: number; protocol: string }>(
      (resolve, reject) => {
        const socket = new WebSocket(url, protocols, options)
        const messages: { id: number; event: string; data: Record<string, unknown> }[] = []
        socket.on('message', (data) => messages.push(JSON.parse(String(data))))
        socket.on('close', (code) => resolve({ messages, code, protocol: socket.protocol }))
        socket.on('unexpected-response', (_request, response) =>
          reject(Object.assign(new Error('handshake refused'), { status: response.statusCode })),
        )
        socket.on('error', reject)
      },
    )

  it('when a client follows a job over WebSocket with a bearer header, then it gets the events and a normal close at the end', async () => {
    const job = await start()
    const { messages, code } = await connect(`ws://${base}/v1/jobs/${job.id}/ws`, {
      headers: alice.headers,
    })
    expect(code).toBe(1000)
    expect(messages.map((m) => m.id)).toEqual(messages.map((_, i) => i + 1))
    expect(messages.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } })
  })

  it('when a browser sends its token as a subprotocol, then the handshake succeeds and the token is not echoed', async () => {
    const job = await start({ steps: 1, step_ms: 1 })
    const token = alice.headers.authorization.slice('Bearer '.length)
    const { messages, protocol } = await connect(`ws://${base}/v1/jobs/${job.id}/ws`, {}, [
      'orderflow.v1',
      `bearer.${token}`,
    ])
    expect(protocol).toBe('orderflow.v1')
    expect(messages.at(-1)?.data.status).toBe('succeeded')
  })

  it('when the handshake has no valid credentials or names another user’s job, then it is refused with 401 or 404', async () => {
    const job = await start({ steps: 1, step_ms: 1 })
    await expect(connect(`ws://${base}/v1/jobs/${job.id}/ws`)).rejects.toMatchObject({ status: 401 })
    await expect(
      connect(`ws://${base}/v1/jobs/${job.id}/ws`, {}, ['orderflow.v1', 'bearer.not-a-token']),
    ).rejects.toMatchObject({ status: 401 })
    await expect(
      connect(`ws://${base}/v1/jobs/${job.id}/ws`, { headers: bob.headers }),
    ).rejects.toMatchObject({ status: 404 })
  })
})
