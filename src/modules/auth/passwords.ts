import { hash, verify } from '@node-rs/argon2'

/** OWASP's minimum for argon2id (Password Storage Cheat Sheet): 19 MiB, 2 passes, 1 lane. */
// `Algorithm` is a const enum the binding does not export at run time: 2 is Argon2id.
const ARGON2ID = 2
const ARGON2_OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 }

/** Hashes on libuv's thread pool (the native binding is async), never on the event loop. */
export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS)
}

export function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  return verify(passwordHash, password).catch(() => false)
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
