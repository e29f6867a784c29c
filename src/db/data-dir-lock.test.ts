import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { runCli } from '../../test/processes.js'
import { createEmbeddedDatabase } from './client.js'
import { DataDirLockedError, lockDataDir } from './data-dir-lock.js'

const root = mkdtempSync(join(tmpdir(), 'orderflow-lock-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirs = 0
function freshDir() {
  const parent = join(root, `data-${++dirs}`)
  mkdirSync(parent)
  return join(parent, 'pgdata')
}

/** A directory's first open loads the migrated template: an initdb costs seconds more. */
const migrated = () => new Blob([readFileSync(inject('pgliteTemplate'))])

/** The pid of a process that has already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', ''])
  return child.pid as number
}

const cliOn = (args: string[], dataDir: string) =>
  runCli(args, { env: { ...process.env, NODE_ENV: 'test', DATA_DIR: dataDir, DATABASE_URL: '' } })

describe('embedded data directory lock', { timeout: 120_000 }, () => {
  it('when a data directory is open, then a second open is refused naming the holder pid, and the first keeps working', async () => {
    const dir = freshDir()
    const first = await createEmbeddedDatabase({ dataDir: dir, loadDataDir: migrated() })
    try {
      const second = createEmbeddedDatabase({ dataDir: dir })
      await expect(second).rejects.toBeInstanceOf(DataDirLockedError)
      await expect(second).rejects.toThrow(`in use by process ${process.pid}`)
      await expect(first.ping()).resolves.toBeUndefined()
    } finally {
      await first.close()
    }
  })

  it('when the holder closes the database, then the lock file is gone and the directory opens again', async () => {
    const dir = freshDir()
    const first = await createEmbeddedDatabase({ dataDir: dir, loadDataDir: migrated() })
    expect(readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(process.pid))
    await first.close()
    expect(existsSync(`${dir}.lock`)).toBe(false)
    const again = await createEmbeddedDatabase({ dataDir: dir })
    await again.close()
  })

  it('when the lock file names a process that no longer runs, then the lock is taken over', () => {
    const dir = freshDir()
    writeFileSync(`${dir}.lock`, `${deadPid()}\n`)
    const lock = lockDataDir(dir)
    expect(readFileSync(lock.path, 'utf8').trim()).toBe(String(process.pid))
    lock.release()
  })

  it('when the lock file holds no pid (not one of ours), then it is stale and taken over', () => {
    const dir = freshDir()
    writeFileSync(`${dir}.lock`, '')
    const lock = lockDataDir(dir)
    expect(readFileSync(lock.path, 'utf8').trim()).toBe(String(process.pid))
    lock.release()
  })

  it('when the lock file names this process but it holds no lock, then the lock is stale (a reused pid)', () => {
    const dir = freshDir()
    writeFileSync(`${dir}.lock`, `${process.pid}\n`)
    const lock = lockDataDir(dir)
    expect(() => lockDataDir(dir)).toThrow(DataDirLockedError)
    lock.release()
  })

  it('when the lock file names a live process, then the lock stays with it and is not removed', () => {
    const dir = freshDir()
    writeFileSync(`${dir}.lock`, `${process.ppid}\n`)
    expect(() => lockDataDir(dir)).toThrow(`in use by process ${process.ppid}`)
    expect(readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(process.ppid))
  })

  it('when a server process holds the directory, then a CLI command in another process refuses with exit 1, names the pid and changes nothing', async () => {
    const dataDir = join(root, 'shared')
    const server = await createEmbeddedDatabase({ dataDir: join(dataDir, 'pgdata') })
    try {
      const run = await cliOn(['migrate'], dataDir)
      expect(run.code).toBe(1)
      expect(run.stderr).toContain(`in use by process ${process.pid}`)
      expect(run.stderr).toContain('Stop that process')
      expect(run.stderr).not.toMatch(/\n\s+at /) // no stack trace
      expect(run.stdout).toBe('')
      // The CLI would have migrated a fresh directory; the server's database has no tables.
      const tables = await server.db.execute(
        "select count(*)::int as n from information_schema.tables where table_schema = 'public'",
      )
      expect((tables as unknown as { rows: { n: number }[] }).rows[0]?.n).toBe(0)
    } finally {
      await server.close()
    }
    const after = await cliOn(['migrate'], dataDir)
    expect(after.code).toBe(0)
  })
})
