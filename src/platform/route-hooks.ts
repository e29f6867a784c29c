/**
 * A route's hooks of one kind as an array, for an `onRoute` hook that adds its own: Fastify
 * takes a function, an array or nothing there.
 */
export function hooksOf<T>(hooks: T | T[] | undefined): T[] {
  return Array.isArray(hooks) ? hooks : hooks ? [hooks] : []
}
