import { availableParallelism } from 'node:os'
import { hash, verify } from '@node-rs/argon2'
import { ServiceUnavailable } from '../../shared/errors.js'
import { createLimiter, type Limiter, QueueFull } from '../../shared/limiter.js'

/** OWASP's minimum for argon2id (Password Storage Cheat Sheet): 19 MiB, 2 passes, 1 lane. */
// `Algorithm` is a const enum the binding does not export at run time: 2 is Argon2id.
const ARGON2ID = 2
const ARGON2_OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 }

export interface PasswordHashingLimits {
  /** Hashes computed at once; 0 means one fewer than the CPU count (at least one). */
  concurrency: number
  /** Hashes allowed to wait; beyond that, 503 at once. */
  maxQueue: number
}

/**
 * Each argon2 hash holds a CPU core for tens of milliseconds. Left unbounded, a login flood
 * would occupy every core (libuv runs 4 at once) and starve all other requests; bounded,
 * a core stays free for them and excess logins get a quick 503 instead of a long wait.
 */
let hashing: Limiter = createLimiter({ concurrency: defaultConcurrency(), maxQueue: 64 })

/** Process-wide, like the CPU it protects: buildApp sets it from the configuration. */
export function limitPasswordHashing(limits: PasswordHashingLimits): void {
  hashing = createLimiter({
    concurrency: limits.concurrency || defaultConcurrency(),
    maxQueue: limits.maxQueue,
  })
}

function defaultConcurrency(): number {
  return Math.max(1, availableParallelism() - 1)
}

async function limited<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await hashing.run(work)
  } catch (error) {
    if (error instanceof QueueFull) {
      throw new ServiceUnavailable('Too many sign-ins in progress; try again in a moment.')
    }
    throw error
  }
}

/** Hashes on libuv's thread pool (the native binding is async), never on the event loop. */
export function hashPassword(password: string): Promise<string> {
  return limited(() => hash(password, ARGON2_OPTIONS))
}

/** A user created by single sign-on has no password hash: nothing verifies, at the usual cost. */
export function verifyPassword(passwordHash: string | null, password: string): Promise<boolean> {
  if (passwordHash === null) return verifyNobody(password)
  return limited(() => verify(passwordHash, password).catch(() => false))
}

let dummyHash: Promise<string> | undefined

/**
 * Spends the same time as a real verification, for a login with an unknown email, so the
 * answer's timing does not tell which emails have accounts.
 */
export async function verifyNobody(password: string): Promise<false> {
  dummyHash ??= hashPassword('a password nobody has, hashed once per process')
  await verifyPassword(await dummyHash, password)
  return false
}
