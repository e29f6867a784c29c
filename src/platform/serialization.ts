import SerializerSelector from '@fastify/fast-json-stringify-compiler'

type SerializerFactory = ReturnType<typeof SerializerSelector>

/**
 * Fastify's own response serializers (fast-json-stringify), each built on the first response
 * it serialises rather than at start. Building them all at start took about a tenth of
 * start-up's main-thread CPU (a schema per route and status, most of them problem answers a
 * process may never send); a route's first response of a status now pays for its own, once.
 */
export function lazySerializers(): SerializerFactory {
  const build = SerializerSelector()
  return (externalSchemas, options) => {
    const compile = build(externalSchemas, options)
    return (route) => {
      let serialize: ((doc: unknown) => string) | undefined
      return (doc) => {
        serialize ??= compile(route)
        return serialize(doc)
      }
    }
  }
}
