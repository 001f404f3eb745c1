// The Redis side of the bench (issue 10): a redis-server of the bench's own, on a
// free 127.0.0.1 port in the run's temp folder, with the durability of the local
// engine's default (every acknowledged write fsynced before the answer:
// appendonly yes, appendfsync always, no RDB snapshots); and redis-benchmark
// against it, the bare round trip that bounds what the Redis engine can do.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { HOST, freePort } from '../test/support/net.js'
import { VALUE_BYTES, makeValueFn } from './common.js'
import { trackProcess } from './proc.js'

/** The database redis-benchmark works in, so it never touches Simple KV's keys in database 0. */
export const CEILING_DB = 1

/** `<bin> --version` runs: the binary is there. */
export function haveBinary (bin: string): boolean {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 5000 })
  return r.status === 0
}

interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

function exitOf (child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode })
      return
    }
    child.once('close', (code, signal) => { resolve({ code, signal }) })
    child.once('error', () => { resolve({ code: null, signal: null }) })
  })
}

/** `bin args`, under `taskset -c cpuList` when given (taskset execs, so the pid stays the program's). */
function spawnPinned (bin: string, args: string[], cpuList: string | null, stdio: Array<'ignore' | 'pipe' | number>): ChildProcess {
  return cpuList === null
    ? spawn(bin, args, { stdio })
    : spawn('taskset', ['-c', cpuList, bin, ...args], { stdio })
}

/** A client that fails at once instead of queueing or reconnecting. */
function client (port: number, db: number): Redis {
  const c = new Redis({
    host: HOST,
    port,
    db,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2000
  })
  c.on('error', () => {})
  return c
}

export interface RedisInfo {
  version: string
  port: number
  pid: number
  dir: string
  /** What the server says it runs with (CONFIG GET), not what it was asked for. */
  appendonly: string
  appendfsync: string
  save: string
}

export class RedisServer {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  readonly dir: string
  readonly logPath: string
  readonly #exit: Promise<Exit>
  info: RedisInfo | null = null

  private constructor (child: ChildProcess, port: number, dir: string, logPath: string) {
    if (child.pid === undefined) throw new Error('could not start redis-server')
    this.child = child
    this.pid = child.pid
    this.port = port
    this.dir = dir
    this.logPath = logPath
    this.#exit = exitOf(child)
  }

  /** redis://127.0.0.1:<port>/<db> */
  url (db = 0): string {
    return `redis://${HOST}:${this.port}/${db}`
  }

  get running (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  tail (lines = 20): string {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n')
    } catch {
      return '(log unreadable)'
    }
  }

  /** Start it in `<dir>` and wait (up to timeoutMs) until it answers PING. */
  static async start (bin: string, dir: string, cpuList: string | null, timeoutMs: number): Promise<RedisServer> {
    mkdirSync(dir, { recursive: true })
    const port = await freePort()
    const logPath = join(dir, 'redis-server.log')
    const args = [
      '--port', String(port),
      '--bind', HOST,
      '--protected-mode', 'yes',
      '--dir', dir,
      '--appendonly', 'yes',
      '--appendfsync', 'always',
      '--save', '',
      '--daemonize', 'no',
      '--maxmemory-policy', 'noeviction'
    ]
    const fd = openSync(logPath, 'a')
    const child = spawnPinned(bin, args, cpuList, ['ignore', fd, fd])
    closeSync(fd)
    const server = new RedisServer(child, port, dir, logPath)
    trackProcess('redis-server', child, async (ms) => await server.stop(ms))
    try {
      await server.#waitReady(timeoutMs)
    } catch (err) {
      await server.stop(3000)
      throw err
    }
    return server
  }

