import { spawn } from 'node:child_process'
import { createServer } from 'node:net'

/** How a child process ended and what it wrote. */
export interface ProcessRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a command to its end, collecting its output; `stdin` is written and closed. */
export function runProcess(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<ProcessRun> {
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  child.stdin?.end(options.stdin)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk) => {
    stdout += chunk
  })
  child.stderr?.on('data', (chunk) => {
    stderr += chunk
  })
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
}

/** `npm run cli -- <args>` as npm runs it (node with tsx's loader), without npm around it. */
export function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<ProcessRun> {
  return runProcess(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], options)
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (!address || typeof address === 'string') throw new Error('no free port')
  return address.port
}
