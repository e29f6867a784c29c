import { createParser, type EventSourceMessage } from 'eventsource-parser'

export type { EventSourceMessage }

/**
 * The events of a `text/event-stream` response body, as they arrive. Reads the body with
 * a plain reader (async iteration of a ReadableStream is missing from some browsers), and
 * releases the connection when the loop ends early, throws, or `signal` aborts.
 */
export async function* readEventStream(
  response: Response,
  signal?: AbortSignal,
): AsyncGenerator<EventSourceMessage> {
  if (!response.body) return
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  const parsed: EventSourceMessage[] = []
  const parser = createParser({ onEvent: (event) => parsed.push(event) })
  const abort = () => void reader.cancel(signal?.reason).catch(() => {})
  signal?.addEventListener('abort', abort, { once: true })
  // One chunk may hold several events: none is handed out once the caller has aborted.
  function* drain() {
    while (parsed.length > 0) {
      signal?.throwIfAborted()
      yield parsed.shift() as EventSourceMessage
    }
  }
  try {
    for (;;) {
      signal?.throwIfAborted()
      const { value, done } = await reader.read()
      signal?.throwIfAborted()
      if (done) break
      parser.feed(decoder.decode(value, { stream: true }))
      yield* drain()
    }
    parser.feed(decoder.decode())
    yield* drain()
  } finally {
    signal?.removeEventListener('abort', abort)
    await reader.cancel().catch(() => {})
    reader.releaseLock()
  }
}
