/**
 * A failure the operator fixes outside the code: bad configuration, a busy port or data
 * directory, a missing database. Its message is the whole story, so the entry points print
 * it without a stack trace and exit non-zero.
 */
export class OperatorError extends Error {}
