import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'

/**
 * Adds each key's increments to its fixed-window counter in Redis and answers the cluster-wide
 * count and the window's remaining milliseconds. The first increment of a window starts it, as
 * @fastify/rate-limit's own Redis store does, so both count the same keys the same way.
 */
const ADD_AND_READ = `
local answers = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCRBY', key, ARGV[2 * i - 1])
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    ttl = tonumber(ARGV[2 * i])
    redis.call('PEXPIRE', key, ttl)
  end
  answers[i] = {count, ttl}
end
return answers
`

/** ioredis' error for a command unanswered within its `commandTimeout`. */
const COMMAND_TIMED_OUT = 'Command timed out'

/** Keys per script call: one call must not hold Redis (single-threaded) for long. */
const KEYS_PER_CALL = 500

interface Counter {
  windowMs: number
  /** When this window ends, as Redis reported it at the last reconciliation (or first use). */
  endsAt: number
  /** The cluster-wide count at the last reconciliation, this instance's reconciled part included. */
  reconciled: number
  /** Counted here, on their way to Redis. */
  sending: number
  /** Counted here since the last reconciliation began. */
  pending: number
}

type IncrCallback = (error: Error | null, result?: { current: number; ttl: number }) => void

/** What @fastify/rate-limit asks of a store. */
export interface RateLimitStore {
  incr(key: string, callback: IncrCallback, timeWindow: number): void
  child(options: { skipOnError?: boolean }): RateLimitStore
}

export interface RateCountersSettings {
  redis: Redis
  /** Prepended to every key in Redis. */
  namespace: string
  /** How often the counts of this instance go to Redis and the cluster's come back. */
  syncIntervalMs: number
  log: FastifyBaseLogger
}

/**
 * Rate-limit counters that answer from memory and are reconciled with Redis in the background.
 *
 * A request is decided from this instance's view of its key: the cluster-wide count at the
 * last reconciliation plus what this instance has counted since. Every `syncIntervalMs` one
 * script call per 500 keys adds this instance's new counts to Redis and brings back each
 * key's cluster-wide count and window. Nothing on the request path waits on Redis.
 *
 * The price is staleness, bounded by one interval: an instance does not see what the others
 * counted since its last reconciliation, so across N instances a key is admitted at most
 * `max` + what the other N-1 instances admitted for it within one interval (plus a Redis
 * round trip), and a restarted instance admits at most one interval's worth before it learns
 * the key's count. When Redis is away each instance keeps limiting on its own counts (the
 * API stays up, each instance enforcing the limit alone) and sends them once Redis is back,
 * except a batch whose command timed out (Redis may have counted it already).
 *
 * Home-made because @fastify/rate-limit's stores are either local or one round trip per
 * request, and no well-kept store batches a window counter this way; this class is such a
 * store (`incr`/`child`), so the plugin still computes the headers and answers the 429.
 */
export class RateCounters implements RateLimitStore {
  readonly #counters = new Map<string, Counter>()
  /** The counters with counts to send: a reconciliation costs the keys in use, not all. */
  readonly #unsent = new Map<string, Counter>()
  #nextSweep = 0
  readonly #settings: RateCountersSettings
  readonly #timer: NodeJS.Timeout
  #syncing: Promise<void> | undefined

  constructor(settings: RateCountersSettings) {
    this.#settings = settings
    settings.redis.defineCommand('orderflowRateAdd', { lua: ADD_AND_READ })
    this.#timer = setInterval(() => void this.sync(), settings.syncIntervalMs)
    // The counts are worth a reconciliation, never a process kept alive.
    this.#timer.unref()
  }

  /** The @fastify/rate-limit store method: counts one request and answers at once. */
  incr(key: string, callback: IncrCallback, timeWindow: number): void {
    const now = Date.now()
    let counter = this.#counters.get(key)
    if (!counter || counter.endsAt <= now) {
      // A new window: whatever the old one had not yet sent belongs to a window Redis has
      // let expire too, so it is dropped rather than charged to the new one.
      counter = {
        windowMs: timeWindow,
        endsAt: now + timeWindow,
        reconciled: 0,
        sending: 0,
        pending: 0,
      }
      this.#counters.set(key, counter)
    }
    if (counter.pending++ === 0) this.#unsent.set(key, counter)
    callback(null, {
      current: counter.reconciled + counter.sending + counter.pending,
      ttl: counter.endsAt - now,
    })
  }

