// A measured Redis outage (issue 10): one Simple KV instance on a real
// redis-server (appendfsync always) under a constant PUT+GET load; Redis is
// stopped in the middle and started again. Prints per-second answer counts,
// the time from Redis being back to the first 200, and checks that every
// acknowledged PUT is readable afterwards. Run with
// `npm run build && node dist/bench/redis-outage.js [flags]`; 127.0.0.1 only,
// every process stopped at the end, the whole run bounded by a watchdog.

import { Agent } from 'node:http'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { PROJECT_KEY, testConfig, writeConfig } from '../test/support/app.js'
import { freePort, HOST, httpRequest } from '../test/support/net.js'
import { startRedis, uniquePrefix, type RedisServer } from '../test/support/redis.js'
import { makeTempDir, type Teardown } from '../test/support/temp.js'
import { installCleanupHandlers, registerTempDir, spawnChild, stopChild, waitForOk } from './proc.js'

const HERE = dirname(fileURLToPath(import.meta.url)) // dist/bench
const REPO = resolve(HERE, '..', '..')

const HELP = `Redis outage run (issue 10)

usage: node dist/bench/redis-outage.js [flags]      (after npm run build)

  --duration <s>      seconds of load in all (default 20)
  --down-at <s>       when Redis is stopped, from the start of the load (default 7)
  --down-for <s>      how long Redis stays down (default 5)
  --connections <n>   concurrent keep-alive request loops (default 8)
  --kill              SIGKILL Redis instead of SIGTERM
  --help
`

/** Bound on one request: an answer slower than this counts as an error. */
const REQUEST_TIMEOUT_MS = 10_000

interface Options {
  durationS: number
  downAtS: number
  downForS: number
  connections: number
  kill: boolean
}

function parseOptions (): Options {
  const { values: v } = parseArgs({
    options: {
      duration: { type: 'string' },
      'down-at': { type: 'string' },
      'down-for': { type: 'string' },
      connections: { type: 'string' },
      kill: { type: 'boolean' },
      help: { type: 'boolean' }
    }
  })
  if (v.help === true) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const num = (s: string | undefined, dflt: number, name: string): number => {
    const n = s === undefined ? dflt : Number(s)
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`)
    return n
  }
  const opts = {
    durationS: num(v.duration, 20, 'duration'),
    downAtS: num(v['down-at'], 7, 'down-at'),
    downForS: num(v['down-for'], 5, 'down-for'),
    connections: Math.round(num(v.connections, 8, 'connections')),
    kill: v.kill === true
  }
  if (opts.downAtS + opts.downForS >= opts.durationS) throw new Error('--down-at + --down-for must end before --duration')
  return opts
}

interface Answer {
  status: number
  retryAfter: string | undefined
  body: string
}

async function send (agent: Agent, port: number, method: string, path: string, body?: string): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${PROJECT_KEY}`, ...(body === undefined ? {} : { 'content-type': 'text/plain' }) }
  const reply = await httpRequest(port, method, path, headers, body, { agent, timeoutMs: REQUEST_TIMEOUT_MS })
  return { status: reply.status, retryAfter: reply.headers['retry-after'] as string | undefined, body: reply.body }
}

/** Answers counted in one second of the run. */
interface Second {
  ok: number
  unavailable: number
  other: number
  errors: number
}

const path = (key: string): string => `/api/v1/projects/p1/store/${encodeURIComponent(key)}`