  async #waitReady (timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last = 'no answer yet'
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`redis-server exited before answering PING\n--- its last lines ---\n${this.tail()}`)
      const c = client(this.port, 0)
      try {
        await c.connect()
        await c.ping()
        const config = Object.fromEntries(pairs(await c.config('GET', 'appendonly', 'appendfsync', 'save') as string[]))
        const version = /redis_version:(\S+)/.exec(await c.info('server'))?.[1] ?? 'unknown'
        this.info = {
          version,
          port: this.port,
          pid: this.pid,
          dir: this.dir,
          appendonly: config.appendonly ?? '?',
          appendfsync: config.appendfsync ?? '?',
          save: config.save ?? '?'
        }
        return
      } catch (err) {
        last = err instanceof Error ? err.message : String(err)
      } finally {
        c.disconnect()
      }
      await sleep(50)
    }
    throw new Error(`redis-server did not answer PING within ${timeoutMs} ms (last: ${last})\n--- its last lines ---\n${this.tail()}`)
  }

  /** SIGTERM (it fsyncs its append-only file and exits), SIGKILL after timeoutMs. */
  async stop (timeoutMs: number): Promise<{ code: number | null, signal: NodeJS.Signals | null, killed: boolean }> {
    if (this.running) this.child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const late = await Promise.race([
      this.#exit.then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(true) }, timeoutMs) })
    ])
    clearTimeout(timer)
    if (late) this.child.kill('SIGKILL')
    return { ...await this.#exit, killed: late }
  }

  /**
   * Write keys 0..n-1 of redis-benchmark's key space (`key:` and 12 digits, what
   * `-r n` draws from) with 100-byte values, so its GETs find a value every time,
   * as the GET record rows do.
   */
  async preloadCeilingKeys (n: number): Promise<void> {
    const c = client(this.port, CEILING_DB)
    try {
      await c.connect()
      const value = makeValueFn()
      for (let start = 0; start < n; start += 1000) {
        const batch = c.pipeline()
        for (let i = start; i < Math.min(n, start + 1000); i++) batch.set(ceilingKey(i), value(i))
        const results = await batch.exec()
        const bad = results?.find(([err]) => err !== null)
        if (bad !== undefined) throw new Error(`preloading redis-benchmark's keys: ${String(bad[0])}`)
      }
      const size = await c.dbsize()
      if (size < n) throw new Error(`preloading redis-benchmark's keys: ${size} of ${n} keys in database ${CEILING_DB}`)
    } finally {
      c.disconnect()
    }
  }
}

/** The key redis-benchmark's `key:__rand_int__` becomes for i. */
export function ceilingKey (i: number): string {
  return 'key:' + String(i).padStart(12, '0')
}

function pairs (flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!])
  return out
}

export interface BenchmarkResult {
  test: 'GET' | 'SET'
  connections: number
  requests: number
  /** Wall time of the process, start to end (connecting included). */
  wallSeconds: number
  rps: number
  avgMs: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  maxMs: number
}

export interface BenchmarkSpec {
  bin: string
  port: number
  test: 'get' | 'set'
  connections: number
  requests: number
  /** Keys drawn from at random (-r). */
  keys: number
  /** Kill it after this long: the run then fails. */
  timeoutMs: number
  cpuList: string | null
}

/**
 * One run of `redis-benchmark -t <test> -n <requests> -c <connections> -d 100 -r <keys>
 * --dbnum 1 --csv` (no pipelining, one thread), parsed from its CSV line.
 */
export async function redisBenchmark (spec: BenchmarkSpec): Promise<BenchmarkResult> {
  const args = [
    '-h', HOST,
    '-p', String(spec.port),
    '--dbnum', String(CEILING_DB),
    '-t', spec.test,
    '-n', String(spec.requests),
    '-c', String(spec.connections),
    '-d', String(VALUE_BYTES),
    '-r', String(spec.keys),
    '-P', '1',
    '--csv'
  ]
  const t0 = process.hrtime.bigint()
  const child = spawnPinned(spec.bin, args, spec.cpuList, ['ignore', 'pipe', 'pipe'])
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { out += s })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { err += s })
  const exit = exitOf(child)
  trackProcess('redis-benchmark', child, async () => {
    child.kill('SIGKILL')
    await exit
  })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, spec.timeoutMs)
  const { code, signal } = await exit
  clearTimeout(timer)
  const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9
  const what = `redis-benchmark ${args.join(' ')}`
  if (timedOut) throw new Error(`${what}: still running after ${spec.timeoutMs} ms, killed`)
  if (code !== 0) throw new Error(`${what}: exited with ${code ?? signal}\n${err.trim()}\n${out.trim()}`)
  const line = out.split('\n').find((l) => l.startsWith(`"${spec.test.toUpperCase()}"`))
  const cells = line?.split(',').map((c) => Number(c.replace(/"/g, '')))
  if (cells === undefined || cells.length < 8 || cells.slice(1).some((n) => !Number.isFinite(n))) {
    throw new Error(`${what}: no CSV line for ${spec.test.toUpperCase()} in its output:\n${out.trim()}\n${err.trim()}`)
  }
  const [, rps, avg, , p50, p95, p99, max] = cells as [number, number, number, number, number, number, number, number]
  return {
    test: spec.test === 'get' ? 'GET' : 'SET',
    connections: spec.connections,
    requests: spec.requests,
    wallSeconds,
    rps,
    avgMs: avg,
    p50Ms: p50,
    p95Ms: p95,
    p99Ms: p99,
    maxMs: max
  }
}
