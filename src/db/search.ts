/** An ILIKE pattern for "contains `term`", where `%` and `_` typed by a user stay literal. */
export function containsPattern(term: string): string {
  return `%${term.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}
