import { request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, type TestApp } from './helpers.js'

const REQUEST_TIMEOUT_MS = 1000
const KEEP_ALIVE_TIMEOUT_MS = 1000
// Longer than the others, so a cut before it is theirs and not the idle-socket backstop.
const CONNECTION_TIMEOUT_MS = 5000
/** How late a cut may come: the server checks deadlines periodically, and this box is shared. */
const SLACK_MS = 2000

let t: TestApp
let port: number

beforeAll(async () => {
  t = await buildTestApp({
    REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_TIMEOUT_MS),
    CONNECTION_TIMEOUT_MS: String(CONNECTION_TIMEOUT_MS),
  })
  await t.app.listen({ host: '127.0.0.1', port: 0 })
  port = (t.app.server.address() as { port: number }).port
})

afterAll(async () => {
  await t?.close()
})

interface RawClient {
  socket: Socket
  /** Everything the server sent so far. */
  received(): string
  /** Milliseconds from connecting until the server closed the connection. */
  closed: Promise<number>
  /** Writes `chunk` every `everyMs` until the connection closes. */
  dribble(chunk: string, everyMs: number): void
}

/** A raw TCP client, to send requests as slowly as an attacker would. */
function rawClient(): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const start = Date.now()
    let data = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk) => {
      data += chunk
    })
    socket.on('error', () => {}) // a reset is one way of being cut
    const closed = new Promise<number>((done) => socket.on('close', () => done(Date.now() - start)))
    socket.once('error', reject)
    socket.once('connect', () =>
      resolve({
        socket,
        received: () => data,
        closed,
        dribble(chunk, everyMs) {
          const timer = setInterval(() => {
            if (!socket.destroyed) socket.write(chunk)
          }, everyMs)
          socket.once('close', () => clearInterval(timer))
        },
      }),
    )
  })
}

/** GET /health on a connection of its own; its status. */
function health(): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('slow clients', () => {
  it('when a client sends its headers one line at a time, then REQUEST_TIMEOUT_MS answers 408 and closes the connection', async () => {
    const client = await rawClient()
    client.socket.write('GET /health HTTP/1.1\r\nhost: localhost\r\n')
    client.dribble('x-slow: 1\r\n', 100)

    const closedAfter = await client.closed

    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /)
    expect(closedAfter).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS)
  })

  it('when a client sends its body one byte at a time, then REQUEST_TIMEOUT_MS answers 408 and closes the connection', async () => {
    const client = await rawClient()
    client.socket.write(
      'POST /v1/auth/register HTTP/1.1\r\nhost: localhost\r\n' +
        'content-type: application/json\r\ncontent-length: 1000\r\n\r\n{',
    )
    client.dribble(' ', 100)

    const closedAfter = await client.closed

    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /)
    expect(closedAfter).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS)
  })

  it('when a client connects and sends nothing, then the connection is closed after REQUEST_TIMEOUT_MS', async () => {
    const client = await rawClient()

    const closedAfter = await client.closed

    expect(closedAfter).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS)
  })

  it('when a kept-alive connection idles after an answer, then KEEP_ALIVE_TIMEOUT_MS closes it, and until then it serves the next request', async () => {
    const client = await rawClient()
    const request = 'GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n'
    client.socket.write(request)
    await expect.poll(() => client.received().match(/HTTP\/1\.1 200 /g)?.length).toBe(1)
    client.socket.write(request)
    await expect.poll(() => client.received().match(/HTTP\/1\.1 200 /g)?.length).toBe(2)

    const closedAfter = await client.closed

    expect(closedAfter).toBeLessThan(KEEP_ALIVE_TIMEOUT_MS + SLACK_MS)
    expect(closedAfter).toBeLessThan(CONNECTION_TIMEOUT_MS)
  })

  it('when 200 slow clients hold connections open, then /health still answers 200 at once, and every slow client is cut', async () => {
    const clients = await Promise.all(Array.from({ length: 200 }, () => rawClient()))
    for (const client of clients) {
      client.socket.write('GET /v1/products HTTP/1.1\r\nhost: localhost\r\n')
      client.dribble('x-slow: 1\r\n', 200)
    }
    let open = 0
    const closedLog = clients.map((client) => client.closed.then(() => open--))
    open = clients.length

    const answers = []
    for (let i = 0; i < 20; i++) answers.push(await health())
    const stillOpen = open

    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200))
    // Every answer came while every slow client was still connected: a server blocked by
    // them would have answered only once the request timeout had cut them.
    expect(stillOpen).toBe(200)
    const cutAfter = await Promise.all(clients.map((client) => client.closed))
    await Promise.all(closedLog)
    expect(Math.max(...cutAfter)).toBeLessThan(REQUEST_TIMEOUT_MS + 2 * SLACK_MS)
  })
})
