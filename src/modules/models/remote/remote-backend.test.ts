import type { ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../../test/helpers.js'
import { modelUpload, shippedCard } from '../../../../test/models.js'
import {
  answerAsIris,
  type FakeUpstream,
  irisAnswer,
  json,
  sleep,
  startFakeUpstream,
} from '../../../../test/upstreams.js'
import type { ModelCard } from '../card.js'

// The deadline covers a call and its retries; at 400 ms a loaded machine ran past it and
// answered 504 where a retry should have served. Only the timeout test waits for it.
const TIMEOUT_MS = 2000
// Long enough for the checks made while the breaker is open to finish on a loaded machine
// (at 300 ms it turned half-open before /metrics was read); the test then waits for the
// half-open state, not for the clock.
const RESET_MS = 3000
const ENV = {
  REMOTE_BACKEND_ALLOWED_HOSTS: '127.0.0.1',
  REMOTE_BACKEND_TIMEOUT_MS: String(TIMEOUT_MS),
  REMOTE_BACKEND_CONNECT_TIMEOUT_MS: '1000',
  REMOTE_BACKEND_RETRIES: '2',
  REMOTE_BACKEND_RETRY_BASE_MS: '5',
  REMOTE_BACKEND_MAX_RESPONSE_BYTES: '65536',
  REMOTE_BACKEND_BREAKER_RESET_MS: String(RESET_MS),
  REMOTE_BACKEND_BREAKER_MIN_CALLS: '4',
  REMOTE_BACKEND_BREAKER_ERROR_PERCENT: '50',
  PREDICTION_CACHE_TTL_MS: '0',
}
const SETOSA = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }

const healthy = (upstream: FakeUpstream) => upstream.answer(answerAsIris)

