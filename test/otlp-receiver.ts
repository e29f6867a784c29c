import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** A span as OTLP/HTTP's JSON encoding carries it (the fields the tests read). */
export interface ExportedSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  traceState?: string
  name: string
  kind: number
  status?: { code?: number }
  attributes: { key: string; value: Record<string, unknown> }[]
  /** The exporting process's `service.name` (a resource attribute), kept by the receiver. */
  service?: string
}

interface ExportedResource {
  attributes?: { key: string; value: { stringValue?: string } }[]
}

/** A real OTLP/HTTP receiver (JSON encoding) on loopback, keeping every span it is sent. */
export async function startOtlpReceiver() {
  const spans: ExportedSpan[] = []
  const server: Server = createServer((request, response) => {
    let body = ''
    request.on('data', (chunk) => {
      body += chunk
    })
    request.on('end', () => {
      if (request.url === '/v1/traces') {
        const payload = JSON.parse(body) as {
          resourceSpans: { resource?: ExportedResource; scopeSpans: { spans: ExportedSpan[] }[] }[]
        }
        for (const { resource, scopeSpans } of payload.resourceSpans) {
          const service = resource?.attributes?.find((a) => a.key === 'service.name')?.value
          for (const scope of scopeSpans) {
            for (const span of scope.spans) spans.push({ ...span, service: service?.stringValue })
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { spans, url: `http://127.0.0.1:${port}`, close: () => server.close() }
}
