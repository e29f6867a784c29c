/**
 * The ingest bench's upload client, run as a process of its own so that the bench process's
 * RSS is the server's alone: `node --import tsx bench/upload-client.ts <url> <token> <file>`.
 * Streams the file from disk as one multipart part and prints the answer as one JSON line,
 * `{status, body}`.
 */
import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { basename } from 'node:path'
import { Readable } from 'node:stream'
import { Agent, fetch } from 'undici'

// The answer comes once the import is done, which on a loaded machine took more than the
// 300 s that fetch waits for response headers by default.
const patient = new Agent({ headersTimeout: 0, bodyTimeout: 0 })

function multipartBody(path: string, boundary: string): Readable {
  return Readable.from(
    (async function* () {
      yield Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${basename(path)}"\r\n` +
          'Content-Type: text/csv\r\n\r\n',
      )
      yield* createReadStream(path, { highWaterMark: 256 * 1024 })
      yield Buffer.from(`\r\n--${boundary}--\r\n`)
    })(),
  )
}

async function main() {
  const [url, token, path] = process.argv.slice(2)
  if (!url || !token || !path) throw new Error('usage: upload-client.ts <url> <token> <file>')
  const boundary = `bench${randomUUID()}`
  const answer = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': `multipart/form-data; boundary=${boundary}`,
    },
    body: Readable.toWeb(multipartBody(path, boundary)) as ReadableStream,
    duplex: 'half',
    dispatcher: patient,
  })
  process.stdout.write(`${JSON.stringify({ status: answer.status, body: await answer.json() })}\n`)
}

await main()
