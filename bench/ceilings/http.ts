/**
 * What the node:http ceilings share: reading a JSON body, answering JSON, and listening on
 * HOST:PORT as the bench hands them out. Deliberately bare: the ceilings measure the work a
 * route cannot avoid (parse, query or infer, serialise), with no framework around it.
 */
import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type ServerResponse,
} from 'node:http'

/** The most a ceiling reads of one body; the bench sends a few kilobytes at most. */
const MAX_BODY_BYTES = 1_048_576

export class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

export async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new HttpFailure(413, 'body too large')
    chunks.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpFailure(400, 'malformed JSON')
  }
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body)
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  })
  response.end(text)
}

/**
 * Serves `handle` on HOST:PORT; a thrown HttpFailure answers its status, anything else 500.
 * Closes on SIGTERM after `close` (pools, sessions), as the bench stops every child.
 */
export async function serve(
  handle: (request: IncomingMessage, response: ServerResponse) => Promise<void>,
  close: () => Promise<void> = async () => {},
): Promise<void> {
  const listener: RequestListener = (request, response) => {
    handle(request, response).catch((error: unknown) => {
      const status = error instanceof HttpFailure ? error.status : 500
      if (status === 500) console.error(error)
      if (!response.headersSent) sendJson(response, status, { status, title: String(error) })
      else response.destroy()
    })
  }
  const server = createServer({ keepAliveTimeout: 65_000 }, listener)
  process.once('SIGTERM', () => {
    server.close()
    server.closeAllConnections()
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
  await new Promise<void>((resolve) => {
    server.listen(
      { host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT) },
      resolve,
    )
  })
}

/** The liveness answer every ceiling gives, so the bench waits for each the same way. */
export function answerHealth(response: ServerResponse): void {
  sendJson(response, 200, { status: 'ok' })
}
