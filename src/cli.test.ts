import { describe, expect, it } from 'vitest'
import { runCli } from '../test/processes.js'

const cli = (args: string[]) => runCli(args, { env: { ...process.env, NODE_ENV: 'test' } })

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
