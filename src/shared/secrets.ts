import { createHash, randomBytes } from 'node:crypto'

/** 256 bits from the CSPRNG, base64url: for refresh tokens and API key secrets. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url')
}

/**
 * SHA-256, hex. Enough for high-entropy random secrets (a slow hash protects guessable
 * passwords; a 256-bit random value cannot be guessed), and it keeps lookups indexable.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}
