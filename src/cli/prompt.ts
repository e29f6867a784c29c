import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'

/**
 * Reads one line without echoing it on a terminal. Piped input (`... < password.txt`) is
 * read as is, so scripts can provide the secret without an environment variable.
 */
export async function promptSecret(question: string): Promise<string> {
  const stdin = process.stdin
  const terminal = Boolean(stdin.isTTY)
  if (terminal) process.stderr.write(question)
  // The prompt goes to stderr above; readline's own echo goes nowhere.
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() })
  const lines = createInterface({ input: stdin, output: silent, terminal })
  try {
    for await (const line of lines) return line
    return ''
  } finally {
    lines.close()
    if (terminal) process.stderr.write('\n')
  }
}
