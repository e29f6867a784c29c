import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'

function cli(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    env: { ...process.env, NODE_ENV: 'test' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => {
    stdout += chunk
  })
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  )
}

// Each test starts Node processes, which take seconds each on a loaded machine.
describe('cli usage', { timeout: 120_000 }, () => {
  it('when asked for help (--help, -h, help, or --help after a command), then the usage goes to stdout with exit 0', async () => {
    const runs = await Promise.all([
      cli(['--help']),
      cli(['-h']),
      cli(['help']),
      cli(['create-admin', '--help']),
    ])
    for (const run of runs) {
      expect(run).toMatchObject({ code: 0, stderr: '' })
      expect(run.stdout).toMatch(/^Usage: npm run cli -- <command> \[options\]/)
      expect(run.stdout).toContain('create-admin --email <email>')
    }
  })

  it('when the command is unknown, then it says so, prints the usage on stderr and exits 2', async () => {
    const run = await cli(['frobnicate'])
    expect(run.code).toBe(2)
    expect(run.stdout).toBe('')
    expect(run.stderr).toMatch(/^unknown command: frobnicate\n\nUsage: /)
  })
})
