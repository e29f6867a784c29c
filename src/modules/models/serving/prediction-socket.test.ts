import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { irisInputs, type ServedIris, serveIrisLike } from '../../../../test/serving.js'
import { CLOSE, SUBPROTOCOL } from './prediction-socket.js'

type Reply = Record<string, unknown> & { id: unknown; problem?: Record<string, unknown> }

/** A socket to `url` and the replies it has received, parsed. */
async function connect(url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]) {
  const socket = new WebSocket(url, protocols, options)
  const replies: Reply[] = []
  socket.on('message', (data) => replies.push(JSON.parse(String(data))))
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
    socket.once('unexpected-response', (_request, response) =>
      reject(new Error(`handshake answered ${response.statusCode}`)),
    )
  })
  return {
    socket,
    replies,
    /** Resolves once `count` replies are in. */
    async next(count: number): Promise<Reply[]> {
      const deadline = Date.now() + 5000
      while (replies.length < count) {
        if (Date.now() > deadline) throw new Error(`only ${replies.length} of ${count} replies`)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      return replies.slice(0, count)
    },
  }
}

/**
 * What a refused handshake answered: its status and problem body, and whether the server
 * then closed the connection (the client never does).
 */
function refusedHandshake(url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: Record<string, unknown>; closed: Promise<void> }>(
    (resolve, reject) => {
      const socket = new WebSocket(url, { headers })
      socket.once('open', () => reject(new Error('the handshake succeeded')))
      socket.once('unexpected-response', (_request, response) => {
        const closed = new Promise<void>((done) => response.socket.once('close', () => done()))
        let body = ''
        response.on('data', (chunk: Buffer) => {
          body += chunk
        })
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(body), closed }),
        )
      })
    },
  )
}

const closed = (socket: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) =>
    socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  )

const ENV = {
  WS_MESSAGES_PER_SECOND: '20',
  WS_MAX_IN_FLIGHT: '4',
  WS_MAX_MESSAGE_BYTES: '2048',
  WS_PING_INTERVAL_MS: '200',
  WS_IDLE_TIMEOUT_MS: '1500',
  // Long enough for the sockets' predictions to meet in one batch.
  INFERENCE_MAX_WAIT_MS: '20',
  PREDICTION_CACHE_TTL_MS: '0',
}

async function listen(s: ServedIris): Promise<string> {
  await s.t.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = s.t.app.server.address() as AddressInfo
  return `ws://127.0.0.1:${port}/v1/models/${s.name}/ws`
}