  /**
   * Every limit shares these counters (their keys carry their own prefixes), except one that
   * fails closed (`skipOnError: false`, the login limits): failing closed means refusing when
   * Redis cannot answer, so such a limit is counted in Redis on the request itself, exactly.
   */
  child(options: { skipOnError?: boolean }): RateLimitStore {
    return options.skipOnError === false ? this.#exact : this
  }

  readonly #exact: RateLimitStore = {
    incr: (key, callback, timeWindow) => {
      this.#add([this.#settings.namespace + key], [1, timeWindow]).then(
        ([answer]) => callback(null, { current: answer?.[0] ?? 1, ttl: answer?.[1] ?? timeWindow }),
        (error: Error) => callback(error),
      )
    },
    child: () => this.#exact,
  }

  /**
   * Sends the counts since the last reconciliation and learns the cluster's. At most one runs
   * at a time; a frozen Redis costs one command timeout per interval, never a request.
   */
  sync(): Promise<void> {
    this.#syncing ??= this.#reconcile().finally(() => {
      this.#syncing = undefined
    })
    return this.#syncing
  }

  /** Stops reconciling after sending what is left, so a restart loses no counts. */
  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.#syncing
    await this.sync()
  }

  async #reconcile(): Promise<void> {
    const now = Date.now()
    const batch: [string, Counter, number][] = []
    for (const [key, counter] of this.#unsent) {
      // A window Redis has let expire as well: its counts would only be charged to the next.
      if (counter.endsAt <= now) continue
      batch.push([key, counter, counter.pending])
      counter.sending += counter.pending
      counter.pending = 0
    }
    this.#unsent.clear()
    if (now >= this.#nextSweep) this.#sweep(now)
    for (let start = 0; start < batch.length; start += KEYS_PER_CALL) {
      await this.#send(batch.slice(start, start + KEYS_PER_CALL))
    }
  }

  /** Forgets the counters of ended windows, once a second: memory holds the keys in use. */
  #sweep(now: number) {
    this.#nextSweep = now + 1000
    for (const [key, counter] of this.#counters) {
      if (counter.endsAt <= now && counter.sending === 0) this.#counters.delete(key)
    }
  }

  #add(keys: string[], countsAndWindows: number[]): Promise<[number, number][]> {
    const redis = this.#settings.redis as Redis & {
      orderflowRateAdd(...args: (string | number)[]): Promise<[number, number][]>
    }
    return redis.orderflowRateAdd(keys.length, ...keys, ...countsAndWindows)
  }

  async #send(batch: [string, Counter, number][]): Promise<void> {
    const { namespace, log } = this.#settings
    const keys = batch.map(([key]) => namespace + key)
    const args = batch.flatMap(([, counter, count]) => [count, counter.windowMs])
    let answers: [number, number][]
    try {
      answers = await this.#add(keys, args)
    } catch (error) {
      // A command that timed out may still run once Redis wakes up: sending its counts again
      // could count them twice and refuse callers who kept to their limit, so they are taken
      // as counted (here; Redis misses them if it never ran the command, which only the few
      // intervals before the breaker opens can cost). Anything else never reached Redis
      // (refused connection, open breaker) and is sent next time.
      const outcomeUnknown = error instanceof Error && error.message === COMMAND_TIMED_OUT
      log.debug({ err: error }, 'rate-limit counts not reconciled with Redis')
      for (const [key, counter, count] of batch) {
        counter.sending -= count
        if (outcomeUnknown) {
          counter.reconciled += count
        } else if (this.#counters.get(key) === counter) {
          this.#unsent.set(key, counter)
          counter.pending += count
        }
      }
      return
    }
    const now = Date.now()
    batch.forEach(([key, counter, count], i) => {
      counter.sending -= count
      const [total, ttl] = answers[i] ?? [0, 0]
      // A counter replaced since (its window ended here) keeps its own reckoning.
      if (this.#counters.get(key) !== counter) return
      counter.reconciled = total
      counter.endsAt = now + ttl
    })
  }
}
