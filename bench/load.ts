// Thin wrapper over autocannon's programmatic API. Latency percentiles come from
// our own microsecond histogram (autocannon's own histogram has 1 ms resolution,
// too coarse for a loopback p50), and status codes are counted per code so
// non-2xx answers are always visible.

import autocannon from 'autocannon'
import { HOST } from '../test/support/net.js'

export type AcRequest = autocannon.Request

/** Latency histogram: 1 µs buckets up to 100 ms, then 100 µs buckets up to 10 s. */
export class LatencyHistogram {
  private static readonly FINE = 100_000
  private static readonly COARSE = 99_000
  private readonly counts = new Uint32Array(LatencyHistogram.FINE + LatencyHistogram.COARSE + 1)
  count = 0
  sumMs = 0
  maxMs = 0

  record (ms: number): void {
    const us = Math.max(0, Math.round(ms * 1000))
    const idx =
      us < LatencyHistogram.FINE
        ? us
        : Math.min(LatencyHistogram.FINE + Math.floor((us - LatencyHistogram.FINE) / 100), this.counts.length - 1)
    this.counts[idx]!++
    this.count++
    this.sumMs += ms
    if (ms > this.maxMs) this.maxMs = ms
  }

  /** Value (ms) at quantile q in [0,1]. */
  quantile (q: number): number {
    if (this.count === 0) return NaN
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) {
        const us = i < LatencyHistogram.FINE ? i : LatencyHistogram.FINE + (i - LatencyHistogram.FINE) * 100
        return us / 1000
      }
    }
    return this.maxMs
  }
}

export interface LatencySummary {
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

export interface RunStats {
  connections: number
  pipelining: number
  seconds: number
  responses: number
  ok: number
  non2xx: number
  statusCounts: Record<string, number>
  /** autocannon connection errors (timeouts included). */
  errors: number
  timeouts: number
  /** 2xx answers per second. */
  okPerSec: number
  /** All answers per second, whatever their status. */
  respPerSec: number
  latencyMs: LatencySummary
  /** True when the harness watchdog had to stop the run. */
  watchdogStopped: boolean
}

export interface RunSpec {
  port: number
  connections: number
  /** Seconds; ignored when `amount` is set. */
  duration?: number
  /** Exact number of requests to send, then stop. */
  amount?: number
  pipelining?: number
  method?: AcRequest['method']
  path?: string
  headers?: Record<string, string>
  body?: string
  /** Default request list (every connection starts from it). */
  requests?: AcRequest[]
  /** Per-connection request list; pre-built once, then cycled without re-encoding. */
  poolFor?: (connectionIndex: number) => AcRequest[]
  /** Hard stop after this many ms whatever happens. */
  watchdogMs: number
  /** Called every 10 s with the answers so far (long loads). */
  onProgress?: (responses: number, ok: number) => void
  /** Called with every answer's latency and status (for windows the caller defines). */
  onSample?: (ms: number, status: number) => void
  /** Stops the run early (it then reports what it measured so far). */
  signal?: AbortSignal
}

export function runLoad (spec: RunSpec): Promise<RunStats> {
  const hist = new LatencyHistogram()
  const statusCounts: Record<string, number> = {}
  let ok = 0
  let responses = 0
  let connIndex = 0
  const poolFor = spec.poolFor
  const onSample = spec.onSample

  const opts: autocannon.Options = {
    url: `http://${HOST}:${spec.port}${spec.path ?? '/'}`,
    connections: spec.connections,
    pipelining: spec.pipelining ?? 1,
    method: spec.method ?? 'GET',
    headers: spec.headers ?? {},
    timeout: 10,
    ...(spec.body !== undefined ? { body: spec.body } : {}),
    ...(spec.requests !== undefined ? { requests: spec.requests } : {}),
    ...(spec.amount !== undefined ? { amount: spec.amount } : { duration: spec.duration ?? 5 }),
    ...(poolFor !== undefined
      ? {
          setupClient: (client: autocannon.Client) => {
            client.setRequests(poolFor(connIndex++))
          }
        }
      : {})
  }

  return new Promise<RunStats>((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    let watchdogStopped = false
    // The run stops itself after its duration; this stops one that hangs.
    const watchdog = setTimeout(() => {
      watchdogStopped = true
      instance.stop()
    }, spec.watchdogMs)
    const onAbort = (): void => { instance.stop() }
    spec.signal?.addEventListener('abort', onAbort, { once: true })
    const onProgress = spec.onProgress
    const progress = onProgress === undefined ? undefined : setInterval(() => onProgress(responses, ok), 10_000)
    const instance = autocannon(opts, (err: unknown, result: autocannon.Result) => {
      clearTimeout(watchdog)
      spec.signal?.removeEventListener('abort', onAbort)
      if (progress !== undefined) clearInterval(progress)
      if (err) {
        reject(err instanceof Error ? err : new Error(String(err)))
        return
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      resolve({
        connections: spec.connections,
        pipelining: spec.pipelining ?? 1,
        seconds,
        responses,
        ok,
        non2xx: responses - ok,
        statusCounts,
        errors: result.errors,
        timeouts: result.timeouts,
        okPerSec: ok / seconds,
        respPerSec: responses / seconds,
        latencyMs: {
          mean: hist.count === 0 ? NaN : hist.sumMs / hist.count,
          p50: hist.quantile(0.5),
          p90: hist.quantile(0.9),
          p99: hist.quantile(0.99),
          p999: hist.quantile(0.999),
          max: hist.maxMs
        },
        watchdogStopped
      })
    })
    instance.on('response', (_client: autocannon.Client, statusCode: number, _bytes: number, ms: number) => {
      responses++
      if (statusCode >= 200 && statusCode < 300) ok++
      const k = String(statusCode)
      statusCounts[k] = (statusCounts[k] ?? 0) + 1
      hist.record(ms)
      onSample?.(ms, statusCode)
    })
    if (spec.signal?.aborted === true) instance.stop()
  })
}

/** "404:12 500:3" for every non-2xx status seen. */
export function describeNon2xx (stats: RunStats): string {
  return Object.entries(stats.statusCounts)
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, n]) => `${code}:${n}`)
    .join(' ')
}
