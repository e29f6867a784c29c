import { ApiError } from '@orderflow/client'

/** A failed call, told in words: the problem's detail, and its request id for support. */
export function ProblemAlert({ error }: { error: unknown }) {
  if (!error) return null
  const problem = error instanceof ApiError ? error : null
  const message = problem ? problem.detail : error instanceof Error ? error.message : String(error)
  return (
    <div role="alert" className="alert">
      <strong>{problem ? problem.title : 'Something went wrong'}:</strong> {message}
      {problem?.requestId ? <small> (request {problem.requestId})</small> : null}
    </div>
  )
}

/** A validation problem's messages by form field (`body.price` -> `price`). */
export function fieldErrorsOf(error: unknown): Record<string, string> {
  return error instanceof ApiError ? error.fieldErrors() : {}
}