async function main (): Promise<number> {
  const opts = parseOptions()
  installCleanupHandlers()
  // Redis is stopped by the bench's own exit tasks too (and by the harness's exit handler).
  const cleanup: Array<() => unknown> = []
  const owner: Teardown = { teardown: fn => { cleanup.push(fn) } }
  const watchdog = setTimeout(() => {
    process.stderr.write('[redis-outage] watchdog: the run took too long, stopping everything\n')
    process.exit(2)
  }, (opts.durationS + 600) * 1000)
  watchdog.unref()

  const redis: RedisServer = await startRedis({ t: owner, appendfsync: 'always' })
  const dir = makeTempDir('simple-kv-outage-')
  registerTempDir(dir)
  const port = await freePort()
  const file = writeConfig(dir, testConfig(c => {
    c.server_host = HOST
    c.server_port = port
    c.system!.storage = {
      persistent_file_path: join(dir, 'storage_data'),
      engine: 'redis',
      redis: { url: `${redis.url}/0`, key_prefix: uniquePrefix(), cluster: false }
    }
  }))
  const server = spawnChild('simple-kv', [join(REPO, 'dist', 'server.js'), '--config', file], { cwd: REPO, logPath: join(dir, 'server.log') })
  try {
    await waitForOk(server, port, '/health', { timeoutMs: 240_000 })
    process.stdout.write(`redis-server ${redis.port} (appendfsync always), simple-kv ${port}, ${opts.connections} keep-alive loops of PUT then GET, ${opts.durationS} s; Redis ${opts.kill ? 'SIGKILLed' : 'stopped (SIGTERM)'} at ${opts.downAtS} s for ${opts.downForS} s\n`)

    const seconds: Second[] = Array.from({ length: Math.ceil(opts.durationS) + 1 }, () => ({ ok: 0, unavailable: 0, other: 0, errors: 0 }))
    const acked = new Map<string, string>()
    const others: string[] = []
    let missingRetryAfter = 0
    let redisBackAt: number | null = null
    let firstOkAfterBack: number | null = null
    let firstPutOkAfterBack: number | null = null
    const t0 = performance.now()
    const at = (): number => (performance.now() - t0) / 1000
    const end = opts.durationS
    const agent = new Agent({ keepAlive: true, maxSockets: opts.connections })

    const count = (a: Answer | null, isPut: boolean): void => {
      const now = at()
      const slot = seconds[Math.min(seconds.length - 1, Math.floor(now))]
      if (a === null) {
        slot.errors++
        return
      }
      if (a.status === 200) {
        slot.ok++
        if (redisBackAt !== null && now >= redisBackAt) {
          firstOkAfterBack ??= now
          if (isPut) firstPutOkAfterBack ??= now
        }
      } else if (a.status === 503) {
        slot.unavailable++
        if (a.retryAfter === undefined) missingRetryAfter++
      } else {
        slot.other++
        if (others.length < 5) others.push(`${a.status} ${a.body.slice(0, 160)}`)
      }
    }

    const loops = Array.from({ length: opts.connections }, async (_, c) => {
      let lastAcked: string | null = null
      for (let n = 0; at() < end; n++) {
        const key = `o-${c}-${n}`
        const value = `${key} ${Math.random().toString(36).slice(2)}`
        let answer: Answer | null = null
        try {
          answer = await send(agent, port, 'PUT', path(key), value)
        } catch {
          answer = null
        }
        count(answer, true)
        if (answer?.status === 200) {
          acked.set(key, value)
          lastAcked = key
        }
        if (lastAcked === null || at() >= end) continue
        let read: Answer | null = null
        try {
          read = await send(agent, port, 'GET', path(lastAcked))
        } catch {
          read = null
        }
        count(read, false)
      }
    })

    const outage = (async () => {
      await sleep(opts.downAtS * 1000)
      const downFrom = at()
      if (opts.kill) await redis.kill()
      else await redis.stop()
      const downAt = at()
      await sleep(Math.max(0, opts.downForS * 1000 - (at() - downFrom) * 1000))
      const startFrom = at()
      await redis.start()
      redisBackAt = at()
      return { downFrom, downAt, startFrom, backAt: redisBackAt }
    })()

    const [events] = await Promise.all([outage, ...loops])
    agent.destroy()
    const duration = at()

    process.stdout.write('\n  second  200    503    other  conn-errors  redis\n')
    for (let s = 0; s < seconds.length; s++) {
      const row = seconds[s]
      if (s >= Math.ceil(duration)) break
      let state = 'partly down'
      if (s + 1 <= events.downFrom || s >= events.backAt) state = 'up'
      else if (s >= events.downAt && s + 1 <= events.backAt) state = 'down'
      process.stdout.write(`  ${String(s).padStart(6)}  ${String(row.ok).padEnd(6)} ${String(row.unavailable).padEnd(6)} ${String(row.other).padEnd(6)} ${String(row.errors).padEnd(12)} ${state}\n`)
    }
    const total = seconds.reduce((a, s) => ({ ok: a.ok + s.ok, unavailable: a.unavailable + s.unavailable, other: a.other + s.other, errors: a.errors + s.errors }), { ok: 0, unavailable: 0, other: 0, errors: 0 })
    const fmt = (s: number): string => `${s.toFixed(3)} s`
    process.stdout.write(`\n  totals: ${total.ok} x 200, ${total.unavailable} x 503, ${total.other} other, ${total.errors} connection errors or timeouts\n`)
    process.stdout.write(`  redis ${opts.kill ? 'SIGKILL' : 'SIGTERM'} sent at ${fmt(events.downFrom)}, process gone at ${fmt(events.downAt)}; start at ${fmt(events.startFrom)}, answering PING (AOF replayed) at ${fmt(events.backAt)}\n`)
    process.stdout.write(`  first 200 after Redis was back: ${firstOkAfterBack === null ? 'none' : `+${((firstOkAfterBack - events.backAt) * 1000).toFixed(0)} ms`}; first PUT 200: ${firstPutOkAfterBack === null ? 'none' : `+${((firstPutOkAfterBack - events.backAt) * 1000).toFixed(0)} ms`}\n`)
    process.stdout.write(`  503 answers without Retry-After: ${missingRetryAfter}\n`)
    if (others.length > 0) process.stdout.write(`  other answers (first ${others.length}):\n${others.map(o => `    ${o}\n`).join('')}`)

    // Every acknowledged PUT, read back on fresh connections after the load.
    const lost: string[] = []
    const keys = [...acked.keys()]
    const reader = new Agent({ keepAlive: true, maxSockets: 4 })
    await Promise.all(Array.from({ length: 4 }, async (_, r) => {
      for (let i = r; i < keys.length; i += 4) {
        const key = keys[i]
        const answer = await send(reader, port, 'GET', path(key))
        let value: unknown
        try {
          value = (JSON.parse(answer.body) as { data?: { value?: unknown } }).data?.value
        } catch {
          value = undefined
        }
        if (answer.status !== 200 || value !== acked.get(key)) lost.push(`${key}: ${answer.status}`)
      }
    }))
    reader.destroy()
    process.stdout.write(`  acknowledged PUTs: ${acked.size}; read back after the run: ${acked.size - lost.length} present with their value, ${lost.length} missing or different${lost.length > 0 ? ` (${lost.slice(0, 5).join(', ')})` : ''}\n`)
    return lost.length === 0 && total.other === 0 && missingRetryAfter === 0 ? 0 : 1
  } finally {
    await stopChild(server, 10_000)
    for (const task of cleanup.splice(0).reverse()) await task()
    clearTimeout(watchdog)
  }
}

main().then(code => { process.exitCode = code }, (err: unknown) => {
  process.stderr.write(`[redis-outage] ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 1
})
