import { AppError, defineError } from './errors.js'

/** A multipart body that ends early, lacks its boundary or breaks its own framing. */
export const MalformedMultipart = defineError('MALFORMED_MULTIPART', 400)

/**
 * The multipart parser's (busboy's) own errors are plain, code-less Errors about the body's
 * framing, which would otherwise surface as 500s: this names them as the client's mistake.
 * Anything else (our own problems, the plugin's coded limit errors) is returned unchanged.
 */
export function asMalformedMultipart(error: unknown): unknown {
  if (
    error instanceof Error &&
    !(error instanceof AppError) &&
    (error as { code?: string }).code === undefined &&
    /multipart|boundary|part/i.test(error.message)
  ) {
    return new MalformedMultipart(
      `The multipart body is malformed: ${error.message.slice(0, 200)}.`,
    )
  }
  return error
}
