import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** What a fake upstream saw of one request. */
export interface SeenRequest {
  url: string
  headers: IncomingMessage['headers']
  body: unknown
  /** True when the caller closed the connection before the answer ended. */
  cancelled: boolean
}

export type Handler = (
  request: IncomingMessage,
  response: ServerResponse,
  body: unknown,
  seen: SeenRequest,
) => void | Promise<void>

export interface FakeUpstream {
  url: string
  host: string
  seen: SeenRequest[]
  /** Replaces how the next requests are answered. */
  answer(handler: Handler): void
  close(): Promise<void>
}

/**
 * A real HTTP server on a free local port standing in for an inference server outside the
 * project: each test sets how it answers (slow, dropped, 5xx, garbage, huge) and reads what
 * it received.
 */
export async function startFakeUpstream(initial: Handler): Promise<FakeUpstream> {
  let handler = initial
  const seen: SeenRequest[] = []
  const server: Server = createServer(async (request, response) => {
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    let body: unknown
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      body = undefined
    }
    const record: SeenRequest = {
      url: request.url ?? '',
      headers: request.headers,
      body,
      cancelled: false,
    }
    seen.push(record)
    response.once('close', () => {
      if (!response.writableFinished) record.cancelled = true
    })
    try {
      await handler(request, response, body, record)
    } catch {
      response.destroy()
    }
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    seen,
    answer(next) {
      handler = next
    },
    async close() {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

export const json = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { 'content-type': 'application/json' })
  response.end(JSON.stringify(body))
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** What a KServe v2 server serving iris answers for `rows` rows: every row virginica. */
export function irisAnswer(rows: number) {
  return {
    model_name: 'iris-upstream',
    outputs: [
      {
        name: 'probabilities',
        datatype: 'FP32',
        shape: [rows, 3],
        data: Array.from({ length: rows }, () => [0.1, 0.2, 0.7]).flat(),
      },
      { name: 'label', datatype: 'INT64', shape: [rows], data: Array(rows).fill(2) },
    ],
  }
}

/** Answers each infer call with `irisAnswer` for as many rows as it sent. */
export const answerAsIris: Handler = (_request, response, body) => {
  const rows = (body as { inputs: { shape: number[] }[] }).inputs[0]?.shape[0] ?? 0
  json(response, 200, irisAnswer(rows))
}
