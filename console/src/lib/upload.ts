import type { OrderFlowClient } from '@orderflow/client'
import { errorFromResponseText } from './problem-text.js'

export interface UploadOutcome<T> {
  status: number
  body: T
}

/**
 * POSTs a multipart form and reports how much of it has been sent. fetch cannot tell
 * upload progress, so this one request goes through XMLHttpRequest with the client's
 * current credentials; an expired access token (401) is renewed once and the form sent again.
 */
export async function uploadWithProgress<T>(
  client: OrderFlowClient,
  path: string,
  form: FormData,
  onProgress: (fraction: number) => void,
): Promise<UploadOutcome<T>> {
  const first = await send(client, path, form, onProgress)
  if (first.status !== 401) return settle<T>(first)
  await client.refresh()
  onProgress(0)
  return settle<T>(await send(client, path, form, onProgress))
}

function send(
  client: OrderFlowClient,
  path: string,
  form: FormData,
  onProgress: (fraction: number) => void,
): Promise<XMLHttpRequest> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest()
    request.open('POST', path)
    for (const [name, value] of Object.entries(client.authHeaders()))
      request.setRequestHeader(name, value)
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total)
    })
    request.addEventListener('load', () => resolve(request))
    request.addEventListener('error', () => reject(new Error('The upload failed (network).')))
    request.send(form)
  })
}

function settle<T>(request: XMLHttpRequest): UploadOutcome<T> {
  if (request.status < 200 || request.status >= 300)
    throw errorFromResponseText(request.status, request.responseText)
  return { status: request.status, body: JSON.parse(request.responseText) as T }
}
