import type { AuditChanges } from '../../db/schema/index.js'

type Fields<T> = readonly (keyof T & string)[]

/** A created resource: every listed field with its initial value. */
export function createdChanges<T extends object>(after: T, fields: Fields<T>): AuditChanges {
  return Object.fromEntries(fields.map((field) => [field, { after: after[field] }]))
}

/** A deleted resource: every listed field with its last value. */
export function deletedChanges<T extends object>(before: T, fields: Fields<T>): AuditChanges {
  return Object.fromEntries(fields.map((field) => [field, { before: before[field] }]))
}

/**
 * An update: only the listed fields whose value changed. Callers list the fields worth
 * recording and never a secret; a changed secret is recorded as the fact, e.g.
 * `{ password: { after: '[changed]' } }`, by the service that knows it changed.
 */
export function updatedChanges<T extends object>(
  before: T,
  after: T,
  fields: Fields<T>,
): AuditChanges {
  const changes: AuditChanges = {}
  for (const field of fields) {
    if (!sameValue(before[field], after[field])) {
      changes[field] = { before: before[field], after: after[field] }
    }
  }
  return changes
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b)
}
