/** Thrown when a limiter's queue is full: the caller should answer "try again shortly". */
export class QueueFull extends Error {
  constructor() {
    super('queue full')
  }
}

export interface Limiter {
  run<T>(work: () => Promise<T>): Promise<T>
  readonly active: number
  readonly queued: number
}

/**
 * Runs at most `concurrency` tasks at once and queues at most `maxQueue` more, first come
 * first served; beyond that `run` rejects at once with `QueueFull` instead of letting the
 * backlog (and every waiting client's latency) grow without bound.
 */
export function createLimiter({
  concurrency,
  maxQueue,
}: {
  concurrency: number
  maxQueue: number
}): Limiter {
  let active = 0
  const waiting: (() => void)[] = []

  const release = () => {
    active--
    const next = waiting.shift()
    if (next) {
      active++
      next()
    }
  }

  return {
    async run(work) {
      if (active >= concurrency) {
        if (waiting.length >= maxQueue) throw new QueueFull()
        await new Promise<void>((resolve) => waiting.push(resolve))
      } else {
        active++
      }
      try {
        return await work()
      } finally {
        release()
      }
    },
    get active() {
      return active
    },
    get queued() {
      return waiting.length
    },
  }
}