describe('remote KServe v2 backend', () => {
  let t: TestApp
  let admin: TestUser
  let user: TestUser
  let upstream: FakeUpstream

  beforeAll(async () => {
    upstream = await startFakeUpstream((_request, response) => json(response, 500, {}))
    t = await buildTestApp(ENV)
    admin = await createTestUser(t, 'admin')
    user = await createTestUser(t, 'user')
  })

  afterAll(async () => {
    await t.close()
    await upstream.close()
  })

  function remoteCard(url = upstream.url): ModelCard {
    return {
      ...shippedCard('iris'),
      name: `remote-${unique().toLowerCase()}`,
      backend: { kind: 'kserve-v2', url, model: 'iris-upstream' },
    }
  }

  async function register(card: ModelCard) {
    return injectAs(
      t,
      admin,
    )({ method: 'POST', url: '/v1/models', ...(await modelUpload({ card })) })
  }

  async function registered(): Promise<string> {
    const card = remoteCard()
    const response = await register(card)
    expect(response.statusCode, response.body).toBe(201)
    return card.name
  }

  const predict = (name: string, headers: Record<string, string> = {}) =>
    injectAs(
      t,
      user,
    )({
      method: 'POST',
      url: `/v1/models/${name}/predict`,
      payload: { inputs: SETOSA },
      headers,
    })

  it('when a card names an allowed upstream, then predictions are its answers, sent as KServe v2 infer calls with the trace context', async () => {
    healthy(upstream)
    const name = await registered()
    upstream.seen.length = 0
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    const response = await predict(name, { traceparent })
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json()).toMatchObject({ model: name, prediction: 'virginica' })
    expect(response.json().probabilities.virginica).toBeCloseTo(0.7)
    expect(upstream.seen).toHaveLength(1)
    expect(upstream.seen[0]?.url).toBe('/v2/models/iris-upstream/infer')
    expect(upstream.seen[0]?.headers.traceparent).toBe(traceparent)
    expect(upstream.seen[0]?.body).toMatchObject({
      inputs: [{ name: 'float_input', datatype: 'FP32', shape: [1, 4] }],
    })
  })

  it('when a prediction without a traceparent follows one with it, then its upstream call carries none', async () => {
    healthy(upstream)
    const name = await registered()
    upstream.seen.length = 0
    const traced = await predict(name, {
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    })
    expect(traced.statusCode, traced.body).toBe(200)
    const untraced = await predict(name)
    expect(untraced.statusCode, untraced.body).toBe(200)
    expect(upstream.seen).toHaveLength(2)
    expect(upstream.seen[1]?.headers.traceparent).toBeUndefined()
  })

  it('when the card names a host outside REMOTE_BACKEND_ALLOWED_HOSTS, then registration answers 422 and stores nothing', async () => {
    const card = remoteCard('http://169.254.169.254:80')
    const response = await register(card)
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toContainEqual({
      path: 'card.backend.url',
      message: 'names a host that is not in REMOTE_BACKEND_ALLOWED_HOSTS',
    })
    const lookup = await injectAs(t, admin)({ url: `/v1/models/${card.name}` })
    expect(lookup.statusCode).toBe(404)
  })

  it('when a remote card comes with a graph, then registration answers 422', async () => {
    const response = await injectAs(
      t,
      admin,
    )({
      method: 'POST',
      url: '/v1/models',
      ...(await modelUpload({ card: remoteCard(), onnx: new Uint8Array([1, 2, 3]) })),
    })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toContainEqual({
      path: 'onnx',
      message: 'must be absent: the model runs on its remote backend',
    })
  })

  it('when the upstream answers 503 twice, then the call is retried and the third answer serves', async () => {
    const name = await registered()
    upstream.seen.length = 0
    let calls = 0
    upstream.answer((_request, response, body) => {
      calls++
      if (calls <= 2) return json(response, 503, { error: 'warming up' })
      json(
        response,
        200,
        irisAnswer((body as { inputs: { shape: number[] }[] }).inputs[0]?.shape[0] ?? 0),
      )
    })
    const response = await predict(name)
    expect(response.statusCode, response.body).toBe(200)
    expect(upstream.seen).toHaveLength(3)
  })

  it.each([
    [500, 502],
    [400, 502],
    [404, 502],
  ])(
    'when the upstream answers %i, then it is not retried and the caller gets %i problem+json',
    async (status, expected) => {
      const name = await registered()
      upstream.seen.length = 0
      upstream.answer((_request, response) => json(response, status, { error: 'no' }))
      const response = await predict(name)
      expect(response.statusCode).toBe(expected)
      expect(response.headers['content-type']).toContain('application/problem+json')
      expect(response.json()).toMatchObject({ code: 'UPSTREAM_FAILED' })
      expect(response.body).not.toContain('"error":"no"')
      expect(upstream.seen).toHaveLength(1)
    },
  )

  it('when the upstream drops every connection, then each call is retried twice and answers 502', async () => {
    const name = await registered()
    upstream.seen.length = 0
    upstream.answer((_request, response) => void response.socket?.destroy())
    const response = await predict(name)
    expect(response.statusCode).toBe(502)
    expect(response.json().detail).toMatch(/connection/)
    expect(upstream.seen).toHaveLength(3)
  })

  it.each([
    [
      'does not answer in time',
      async (response: ServerResponse, released: Promise<void>) => {
        await released
        json(response, 200, irisAnswer(1))
      },
    ],
    [
      'sends its headers, then stalls in the middle of its body',
      async (response: ServerResponse, released: Promise<void>) => {
        const body = JSON.stringify(irisAnswer(1))
        response.writeHead(200, {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
        })
        response.write(body.slice(0, 20))
        await released
        if (!response.destroyed) response.end(body.slice(20))
      },
    ],
  ])(
    'when the upstream %s, then the caller gets 504 before the upstream finishes, without a retry',
    async (_label, answer) => {
      const name = await registered()
      upstream.seen.length = 0
      // The upstream finishes only when the test lets it: the 504 has to come before that.
      let release = () => {}
      const released = new Promise<void>((resolve) => {
        release = resolve
      })
      let finished = false
      upstream.answer(async (_request, response) => {
        await answer(response, released)
        finished = true
      })
      try {
        const response = await predict(name)
        expect(response.statusCode, response.body).toBe(504)
        expect(response.json()).toMatchObject({ code: 'UPSTREAM_TIMEOUT' })
        expect(finished).toBe(false)
        expect(upstream.seen).toHaveLength(1)
      } finally {
        release()
      }
    },
  )

  it.each([
    ['not JSON', (response: ServerResponse) => response.end('<html>oops</html>')],
    ['JSON without outputs', (response: ServerResponse) => json(response, 200, { hello: 1 })],
    [
      'a tensor of the wrong datatype',
      (response: ServerResponse) => {
        const answer = irisAnswer(1)
        ;(answer.outputs[0] as { datatype: string }).datatype = 'BYTES'
        json(response, 200, answer)
      },
    ],
    [
      'a tensor of the wrong row count',
      (response: ServerResponse) => json(response, 200, irisAnswer(3)),
    ],
    [
      'an answer larger than the limit',
      (response: ServerResponse) => {
        response.writeHead(200, { 'content-type': 'application/json' })
        response.end(JSON.stringify({ outputs: [], padding: 'x'.repeat(200_000) }))
      },
    ],
  ])(
    'when the upstream answers %s, then the caller gets 502 and nothing of it',
    async (_label, answer) => {
      const name = await registered()
      upstream.answer((_request, response) => answer(response))
      const response = await predict(name)
      expect(response.statusCode).toBe(502)
      expect(response.json()).toMatchObject({ code: 'UPSTREAM_FAILED' })
      expect(response.body).not.toContain('oops')
      expect(response.body).not.toContain('xxxx')
    },
  )

  it('when most calls fail, then the breaker opens: 503 with Retry-After without calling out, /ready and /metrics name it, and a probe after the reset closes it', async () => {
    const name = await registered()
    upstream.answer((_request, response) => json(response, 500, {}))
    for (let i = 0; i < 4; i++) expect((await predict(name)).statusCode).toBe(502)
    upstream.seen.length = 0
    const refused = await predict(name)
    expect(refused.statusCode).toBe(503)
    expect(refused.json()).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' })
    expect(refused.headers['retry-after']).toBe(String(Math.ceil(RESET_MS / 1000)))
    expect(upstream.seen).toHaveLength(0)

    const ready = await t.app.inject({ url: '/ready' })
    expect(ready.statusCode).toBe(503)
    expect(ready.json().checks[`upstream:${name}@1.0.0`]).toBe('failing')
    const metrics = await t.app.inject({ url: '/metrics' })
    expect(metrics.body).toContain(`upstream_breaker_state{model="${name}",version="1.0.0"} 1`)
    expect(metrics.body).toMatch(/upstream_request_duration_seconds_count\{[^}]*outcome="status"/)

    healthy(upstream)
    const halfOpen = `upstream_breaker_state{model="${name}",version="1.0.0"} 2`
    for (let i = 0; i < 200; i++) {
      if ((await t.app.inject({ url: '/metrics' })).body.includes(halfOpen)) break
      await sleep(50)
    }
    const probe = await predict(name)
    expect(probe.statusCode, probe.body).toBe(200)
    expect(upstream.seen).toHaveLength(1)
    expect((await predict(name)).statusCode).toBe(200)
    const after = await t.app.inject({ url: '/metrics' })
    expect(after.body).toContain(`upstream_breaker_state{model="${name}",version="1.0.0"} 0`)
  })

  it('when the allowlist no longer holds the host, then calls are refused with 502 without calling out', async () => {
    healthy(upstream)
    const name = await registered()
    const other = await buildTestApp(
      { ...ENV, REMOTE_BACKEND_ALLOWED_HOSTS: 'models.internal' },
      { database: t.database },
    )
    try {
      const caller = await createTestUser(other, 'user')
      upstream.seen.length = 0
      const response = await injectAs(
        other,
        caller,
      )({
        method: 'POST',
        url: `/v1/models/${name}/predict`,
        payload: { inputs: SETOSA },
      })
      expect(response.statusCode).toBe(502)
      expect(response.json().detail).toMatch(/not an allowed host/)
      expect(upstream.seen).toHaveLength(0)
    } finally {
      await other.close()
    }
  })
})
