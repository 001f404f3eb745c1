/**
 * Counts failed authentications per client address in a fixed window. Once an
 * address reaches `maxFailures`, it is refused until its window ends. Memory is
 * bounded: expired entries are swept, and past `maxClients` the oldest go first.
 */
export class FailureLimiter {
  readonly maxFailures: number
  readonly windowMs: number
  readonly maxClients: number
  readonly #clients = new Map<string, { failures: number, resetAt: number }>()
  readonly #now: () => number

  constructor (opts: { maxFailures: number, windowSeconds: number, maxClients?: number, now?: () => number }) {
    this.maxFailures = opts.maxFailures
    this.windowMs = opts.windowSeconds * 1000
    this.maxClients = opts.maxClients ?? 100_000
    this.#now = opts.now ?? Date.now
  }

  /** Seconds until `client` may try again, or 0 when it may try now. */
  retryAfter (client: string): number {
    const entry = this.#clients.get(client)
    if (entry === undefined) return 0
    const now = this.#now()
    if (entry.resetAt <= now) {
      this.#clients.delete(client)
      return 0
    }
    return entry.failures >= this.maxFailures ? Math.ceil((entry.resetAt - now) / 1000) : 0
  }

  fail (client: string): void {
    const now = this.#now()
    const entry = this.#clients.get(client)
    if (entry !== undefined && entry.resetAt > now) {
      entry.failures++
      return
    }
    if (entry !== undefined) this.#clients.delete(client)
    if (this.#clients.size >= this.maxClients) this.#sweep(now)
    this.#clients.set(client, { failures: 1, resetAt: now + this.windowMs })
  }

  get size (): number {
    return this.#clients.size
  }

  #sweep (now: number): void {
    for (const [client, entry] of this.#clients) {
      if (entry.resetAt <= now) this.#clients.delete(client)
    }
    // Still full: drop the oldest entries (Map keeps insertion order).
    for (const client of this.#clients.keys()) {
      if (this.#clients.size < this.maxClients) break
      this.#clients.delete(client)
    }
  }
}
