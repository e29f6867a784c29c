const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

export const formatTime = (iso: string | null | undefined) =>
  iso ? dateTime.format(new Date(iso)) : '—'

export const formatMoney = (amount: string) => `$${amount}`

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KB', 'MB', 'GB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit]}`
}

export const formatPercent = (fraction: number) => `${Math.round(fraction * 100)}%`
