import { ApiError } from '@orderflow/client'

/** The client's typed error for an answer read by hand (an XMLHttpRequest's). */
export function errorFromResponseText(status: number, text: string): ApiError {
  try {
    const body = JSON.parse(text) as { code?: string }
    if (typeof body.code === 'string') return new ApiError({ ...body, status, code: body.code })
  } catch {
    // Not a problem document: described by its status below.
  }
  return new ApiError({ status, code: `HTTP_${status}`, detail: `The server answered ${status}.` })
}
