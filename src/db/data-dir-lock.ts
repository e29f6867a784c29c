import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { OperatorError } from '../shared/operator-error.js'

/** Another live process holds the data directory; its message names the process and the way out. */
export class DataDirLockedError extends OperatorError {
  constructor(
    readonly lockPath: string,
    readonly holderPid: number,
  ) {
    super(
      `The data directory is in use by process ${holderPid} (lock file ${lockPath}). ` +
        'Stop that process (an OrderFlow server or CLI command) and try again; ' +
        `if no process ${holderPid} is running, delete the lock file.`,
    )
    this.name = 'DataDirLockedError'
  }
}

export interface DataDirLock {
  readonly path: string
  release(): void
}

/** Locks this process holds, so a second open in the same process is refused as well. */
const heldHere = new Set<string>()

/**
 * Takes `<dir>.lock`, a file that holds this process's pid, for as long as the directory is
 * open. It is written beside and then hard-linked into place: the link fails if the lock
 * exists, so taking it is atomic, and nobody ever reads a half-written lock.
 * Written here rather than with proper-lockfile or lockfile: those judge a lock stale by
 * its age (and need a timer refreshing it), while a dead holder is exactly what a pid tells
 * at once, and the pid is what the operator needs to read.
 */
export function lockDataDir(dir: string): DataDirLock {
  const path = `${dir}.lock`
  if (heldHere.has(path)) throw new DataDirLockedError(path, process.pid)
  for (let attempt = 0; attempt < 3; attempt++) {
    if (tryCreate(path)) return held(path)
    const content = readContent(path)
    if (content === undefined) continue // released in between: try again
    const holder = pidIn(content)
    if (holder !== undefined && isAlive(holder)) throw new DataDirLockedError(path, holder)
    removeStale(path, content)
  }
  throw new DataDirLockedError(path, pidIn(readContent(path) ?? '') ?? 0)
}

function tryCreate(path: string): boolean {
  const draft = `${path}.${process.pid}.draft`
  writeFileSync(draft, `${process.pid}\n`)
  try {
    linkSync(draft, path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  } finally {
    unlinkQuietly(draft)
  }
}

function held(path: string): DataDirLock {
  heldHere.add(path)
  // A CLI that exits on an error never reaches close(); its lock goes with it all the same.
  const onExit = () => release()
  process.once('exit', onExit)
  function release() {
    if (!heldHere.delete(path)) return
    process.off('exit', onExit)
    if (pidIn(readContent(path) ?? '') === process.pid) unlinkQuietly(path)
  }
  return { path, release }
}

function readContent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

/** The holder's pid; none for a file that is not one of our locks, which counts as stale. */
function pidIn(content: string): number | undefined {
  const pid = Number(content.trim())
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}

function isAlive(pid: number): boolean {
  // Our own pid in a lock we do not hold was left by an earlier process: a restarted
  // container numbers its processes from 1 again.
  if (pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Moves the stale lock aside atomically before deleting it. If another process replaced it
 * with a fresh lock between our read and the rename, that lock is put back.
 */
function removeStale(path: string, staleContent: string) {
  const aside = `${path}.${process.pid}.stale`
  try {
    renameSync(path, aside)
  } catch {
    return
  }
  if (readContent(aside) !== staleContent) {
    try {
      linkSync(aside, path)
    } catch {}
  }
  unlinkQuietly(aside)
}

function unlinkQuietly(path: string) {
  try {
    unlinkSync(path)
  } catch {}
}
