/**
 * The ingest bench's upload client, run as a process of its own so that the bench process's
 * RSS is the server's alone: `node --import tsx bench/upload-client.ts <url> <token> <file>`.
 * Streams the file from disk as one multipart part and prints the answer as one JSON line,
 * `{status, body, seconds}`: `seconds` runs from the request's first byte to the answer's
 * last, so that the process's own start (a second of TypeScript loading on a busy machine) is
 * not counted as the server's time.
 */
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createReadStream } from 'node:fs'
import { request } from 'node:http'
import { basename } from 'node:path'
import { text } from 'node:stream/consumers'
import { pipeline } from 'node:stream/promises'

/**
 * Plain `node:http` with the file piped in: fetch's web streams cost the client more CPU per
 * MB than the server's multipart parsing, on a machine whose two cores the server shares.
 */
async function main() {
  const [url, token, path] = process.argv.slice(2)
  if (!url || !token || !path) throw new Error('usage: upload-client.ts <url> <token> <file>')
  const boundary = `bench${randomUUID()}`
  const started = performance.now()
  const outgoing = request(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': `multipart/form-data; boundary=${boundary}`,
    },
  })
  const answered = once(outgoing, 'response')
  outgoing.write(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${basename(path)}"\r\n` +
      'Content-Type: text/csv\r\n\r\n',
  )
  await pipeline(createReadStream(path, { highWaterMark: 256 * 1024 }), outgoing, { end: false })
  outgoing.end(`\r\n--${boundary}--\r\n`)
  const [response] = (await answered) as [import('node:http').IncomingMessage]
  const body = JSON.parse(await text(response))
  const seconds = (performance.now() - started) / 1000
  process.stdout.write(`${JSON.stringify({ status: response.statusCode, body, seconds })}\n`)
}

await main()
