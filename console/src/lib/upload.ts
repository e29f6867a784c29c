import type { OrderFlowClient } from '@orderflow/client'
import { errorFromResponseText } from './problem-text.js'

export interface UploadOutcome<T> {
  status: number
  body: T
}

/**
 * POSTs a multipart form with upload progress. fetch cannot report how much of a request
 * body has been sent, so this one request goes through XMLHttpRequest, authenticated with
 * the client's current headers; the call before it (see `freshen`) lets the client refresh
 * an expiring session first.
 */
export async function uploadWithProgress<T>(
  client: OrderFlowClient,
  path: string,
  form: FormData,
  onProgress: (fraction: number) => void,
  freshen: () => Promise<unknown>,
): Promise<UploadOutcome<T>> {
  await freshen()
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest()
    request.open('POST', path)
    for (const [name, value] of Object.entries(client.authHeaders()))
      request.setRequestHeader(name, value)
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total)
    })
    request.addEventListener('load', () => {
      if (request.status >= 200 && request.status < 300) {
        onProgress(1)
        resolve({ status: request.status, body: JSON.parse(request.responseText) as T })
      } else {
        reject(errorFromResponseText(request.status, request.responseText))
      }
    })
    request.addEventListener('error', () => reject(new Error('The upload failed (network).')))
    request.send(form)
  })
}
