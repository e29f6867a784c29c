import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
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
 * Takes `<dir>.lock`, a file created with O_EXCL that holds this process's pid, for as long
 * as the directory is open. Written here rather than with proper-lockfile or lockfile: those
 * judge a lock stale by its age (and need a timer refreshing it), while a dead holder is
 * exactly what a pid tells at once, and the pid is what the operator needs to read.
 */
export function lockDataDir(dir: string): DataDirLock {
  const path = `${dir}.lock`
  if (heldHere.has(path)) throw new DataDirLockedError(path, process.pid)
  for (let attempt = 0; attempt < 3; attempt++) {
    if (tryCreate(path)) return held(path)
    const holder = readPid(path)
    if (holder === undefined) continue // removed (or half-written) in between: try again
    if (isAlive(holder)) throw new DataDirLockedError(path, holder)
    removeStale(path, holder)
  }
  throw new DataDirLockedError(path, readPid(path) ?? 0)
}

function tryCreate(path: string): boolean {
  let fd: number
  try {
    fd = openSync(path, 'wx')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
  try {
    writeSync(fd, `${process.pid}\n`)
  } finally {
    closeSync(fd)
  }
  return true
}

function held(path: string): DataDirLock {
  heldHere.add(path)
  // A CLI that exits on an error never reaches close(); its lock goes with it all the same.
  const onExit = () => release()
  process.once('exit', onExit)
  function release() {
    if (!heldHere.delete(path)) return
    process.off('exit', onExit)
    if (readPid(path) === process.pid) unlinkQuietly(path)
  }
  return { path, release }
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10)
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
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
function removeStale(path: string, stalePid: number) {
  const aside = `${path}.${process.pid}.stale`
  try {
    renameSync(path, aside)
  } catch {
    return
  }
  if (readPid(aside) !== stalePid) {
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
