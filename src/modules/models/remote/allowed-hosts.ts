/**
 * REMOTE_BACKEND_ALLOWED_HOSTS, parsed: `host` allows that host on any port, `host:port` that
 * port only, `*.example.com` any subdomain of example.com. Names compare case-insensitively.
 */
export interface AllowedHosts {
  allows(url: string): boolean
  readonly entries: readonly string[]
}

export function parseAllowedHosts(value: string): AllowedHosts {
  const entries = value
    .split(',')
    .map((entry) => entry.trim().toLowerCase())
    .filter(Boolean)
  return {
    entries,
    allows(url) {
      let parsed: URL
      try {
        parsed = new URL(url)
      } catch {
        return false
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return false
      if (parsed.username || parsed.password) return false
      const hostname = parsed.hostname.toLowerCase()
      const host = parsed.port ? `${hostname}:${parsed.port}` : hostname
      return entries.some((entry) => {
        if (entry.startsWith('*.')) return hostname.endsWith(entry.slice(1))
        return entry === host || entry === hostname
      })
    },
  }
}