describe('WebSocket predictions', () => {
  let s: ServedIris
  let url: string
  const auth = () => ({ headers: s.user.headers })

  beforeAll(async () => {
    s = await serveIrisLike(ENV, { latencyMs: 30 })
    url = await listen(s)
  }, 120_000)
  afterAll(() => s?.t.close())

  it('when a message carries an id and inputs, then the reply carries that id and the prediction the HTTP route gives', async () => {
    const client = await connect(url, auth())
    client.socket.send(JSON.stringify({ id: 'first', inputs: irisInputs(0) }))
    const [reply] = await client.next(1)
    const http = await s.t.app.inject({
      method: 'POST',
      url: `/v1/models/${s.name}/predict`,
      headers: s.user.headers,
      payload: { inputs: irisInputs(0) },
    })
    expect(reply).toMatchObject({
      id: 'first',
      model: s.name,
      version: '1.0.0',
      prediction: http.json().prediction,
      probabilities: http.json().probabilities,
    })
    client.socket.close()
  })

  it('when sixteen sockets predict at once, then their predictions share micro-batches', async () => {
    const clients = await Promise.all(Array.from({ length: 16 }, () => connect(url, auth())))
    const before = s.backend.runs.length
    clients.forEach((client, i) => {
      client.socket.send(JSON.stringify({ id: i, inputs: irisInputs(i) }))
    })
    const replies = await Promise.all(clients.map((client) => client.next(1)))
    expect(replies.map(([reply]) => reply?.id)).toEqual(clients.map((_, i) => i))
    expect(replies.every(([reply]) => typeof reply?.prediction === 'string')).toBe(true)
    const runs = s.backend.runs.slice(before)
    expect(runs.reduce((sum, run) => sum + run.batchSize, 0)).toBe(16)
    expect(runs.length).toBeLessThan(16)
    for (const client of clients) client.socket.close()
  })

  it('when a message is not JSON, then the reply is a MALFORMED_JSON problem and the socket answers the next message', async () => {
    const client = await connect(url, auth())
    client.socket.send('{"id": 1, "inputs": ')
    client.socket.send(JSON.stringify({ id: 2, inputs: irisInputs(1) }))
    const [bad, good] = await client.next(2)
    expect(bad).toMatchObject({ id: null, problem: { status: 400, code: 'MALFORMED_JSON' } })
    expect(good).toMatchObject({ id: 2, model: s.name })
    expect(client.socket.readyState).toBe(WebSocket.OPEN)
    client.socket.close()
  })

  it('when inputs do not fit the card, then the problem names them by their place in the message, under the same id', async () => {
    const client = await connect(url, auth())
    client.socket.send(
      JSON.stringify({ id: 'x', inputs: { ...irisInputs(0), sepal_length: 'long' }, extra: 1 }),
    )
    client.socket.send(JSON.stringify({ id: 'y', inputs: { ...irisInputs(0), petal_width: 11 } }))
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true })
    const replies = await client.next(3)
    const [shape, range, binary] = ['x', 'y', null].map((id) => replies.find((r) => r.id === id))
    expect(shape).toMatchObject({ id: 'x', problem: { status: 422, code: 'VALIDATION_FAILED' } })
    expect(shape?.problem?.errors).toEqual([
      { path: 'message.extra', message: 'is not a member of a prediction message' },
    ])
    expect(range?.problem?.errors).toEqual([
      { path: 'message.inputs.petal_width', message: 'must be at most 10 (cm)' },
    ])
    expect(binary).toMatchObject({ id: null, problem: { status: 415 } })
    client.socket.close()
  })

  it('when a connection sends more messages a second than allowed, then the excess gets RATE_LIMITED and the socket stays open', async () => {
    const client = await connect(url, auth())
    for (let i = 0; i < 60; i++) client.socket.send(`not json ${i}`)
    const replies = await client.next(60)
    const limited = replies.filter((reply) => reply.problem?.code === 'RATE_LIMITED')
    // The first 20 are the burst; how many of the rest pass depends on how fast they arrive.
    expect(replies.slice(0, 20).every((reply) => reply.problem?.code === 'MALFORMED_JSON')).toBe(
      true,
    )
    expect(limited.length).toBeGreaterThan(0)
    expect(limited[0]?.problem).toMatchObject({ status: 429 })
    expect(limited[0]?.problem?.retry_after_ms).toBeGreaterThan(0)
    expect(client.socket.readyState).toBe(WebSocket.OPEN)
    client.socket.close()
  })

  it('when more predictions run than the in-flight limit, then the excess gets TOO_MANY_IN_FLIGHT at once', async () => {
    const client = await connect(url, auth())
    for (let i = 0; i < 6; i++) client.socket.send(JSON.stringify({ id: i, inputs: irisInputs(i) }))
    const replies = await client.next(6)
    const refused = replies.filter((reply) => reply.problem?.code === 'TOO_MANY_IN_FLIGHT')
    expect(refused.map((reply) => reply.id)).toEqual([4, 5])
    expect(replies.filter((reply) => reply.prediction !== undefined)).toHaveLength(4)
    client.socket.close()
  })

  it('when a message is larger than WS_MAX_MESSAGE_BYTES, then the socket is closed with 1009', async () => {
    const client = await connect(url, auth())
    const closing = closed(client.socket)
    client.socket.send(JSON.stringify({ id: 'big', inputs: { pad: 'x'.repeat(4096) } }))
    expect((await closing).code).toBe(1009)
  })

  it('when the handshake has no credentials, then it is refused with a 401 problem before any upgrade', async () => {
    const refused = await refusedHandshake(url)
    expect(refused.status).toBe(401)
    expect(refused.body).toMatchObject({ code: 'UNAUTHENTICATED' })
    // The socket taken over for the upgrade is not left open behind the answer.
    await expect(refused.closed).resolves.toBeUndefined()
  })

  it('when a browser offers its token as a subprotocol, then the socket opens and the server selects only the service subprotocol', async () => {
    const token = s.user.headers.authorization.slice('Bearer '.length)
    const client = await connect(url, {}, [SUBPROTOCOL, `bearer.${token}`])
    expect(client.socket.protocol).toBe(SUBPROTOCOL)
    client.socket.send(JSON.stringify({ inputs: irisInputs(2) }))
    const [reply] = await client.next(1)
    expect(reply).toMatchObject({ id: null, model: s.name })
    client.socket.close()
  })

  it('when the handshake carries an API key, as a header or as a browser subprotocol, then the socket predicts; a wrong key is refused with 401', async () => {
    const created = await s.t.app.inject({
      method: 'POST',
      url: '/v1/api-keys',
      headers: s.user.headers,
      payload: { name: 'socket client' },
    })
    expect(created.statusCode, created.body).toBe(201)
    const key: string = created.json().key
    const byHeader = await connect(url, { headers: { 'x-api-key': key } })
    const byProtocol = await connect(url, {}, [SUBPROTOCOL, `api-key.${key}`])
    expect(byProtocol.socket.protocol).toBe(SUBPROTOCOL)
    for (const [i, client] of [byHeader, byProtocol].entries()) {
      client.socket.send(JSON.stringify({ id: i, inputs: irisInputs(i) }))
      const [reply] = await client.next(1)
      expect(reply).toMatchObject({ id: i, model: s.name })
      client.socket.close()
    }
    const wrong = `${key.slice(0, -1)}${key.endsWith('a') ? 'b' : 'a'}`
    const refused = await refusedHandshake(url, { 'x-api-key': wrong })
    expect(refused.status).toBe(401)
    expect(refused.body).toMatchObject({ code: 'UNAUTHENTICATED' })
  })

  it('when the model does not exist, then the handshake is refused with 404 MODEL_NOT_FOUND', async () => {
    const refused = await refusedHandshake(url.replace(s.name, 'no-such-model'), s.user.headers)
    expect(refused.status).toBe(404)
    expect(refused.body).toMatchObject({ code: 'MODEL_NOT_FOUND' })
  })

  it('when a plain GET reaches the endpoint, then it answers 426 UPGRADE_REQUIRED', async () => {
    const response = await s.t.app.inject({
      method: 'GET',
      url: `/v1/models/${s.name}/ws`,
      headers: s.user.headers,
    })
    expect(response.statusCode).toBe(426)
    expect(response.json()).toMatchObject({ code: 'UPGRADE_REQUIRED' })
  })

  it('when a socket stays silent past the idle timeout, then the server closes it with 1000', async () => {
    const client = await connect(url, auth())
    const started = Date.now()
    const { code, reason } = await closed(client.socket)
    expect(code).toBe(CLOSE.idle.code)
    expect(reason).toBe(CLOSE.idle.reason)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
  })

  it('when a client answers no ping, then the server drops the connection', async () => {
    const client = await connect(url, { ...auth(), autoPong: false })
    const { code } = await closed(client.socket)
    // Terminated without a closing handshake.
    expect(code).toBe(1006)
  })
})

describe('WebSocket predictions at shutdown', () => {
  it('when the server shuts down, then open sockets are closed with 1001', {
    timeout: 120_000,
  }, async () => {
    const s = await serveIrisLike(ENV)
    const url = await listen(s)
    const client = await connect(url, { headers: s.user.headers })
    const closing = closed(client.socket)
    await s.t.close()
    expect(await closing).toEqual({ code: CLOSE.shutdown.code, reason: CLOSE.shutdown.reason })
  })
})
