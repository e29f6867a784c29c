import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import * as ort from 'onnxruntime-node'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GoldenFile } from '../../../../scripts/training/artifacts.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../../test/helpers.js'
import { MODELS_DIR, modelUpload, registerVersion, shippedCard } from '../../../../test/models.js'
import { type FakeUpstream, sleep, startFakeUpstream } from '../../../../test/upstreams.js'
import type { ModelCard } from '../card.js'

const tinyCard = JSON.parse(
  readFileSync(new URL('tiny-text.card.json', MODELS_DIR), 'utf8'),
) as ModelCard
const tinyBytes = new Uint8Array(readFileSync(new URL('tiny-text.onnx', MODELS_DIR)))
const tinyGolden = JSON.parse(
  readFileSync(new URL('tiny-text.golden.json', MODELS_DIR), 'utf8'),
) as GoldenFile

/** The events of a raw SSE body: `event` name and parsed `data`. */
function parseEvents(body: string) {
  return body
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1] ?? ''
      return { event, data: data === '[DONE]' ? data : JSON.parse(data) }
    })
}

/** An OpenAI-compatible server that streams `tokens`, one every `gapMs`. */
function streamTokens(upstream: FakeUpstream, tokens: string[], gapMs: number) {
  upstream.answer(async (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = (delta: object, finish: string | null) =>
      `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    for (const token of tokens) {
      if (response.destroyed) return
      response.write(chunk({ content: token }, null))
      await sleep(gapMs)
    }
    response.write(chunk({}, 'stop'))
    response.write(
      `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 5, completion_tokens: tokens.length } })}\n\n`,
    )
    response.end('data: [DONE]\n\n')
  })
}

describe('the shipped tiny-text model', () => {
  it('when ONNX Runtime runs the golden contexts, then it answers the golden logits', async () => {
    const session = await ort.InferenceSession.create(tinyBytes)
    const { vocabulary } = tinyCard.generation as NonNullable<ModelCard['generation']>
    try {
      for (const { input, output } of tinyGolden.cases) {
        const context = BigInt64Array.from([...String(input.context)], (char) =>
          BigInt(vocabulary.indexOf(char)),
        )
        const result = await session.run({
          context: new ort.Tensor('int64', context, [1, context.length]),
        })
        const logits = Array.from(result.logits?.data as Float32Array)
        const expected = output.logits as number[]
        expect(logits).toHaveLength(expected.length)
        logits.forEach((value, i) => {
          const want = expected[i] as number
          expect(Math.abs(value - want)).toBeLessThanOrEqual(
            tinyGolden.tolerance * Math.max(1, Math.abs(want)),
          )
        })
      }
    } finally {
      await session.release()
    }
  })
})

describe('text generation', () => {
  let t: TestApp
  let admin: TestUser
  let user: TestUser
  let name: string
  let upstream: FakeUpstream
  let remote: string

  beforeAll(async () => {
    upstream = await startFakeUpstream((_request, response) => void response.end())
    t = await buildTestApp({
      REMOTE_BACKEND_ALLOWED_HOSTS: '127.0.0.1',
      REMOTE_BACKEND_TIMEOUT_MS: '2000',
      REMOTE_BACKEND_RETRY_BASE_MS: '5',
      GENERATE_MAX_TOKENS: '400',
    })
    admin = await createTestUser(t, 'admin')
    user = await createTestUser(t, 'user')
    name = `tiny-text-${unique().toLowerCase()}`
    await registerVersion(t, admin, { ...tinyCard, name }, tinyBytes)
    remote = `chat-${unique().toLowerCase()}`
    const card: ModelCard = {
      ...tinyCard,
      name: remote,
      generation: undefined,
      backend: { kind: 'openai', url: upstream.url, model: 'llama-3-8b' },
    }
    delete card.generation
    const registered = await injectAs(
      t,
      admin,
    )({
      method: 'POST',
      url: '/v1/models',
      ...(await modelUpload({ card })),
    })
    expect(registered.statusCode, registered.body).toBe(201)
    // Two users (argon2) and two registrations (a graph load): minutes on a loaded machine.
  }, 180_000)

  afterAll(async () => {
    await t.close()
    await upstream.close()
  })

  const generate = (payload: object, headers: Record<string, string> = {}, model = name) =>
    injectAs(t, user)({ method: 'POST', url: `/v1/models/${model}/generate`, payload, headers })

  it('when the same prompt and seed are sent twice, then the text is the same, and another seed writes another', async () => {
    const body = { prompt: 'On Monday, ', max_tokens: 80, temperature: 0.8, seed: 7 }
    const first = await generate(body)
    expect(first.statusCode, first.body).toBe(200)
    const answer = first.json()
    expect(answer).toMatchObject({
      model: name,
      version: '1.0.0',
      finish_reason: 'length',
      usage: { prompt_tokens: 11, completion_tokens: 80, total_tokens: 91 },
    })
    expect(answer.text).toHaveLength(80)
    expect((await generate(body)).json().text).toBe(answer.text)
    expect((await generate({ ...body, seed: 8 })).json().text).not.toBe(answer.text)
  })

  it('when the temperature is 0, then the model writes words of its corpus', async () => {
    const response = await generate({
      prompt: 'The shop shipped the order on ',
      max_tokens: 12,
      temperature: 0,
    })
    expect(response.json().text).toMatch(
      /^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)/,
    )
  })

  it('when the client asks for an event stream, then tokens arrive as events that spell the JSON answer, and a done event ends it', async () => {
    const body = { prompt: 'Ada ', max_tokens: 30, seed: 3 }
    const streamed = await generate(body, { accept: 'text/event-stream' })
    expect(streamed.statusCode).toBe(200)
    expect(streamed.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    const events = parseEvents(streamed.body)
    const tokens = events.filter((event) => event.event === 'token')
    expect(tokens.length).toBeGreaterThan(1)
    const done = events.at(-1)
    expect(done).toMatchObject({
      event: 'done',
      data: { model: name, finish_reason: 'length', usage: { completion_tokens: 30 } },
    })
    const text = tokens.map((event) => event.data.text).join('')
    expect(text).toBe((await generate(body)).json().text)
    expect(parseEvents((await generate({ ...body, stream: true })).body).at(-1)?.event).toBe('done')
  })

  it('when a stop sequence is met, then generation ends before it with finish_reason stop', async () => {
    const response = await generate({
      prompt: 'Ada lives in ',
      max_tokens: 200,
      seed: 1,
      stop: ['.'],
    })
    const answer = response.json()
    expect(answer.finish_reason).toBe('stop')
    expect(answer.text).not.toContain('.')
    expect(answer.usage.completion_tokens).toBeLessThan(200)
  })

  it.each([
    [{ prompt: 'a', messages: [{ role: 'user', content: 'b' }] }, 'body'],
    [{ max_tokens: 5 }, 'body'],
    [{ prompt: 'a', max_tokens: 401 }, 'body.max_tokens'],
    [{ prompt: 'a', temperature: 3 }, 'body.temperature'],
    [{ prompt: 'a', top_p: 0 }, 'body.top_p'],
  ])('when the body is %j, then it answers 422 naming %s', async (payload, path) => {
    const response = await generate(payload)
    expect(response.statusCode).toBe(422)
    expect(response.json().errors.map((error: { path: string }) => error.path)).toContain(path)
  })

  it('when the model predicts instead of generating, then generate answers 409 MODEL_TASK_MISMATCH', async () => {
    const iris = `iris-${unique().toLowerCase()}`
    await registerVersion(
      t,
      admin,
      { ...shippedCard('iris'), name: iris },
      new Uint8Array(readFileSync(new URL('iris.onnx', MODELS_DIR))),
    )
    const response = await generate({ prompt: 'a' }, {}, iris)
    expect(response.statusCode).toBe(409)
    expect(response.json().code).toBe('MODEL_TASK_MISMATCH')
  })

  it('when a text-generation model is asked to predict, then predict and predict/batch answer 409 MODEL_TASK_MISMATCH', async () => {
    for (const [url, payload] of [
      [`/v1/models/${name}/predict`, { inputs: {} }],
      [`/v1/models/${name}/predict/batch`, { instances: [{}] }],
    ] as const) {
      const response = await injectAs(t, user)({ method: 'POST', url, payload })
      expect(response.statusCode, url).toBe(409)
      expect(response.json().code).toBe('MODEL_TASK_MISMATCH')
    }
  })

  it('when a text-generation card has neither a graph description nor an openai backend, then registration answers 422', async () => {
    const card = { ...tinyCard, name: `bad-${unique().toLowerCase()}` } as ModelCard
    delete card.generation
    const response = await injectAs(
      t,
      admin,
    )({
      method: 'POST',
      url: '/v1/models',
      ...(await modelUpload({ card, onnx: tinyBytes })),
    })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors.map((error: { path: string }) => error.path)).toContain(
      'card.generation',
    )
  })

  describe('through the official OpenAI client', () => {
    let client: OpenAI

    beforeAll(async () => {
      await t.app.listen({ port: 0, host: '127.0.0.1' })
      const { port } = t.app.server.address() as AddressInfo
      const key = await injectAs(
        t,
        user,
      )({
        method: 'POST',
        url: '/v1/api-keys',
        payload: { name: 'openai client' },
      })
      expect(key.statusCode, key.body).toBe(201)
      client = new OpenAI({
        apiKey: key.json().key,
        baseURL: `http://127.0.0.1:${port}/v1`,
        maxRetries: 0,
      })
    })

    it('when it asks for a completion, then it reads the shipped model answer, the same for the same seed', async () => {
      const ask = () =>
        client.chat.completions.create({
          model: name,
          messages: [{ role: 'user', content: 'Grace ordered' }],
          max_tokens: 40,
          seed: 11,
        })
      const completion = await ask()
      expect(completion.object).toBe('chat.completion')
      expect(completion.model).toBe(name)
      expect(completion.choices[0]?.finish_reason).toBe('length')
      expect(completion.choices[0]?.message.content).toHaveLength(40)
      expect(completion.usage?.completion_tokens).toBe(40)
      expect((await ask()).choices[0]?.message.content).toBe(completion.choices[0]?.message.content)
    })

    it('when it streams, then the deltas spell the same text and the last chunk carries usage', async () => {
      const params = {
        model: name,
        messages: [{ role: 'user' as const, content: 'Grace ordered' }],
        max_tokens: 40,
        seed: 11,
      }
      const whole = await client.chat.completions.create(params)
      const stream = await client.chat.completions.create({
        ...params,
        stream: true,
        stream_options: { include_usage: true },
      })
      let text = ''
      let chunks = 0
      let usage: OpenAI.CompletionUsage | undefined | null
      let finish: string | null | undefined
      for await (const chunk of stream) {
        chunks++
        text += chunk.choices[0]?.delta.content ?? ''
        finish = chunk.choices[0]?.finish_reason ?? finish
        usage = chunk.usage ?? usage
      }
      expect(chunks).toBeGreaterThan(10)
      expect(text).toBe(whole.choices[0]?.message.content)
      expect(finish).toBe('length')
      expect(usage?.completion_tokens).toBe(40)
    })

    it('when it names a model that does not exist, then it raises a 404', async () => {
      await expect(
        client.chat.completions.create({
          model: 'no-such-model',
          messages: [{ role: 'user', content: 'x' }],
        }),
      ).rejects.toMatchObject({ status: 404 })
    })

    it('when the model is an OpenAI-compatible upstream, then its tokens stream through and the upstream gets the request', async () => {
      upstream.seen.length = 0
      streamTokens(upstream, ['Hel', 'lo', ' there'], 5)
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
      const stream = await client.chat.completions.create(
        {
          model: remote,
          messages: [{ role: 'user', content: 'Say hello' }],
          max_tokens: 20,
          stream: true,
        },
        { headers: { traceparent } },
      )
      let text = ''
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
      expect(text).toBe('Hello there')
      expect(upstream.seen[0]?.url).toBe('/v1/chat/completions')
      expect(upstream.seen[0]?.headers.traceparent).toBe(traceparent)
      expect(upstream.seen[0]?.body).toMatchObject({
        model: 'llama-3-8b',
        messages: [{ role: 'user', content: 'Say hello' }],
        max_tokens: 20,
        stream: true,
      })
    })

    it('when the client disconnects mid-stream, then the upstream sees its request cancelled', async () => {
      upstream.seen.length = 0
      streamTokens(
        upstream,
        Array.from({ length: 200 }, (_, i) => `t${i} `),
        20,
      )
      const { port } = t.app.server.address() as AddressInfo
      const key = (client as unknown as { apiKey: string }).apiKey
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: `/v1/models/${remote}/generate`,
            headers: {
              authorization: `Bearer ${key}`,
              'content-type': 'application/json',
              accept: 'text/event-stream',
            },
          },
          (response) => {
            expect(response.statusCode).toBe(200)
            response.once('data', (chunk: Buffer) => {
              expect(chunk.toString()).toContain('event: token')
              req.destroy()
              resolve()
            })
          },
        )
        req.on('error', () => {})
        req.once('error', reject)
        req.end(JSON.stringify({ prompt: 'count', max_tokens: 200 }))
      })
      for (let i = 0; i < 50 && !upstream.seen[0]?.cancelled; i++) await sleep(20)
      expect(upstream.seen[0]?.cancelled).toBe(true)
    })

    it('when the client disconnects from the shipped model, then generation stops running inference', async () => {
      const { port } = t.app.server.address() as AddressInfo
      const key = (client as unknown as { apiKey: string }).apiKey
      const calls = async () => {
        const metrics = await t.app.inject({ url: '/metrics' })
        const line = new RegExp(`model_inference_seconds_count\\{model="${name}"[^}]*\\} (\\d+)`)
        return Number(line.exec(metrics.body)?.[1] ?? 0)
      }
      const before = await calls()
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: `/v1/models/${name}/generate`,
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          },
          (response) => {
            response.once('data', () => {
              req.destroy()
              resolve()
            })
          },
        )
        req.on('error', () => {})
        req.once('error', reject)
        req.end(JSON.stringify({ prompt: 'Ada', max_tokens: 400, stream: true }))
      })
      // Wait until the count stops moving (on a loaded machine the disconnect may take a
      // while to be noticed); had generation not stopped, it would settle at all 400 tokens.
      let settled = await calls()
      for (let tries = 0; tries < 40; tries++) {
        await sleep(300)
        const latest = await calls()
        if (latest === settled) break
        settled = latest
      }
      expect(settled - before).toBeLessThan(400)
    })

    it('when the upstream refuses before the first token, then the client raises a 502 instead of a broken stream', async () => {
      upstream.answer((_request, response) => {
        response.writeHead(500)
        response.end('boom')
      })
      await expect(
        client.chat.completions.create({
          model: remote,
          messages: [{ role: 'user', content: 'x' }],
          stream: true,
        }),
      ).rejects.toMatchObject({ status: 502 })
    })

    it('when the upstream answers 503 before its stream starts, then the call is retried and streams', async () => {
      upstream.seen.length = 0
      let calls = 0
      upstream.answer((_request, response) => {
        calls++
        if (calls === 1) {
          response.writeHead(503)
          response.end()
          return
        }
        response.writeHead(200, { 'content-type': 'text/event-stream' })
        response.write(
          `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'ok' }, finish_reason: 'stop' }] })}\n\n`,
        )
        response.end('data: [DONE]\n\n')
      })
      const response = await generate({ prompt: 'x' }, {}, remote)
      expect(response.statusCode, response.body).toBe(200)
      expect(response.json()).toMatchObject({ text: 'ok', finish_reason: 'stop' })
      expect(upstream.seen).toHaveLength(2)
    })

    it('when the upstream breaks off mid-stream, then the stream ends with an error event', async () => {
      upstream.seen.length = 0
      upstream.answer((_request, response) => {
        response.writeHead(200, { 'content-type': 'text/event-stream' })
        response.write(
          `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: null }] })}\n\n`,
        )
        response.write('data: {not json\n\n')
        response.end()
      })
      const response = await generate({ prompt: 'x' }, { accept: 'text/event-stream' }, remote)
      const events = parseEvents(response.body)
      expect(events[0]).toMatchObject({ event: 'token', data: { text: 'Hi' } })
      expect(events.at(-1)).toMatchObject({
        event: 'error',
        data: { status: 502, code: 'UPSTREAM_FAILED' },
      })
      // Tokens may have reached the caller: a retry could repeat them, so there is none.
      expect(upstream.seen).toHaveLength(1)
    })
  })
})
