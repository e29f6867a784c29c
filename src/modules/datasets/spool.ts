import { createHash, randomUUID } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

/** An upload written to disk: the importer reads it twice, and a job may read it later. */
export interface SpooledFile {
  path: string
  size: number
  sha256: string
  /** The first bytes, to recognise the format and the delimiter. */
  head: Uint8Array
}

const HEAD_BYTES = 64 * 1024
/**
 * Bytes the file may have pending before the upload waits for the disk. With the default,
 * 16 KB, each 64 KB piece of the body waited for its own write to finish before the next was
 * read from the socket.
 */
const WRITE_AHEAD_BYTES = 1024 * 1024

/**
 * Streams `source` into a new file under `directory`, hashing and counting as it goes, so
 * memory holds one chunk whatever the size. `tooLarge` tells whether the source was cut at
 * the size limit (the multipart parser stops there); the partial file is then removed.
 */
export async function spool(
  source: Readable,
  directory: string,
  tooLarge: () => boolean,
): Promise<SpooledFile> {
  await mkdir(directory, { recursive: true })
  const path = join(directory, `${randomUUID()}.upload`)
  const hash = createHash('sha256')
  const head: Buffer[] = []
  let headBytes = 0
  let size = 0
  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk)
          size += chunk.length
          if (headBytes < HEAD_BYTES) {
            head.push(chunk.subarray(0, HEAD_BYTES - headBytes))
            headBytes += Math.min(chunk.length, HEAD_BYTES - headBytes)
          }
          yield chunk
        }
      },
      createWriteStream(path, { highWaterMark: WRITE_AHEAD_BYTES }),
    )
  } catch (error) {
    await rm(path, { force: true })
    throw error
  }
  if (tooLarge()) {
    await rm(path, { force: true })
    throw new UploadTooLarge()
  }
  return { path, size, sha256: hash.digest('hex'), head: new Uint8Array(Buffer.concat(head)) }
}

export class UploadTooLarge extends Error {}

export const removeFile = (path: string) => rm(path, { force: true })
