import type { OrderFlowClient, paths } from '@orderflow/client'
import { errorFromResponseText } from './problem-text.js'

/** The routes that take a POST, by their OpenAPI path. */
export type PostPath = {
  [P in keyof paths]: paths[P] extends { post: { responses: unknown } } ? P : never
}[keyof paths]

type Json<T> = T extends { content: { 'application/json': infer Body } } ? Body : never
type PostResponses<P extends PostPath> = paths[P] extends { post: { responses: infer R } }
  ? R
  : never

/** Every 2xx JSON body the route may answer (a dataset upload: 201 the dataset, 202 a job). */
export type UploadAnswer<P extends PostPath> = {
  [S in keyof PostResponses<P>]: S extends 200 | 201 | 202 ? Json<PostResponses<P>[S]> : never
}[keyof PostResponses<P>]

export interface UploadOutcome<T> {
  status: number
  body: T
}

/**
 * POSTs a multipart form and reports how much of it has been sent. fetch cannot tell
 * upload progress, so this one request goes through XMLHttpRequest with the client's
 * current credentials; an expired access token (401) is renewed once and the form sent again.
 */
export async function uploadWithProgress<P extends PostPath>(
  client: OrderFlowClient,
  path: P,
  form: FormData,
  onProgress: (fraction: number) => void,
): Promise<UploadOutcome<UploadAnswer<P>>> {
  const first = await send(client, path, form, onProgress)
  if (first.status !== 401) return settle(first)
  await client.refresh()
  onProgress(0)
  return settle(await send(client, path, form, onProgress))
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
