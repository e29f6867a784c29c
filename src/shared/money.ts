/*
 * Exact money arithmetic in integer cents (bigint). Orders (and the seeder) only add amounts and multiply
 * them by whole quantities, so two-decimal fixed point covers every case without pulling
 * in a decimal library, and no amount ever passes through a binary float.
 */

const AMOUNT = /^(-?)(\d+)(?:\.(\d{1,2}))?$/

/** "19.9" -> 1990n. Accepts what NUMERIC columns and MoneySchema produce. */
export function toCents(amount: string): bigint {
  const match = AMOUNT.exec(amount)
  if (!match) throw new Error(`Not a decimal amount with at most 2 decimals: ${amount}`)
  const [, sign, units = '0', fraction = ''] = match
  const cents = BigInt(units) * 100n + BigInt(fraction.padEnd(2, '0'))
  return sign ? -cents : cents
}

/** 1990n -> "19.90": always two decimals, as the API writes money. */
export function fromCents(cents: bigint): string {
  const magnitude = cents < 0n ? -cents : cents
  const fraction = (magnitude % 100n).toString().padStart(2, '0')
  return `${cents < 0n ? '-' : ''}${magnitude / 100n}.${fraction}`
}
