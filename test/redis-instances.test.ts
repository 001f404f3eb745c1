import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { KvConfig } from '../lib/config.js'
import { PROJECT_KEY, SYSTEM_KEY, testConfig, writeConfig } from './support/app.js'
import { HOST, httpRequest } from './support/net.js'
import { runCli, ServerProcess } from './support/process.js'
import { startRedis, uniquePrefix, type RedisServer } from './support/redis.js'
import { tempDir } from './support/temp.js'

/*
 * Issue 10 at the process level: real Simple KV server processes on a real
 * redis-server. Several instances on one dataset see one another's writes and
 * project changes at the next request; an instance SIGKILLed while writing
 * loses no acknowledged write; Redis going away turns requests into 503s with
 * Retry-After until it is back, without the process going down; a Redis that
 * may evict keys is refused at start.
 */

// Each test starts several server processes, each seconds long on a loaded machine.
t.setTimeout(900_000)

/** Bound on a single request: generous, the machine can be ten times slower than idle. */
const REQUEST_TIMEOUT_MS = 30_000
/** Bound on waiting for something that should happen by itself (a reconnect, an acknowledged write count). */
const WAIT_BOUND_MS = 180_000

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any
}

/** One request on a fresh connection (no pooled socket outlives a killed server), its body parsed when it is JSON. */
async function call (port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  const reply = await httpRequest(port, method, path, headers, body, { timeoutMs: REQUEST_TIMEOUT_MS })
  let json: unknown
  try {
    json = JSON.parse(reply.body)
  } catch {
    json = undefined
  }
  return { ...reply, json }
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` })
const sys = bearer(SYSTEM_KEY)
const proj = bearer(PROJECT_KEY)
const text = { 'content-type': 'text/plain' }
const json = { 'content-type': 'application/json' }
const storePath = (project: string, key: string): string => `/api/v1/projects/${project}/store/${encodeURIComponent(key)}`

/** One Simple KV process and the port it listens on. */
interface Instance {
  server: ServerProcess
  port: number
}

/** The test config (system key, project p1) on the Redis engine, listening on a port of the system's choosing. */
function redisConfig (redis: RedisServer, prefix: string, dir: string, more: (c: KvConfig) => void = () => {}): KvConfig {
  return testConfig(c => {
    c.server_host = HOST
    c.server_port = 0
    c.system!.storage = {
      persistent_file_path: join(dir, 'storage_data'),
      engine: 'redis',
      redis: { url: `${redis.url}/0`, key_prefix: prefix, cluster: false }
    }
    more(c)
  })
}

/** A server process on `config`, in a folder of its own; stopped when `t` ends. */
async function startInstance (t: Test, config: (dir: string) => KvConfig, env: NodeJS.ProcessEnv = {}): Promise<Instance> {
  const dir = tempDir(t, 'simple-kv-instance-')
  const file = writeConfig(dir, config(dir))
  const server = await ServerProcess.start(t, ['--config', file], { env, timeoutMs: WAIT_BOUND_MS })
  return { server, port: Number(new URL(server.url).port) }
}

/** The JSON log records the process wrote on stdout (the banner's lines are skipped). */
function logRecords (stdout: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = []
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      out.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      // a line cut at the end of the output so far
    }
  }
  return out
}

/** Wait (bounded) until the process has logged a record that `match` accepts. */
async function waitForLog (server: ServerProcess, match: (r: Record<string, unknown>) => boolean): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + WAIT_BOUND_MS
  for (;;) {
    const found = logRecords(server.stdout).find(match)
    if (found !== undefined || Date.now() > deadline || !server.running) return found
    await sleep(50)
  }
}

async function put (port: number, project: string, key: string, value: string, headers: Record<string, string> = proj): Promise<Reply> {
  return await call(port, 'PUT', storePath(project, key), { ...headers, ...text }, value)
}

async function get (port: number, project: string, key: string, headers: Record<string, string> = proj): Promise<Reply> {
  return await call(port, 'GET', storePath(project, key), headers)
}

/**
 * Concurrent write loops: each PUTs distinct keys `<tag>-<worker>-<n>` until
 * stopped, or until a request fails at the connection level when `endOnError`.
 * `acked` gets every key whose PUT answered 200, with its value.
 */
class WriteLoop {
  readonly acked = new Map<string, string>()
  readonly statuses = new Map<number, number>()
  connectionErrors = 0
  #stop = false
  readonly #done: Promise<void[]>

  constructor (port: number, tag: string, workers: number, endOnError: boolean) {
    this.#done = Promise.all(Array.from({ length: workers }, async (_, w) => {
      for (let n = 0; !this.#stop; n++) {
        const key = `${tag}-${w}-${n}`
        const value = `value of ${key} ${Math.random()}`
        try {
          const res = await put(port, 'p1', key, value)
          this.statuses.set(res.status, (this.statuses.get(res.status) ?? 0) + 1)
          if (res.status === 200) this.acked.set(key, value)
          // A refused write (503 while Redis is away) is retried a little later, on a new key.
          else await sleep(20)
        } catch {
          this.connectionErrors++
          if (endOnError) return
          await sleep(20)
        }
      }
    }))
  }

  /** Resolves once `n` writes were acknowledged (false if that did not happen within the bound). */
  async acknowledged (n: number): Promise<boolean> {
    const deadline = Date.now() + WAIT_BOUND_MS
    while (this.acked.size < n && Date.now() < deadline) await sleep(10)
    return this.acked.size >= n
  }

  async stop (): Promise<void> {
    this.#stop = true
    await this.#done
  }

  /** Every loop has ended by itself (each hit a connection error). */
  async ended (): Promise<void> {
    await this.#done
  }
}

/** Every acknowledged key read back through `port`: the ones missing or changed (none expected). */
async function lostWrites (port: number, acked: Map<string, string>): Promise<string[]> {
  const lost: string[] = []
  for (const [key, value] of acked) {
    const res = await get(port, 'p1', key)
    if (res.status !== 200 || res.json?.data?.value !== value) lost.push(`${key}: ${res.status} ${res.body.slice(0, 120)}`)
  }
  return lost
}

t.test('several instances on one Redis serve one dataset', async t => {
  const redis = await startRedis({ t, appendfsync: 'always' })
  const prefix = uniquePrefix()
  const a = await startInstance(t, dir => redisConfig(redis, prefix, dir))
  // B lists p1 too, with a key of its own: Redis was seeded by A, so B's list must be ignored.
  const otherKey = 'b-config-only-key-0123456789abcdefghijklmnop'
  const b = await startInstance(t, dir => redisConfig(redis, prefix, dir, c => {
    c.projects![0].authentication = { enabled: true, save_api_key_to_config: true, api_key: otherKey }
  }))

  await t.test('B ignores the projects of its config.json, with a warning', async t => {
    const warning = await waitForLog(b.server, r => r.level === 40 && typeof r.msg === 'string' && r.msg.includes('config.json lists 1 project(s) (p1)'))
    t.ok(warning, 'B logs a warning naming p1')
    t.match(warning?.msg, /ignored/)
    t.notOk(logRecords(a.server.stdout).some(r => typeof r.msg === 'string' && r.msg.includes('config.json lists')), 'A, which seeded Redis, does not warn')
    t.equal((await get(b.port, 'p1', 'nothing', bearer(otherKey))).status, 401, 'the key in B\'s config.json is not p1\'s key')
    t.equal((await get(b.port, 'p1', 'nothing')).status, 404, 'the key seeded from A\'s config.json works on B')
  })

  await t.test('a write on A is read on B: same value, same ETag', async t => {
    const written = await put(a.port, 'p1', 'shared', 'written on A')
    t.equal(written.status, 200)
    const tag = written.headers.etag
    t.match(tag, /^"[^"]+"$/)
    const read = await get(b.port, 'p1', 'shared')
    t.equal(read.status, 200)
    t.equal(read.json.data.value, 'written on A')
    t.equal(read.headers.etag, tag, 'B answers with the ETag A gave')
    const overwritten = await put(b.port, 'p1', 'shared', 'then on B')
    t.equal(overwritten.status, 200)
    const back = await get(a.port, 'p1', 'shared')
    t.equal(back.json.data.value, 'then on B', 'and back the other way')
    t.equal(back.headers.etag, overwritten.headers.etag)
  })

  let p2Key = ''
  await t.test('a project created on A is used on B with the key A returned', async t => {
    const created = await call(a.port, 'POST', '/api/v1/projects', { ...sys, ...json }, JSON.stringify({ id: 'p2' }))
    t.equal(created.status, 201, created.body)
    p2Key = created.json.data.new_api_key
    t.type(p2Key, 'string')
    const details = await call(b.port, 'GET', '/api/v1/projects/p2', bearer(p2Key))
    t.equal(details.status, 200, 'B knows the project and its key')
    t.equal((await put(b.port, 'p2', 'x', 'on B', bearer(p2Key))).status, 200, 'B takes the key A returned')
    t.equal((await get(b.port, 'p2', 'x', proj)).status, 401, 'and not another project\'s key')
    t.equal((await get(a.port, 'p2', 'x', bearer(p2Key))).json.data.value, 'on B')
    const again = await call(b.port, 'POST', '/api/v1/projects', { ...sys, ...json }, JSON.stringify({ id: 'p2' }))
    t.equal(again.status, 400, 'B refuses to create it a second time')
    t.match(again.json?.message, /already exists/)
  })

  await t.test('a key regenerated on A is refused on B right after A answered', async t => {
    // B verifies the old key, and keeps it as verified, before the key changes.
    for (let i = 0; i < 3; i++) t.equal((await get(b.port, 'p2', 'x', bearer(p2Key))).status, 200, `B served request ${i + 1} with the old key`)
    const regenerated = await call(a.port, 'POST', '/api/v1/projects/p2/config/regenerate-api-key', sys)
    t.equal(regenerated.status, 200, regenerated.body)
    const stale = await get(b.port, 'p2', 'x', bearer(p2Key))
    t.equal(stale.status, 401, 'the old key is refused on B at once')
    t.equal(stale.json?.status_code, 401, 'in the envelope')
    const fresh = regenerated.json.data.new_api_key as string
    t.not(fresh, p2Key)
    t.equal((await get(b.port, 'p2', 'x', bearer(fresh))).status, 200, 'the new key works on B')
    t.equal((await get(a.port, 'p2', 'x', bearer(p2Key))).status, 401, 'and the old one is refused on A too')
    p2Key = fresh
  })

  await t.test('a project deleted on A is 404 on B at once', async t => {
    t.equal((await get(b.port, 'p2', 'x', bearer(p2Key))).status, 200, 'B served it just before')
    const deleted = await call(a.port, 'DELETE', '/api/v1/projects/p2', sys)
    t.equal(deleted.status, 200, deleted.body)
    const gone = await get(b.port, 'p2', 'x', bearer(p2Key))
    t.equal(gone.status, 404, gone.body)
    t.equal(gone.json?.status_code, 404)
    t.equal((await call(b.port, 'GET', '/api/v1/projects/p2', bearer(p2Key))).status, 404, 'its settings are gone on B')
    t.equal((await put(b.port, 'p2', 'x', 'again', bearer(p2Key))).status, 404, 'B does not write into it')
    t.equal((await get(b.port, 'p1', 'shared')).status, 200, 'p1 is untouched')
  })

  await t.test('a project deleted on A and created again on B: a new key and an empty store on both', async t => {
    const created = await call(b.port, 'POST', '/api/v1/projects', { ...sys, ...json }, JSON.stringify({ id: 'p2' }))
    t.equal(created.status, 201, created.body)
    const fresh = created.json.data.new_api_key as string
    t.equal((await get(a.port, 'p2', 'x', bearer(p2Key))).status, 401, 'A refuses the key of the deleted project')
    const read = await get(a.port, 'p2', 'x', bearer(fresh))
    t.equal(read.status, 404, 'A finds none of the deleted project\'s data')
    t.match(read.json?.message, /x/, 'the key is what is missing, not the project')
    t.equal((await put(a.port, 'p2', 'y', 'new store', bearer(fresh))).status, 200)
    t.equal((await get(b.port, 'p2', 'y', bearer(fresh))).json.data.value, 'new store')
  })

  await t.test('settings changed on A are in force on B at the next request', async t => {
    t.equal((await call(b.port, 'GET', '/api/v1/projects/p1/store', proj)).status, 200, 'B lists the store')
    const hide = await call(a.port, 'PUT', '/api/v1/projects/p1', { ...proj, ...json }, JSON.stringify({ security: { keys_and_values_discoverable: false } }))
    t.equal(hide.status, 200, hide.body)
    const refused = await call(b.port, 'GET', '/api/v1/projects/p1/store', proj)
    t.equal(refused.status, 403, 'B refuses the listing at once')
    t.equal(refused.json?.message, 'Retrieving all keys and values is disabled for this project')
    const show = await call(b.port, 'PUT', '/api/v1/projects/p1', { ...proj, ...json }, JSON.stringify({ security: { keys_and_values_discoverable: true } }))
    t.equal(show.status, 200, show.body)
    t.equal((await call(a.port, 'GET', '/api/v1/projects/p1/store', proj)).status, 200, 'and A lists again after B changed it back')
  })

  await t.test('an expiry set on one instance holds on the other', async t => {
    const written = await call(a.port, 'PUT', `${storePath('p1', 'short')}?ttl=600`, { ...proj, ...text }, 'soon gone')
    t.equal(written.status, 200, written.body)
    const onA = await get(a.port, 'p1', 'short')
    const onB = await get(b.port, 'p1', 'short')
    t.type(onB.json.data.expires_at, 'number')
    t.equal(onB.json.data.expires_at, onA.json.data.expires_at, 'B reports the expiry A set')
    const ttl = await call(b.port, 'PUT', `${storePath('p1', 'short')}/ttl`, { ...proj, ...json }, JSON.stringify({ ttl: 0.2 }))
    t.equal(ttl.status, 200, ttl.body)
    const deadline = Date.now() + WAIT_BOUND_MS
    let status = 0
    while (Date.now() < deadline) {
      status = (await get(a.port, 'p1', 'short')).status
      if (status === 404) break
      await sleep(100)
    }
    t.equal(status, 404, 'A stops serving it once the expiry B set has passed')
  })

  await t.test('a conditional PUT race between A and B: exactly one 200 and one 412', async t => {
    for (let round = 0; round < 10; round++) {
      const first = await put(a.port, 'p1', 'race', `round ${round}`)
      t.equal(first.status, 200)
      const tag = first.headers.etag as string
      const [ra, rb] = await Promise.all([
        put(a.port, 'p1', 'race', `A wins round ${round}`, { ...proj, 'if-match': tag }),
        put(b.port, 'p1', 'race', `B wins round ${round}`, { ...proj, 'if-match': tag })
      ])
      t.same([ra.status, rb.status].sort(), [200, 412], `round ${round}: A ${ra.status}, B ${rb.status}`)
      const winner = ra.status === 200 ? ra : rb
      const loser = ra.status === 200 ? rb : ra
      t.equal(loser.json?.data?.etag, winner.headers.etag, `round ${round}: the 412 names the winner's ETag`)
      const now = await get(round % 2 === 0 ? a.port : b.port, 'p1', 'race')
      t.equal(now.json.data.value, `${ra.status === 200 ? 'A' : 'B'} wins round ${round}`, `round ${round}: the winner's value is stored`)
    }
  })
})

t.test('an instance SIGKILLed while writing loses no acknowledged write: all are read on the other', async t => {
  const redis = await startRedis({ t, appendfsync: 'always' })
  const prefix = uniquePrefix()
  const a = await startInstance(t, dir => redisConfig(redis, prefix, dir))
  const b = await startInstance(t, dir => redisConfig(redis, prefix, dir))
  const loop = new WriteLoop(a.port, 'crash', 4, true)
  t.ok(await loop.acknowledged(150), 'A acknowledged writes')
  const exit = await a.server.kill()
  t.equal(exit.signal, 'SIGKILL', 'A was killed mid-way')
  await loop.ended()
  const acked = new Map(loop.acked)
  t.ok(acked.size >= 150, `${acked.size} writes acknowledged before the kill`)
  t.same(await lostWrites(b.port, acked), [], 'every acknowledged write is on B with its value')
  const listing = await call(b.port, 'GET', '/api/v1/projects/p1/keys?limit=1', proj)
  t.equal(listing.status, 200)
})

for (const how of ['stop', 'kill'] as const) {
  t.test(`Redis ${how === 'stop' ? 'stopped' : 'SIGKILLed'} and started again: 503 with Retry-After meanwhile, then back by itself`, async t => {
    const redis = await startRedis({ t, appendfsync: 'always' })
    const a = await startInstance(t, dir => redisConfig(redis, uniquePrefix(), dir))
    // /health is polled the whole time: the process never stops answering it.
    const health = { stop: false, answers: 0, bad: [] as string[] }
    const healthLoop = (async () => {
      while (!health.stop) {
        try {
          const res = await call(a.port, 'GET', '/health')
          health.answers++
          if (res.status !== 200) health.bad.push(`${res.status} ${res.body}`)
        } catch (err) {
          health.bad.push((err as Error).message)
        }
        await sleep(100)
      }
    })()
    const loop = new WriteLoop(a.port, how, 2, false)
    t.ok(await loop.acknowledged(50), 'writes are acknowledged while Redis is up')

    if (how === 'stop') await redis.stop()
    else await redis.kill()
    t.notOk(redis.running, 'redis-server is down')
    for (const [method, path, body] of [['PUT', storePath('p1', 'while-down'), 'x'], ['GET', storePath('p1', `${how}-0-0`), undefined], ['GET', '/api/v1/projects/p1/keys', undefined]] as const) {
      const res = await call(a.port, method, path, { ...proj, ...(body === undefined ? {} : text) }, body)
      t.equal(res.status, 503, `${method} ${path} while Redis is down: ${res.body}`)
      t.match(res.json, { status_code: 503, message: String }, 'the envelope')
      t.ok(Object.hasOwn(res.json ?? {}, 'data'), 'the envelope has data')
      t.match(res.headers['retry-after'], /^\d+$/, 'Retry-After in whole seconds')
    }
    const ackedWhileDown = loop.acked.size
    await sleep(1000)
    t.ok(a.server.running, 'the process stays up')
    t.equal((await call(a.port, 'GET', '/health')).status, 200, '/health answers 200 while Redis is down')

    await redis.restart()
    const back = Date.now()
    let recovered = false
    while (Date.now() - back < WAIT_BOUND_MS) {
      const res = await put(a.port, 'p1', 'after-restart', 'back')
      if (res.status === 200) {
        recovered = true
        break
      }
      t.equal(res.status, 503, 'only 503 until it is back')
      await sleep(100)
    }
    t.ok(recovered, 'requests succeed again by themselves once Redis is back')
    // A restarted Redis has no scripts loaded: the catalog's scripts must be loaded again too.
    const created = await call(a.port, 'POST', '/api/v1/projects', { ...sys, ...json }, JSON.stringify({ id: 'after' }))
    t.equal(created.status, 201, created.body)
    t.equal((await put(a.port, 'after', 'k', 'v', bearer(created.json.data.new_api_key))).status, 200, 'the new project takes writes')
    const tag = (await get(a.port, 'p1', 'after-restart')).headers.etag as string
    t.equal((await put(a.port, 'p1', 'after-restart', 'again', { ...proj, 'if-match': tag })).status, 200, 'a conditional write works again')
    const before = loop.acked.size
    t.ok(await loop.acknowledged(before + 20), 'the write loop is acknowledged again')
    await loop.stop()
    health.stop = true
    await healthLoop
    t.ok((loop.statuses.get(503) ?? 0) > 0, `the loop met 503s while Redis was down (${JSON.stringify([...loop.statuses])})`)
    t.same([...loop.statuses.keys()].filter(s => s !== 200 && s !== 503), [], 'no status other than 200 and 503')
    t.equal(loop.connectionErrors, 0, 'no connection was refused or dropped')
    t.ok(ackedWhileDown <= loop.acked.size)
    t.ok(health.answers > 0)
    t.same(health.bad, [], '/health answered 200 the whole time')
    t.ok(a.server.running, 'the process is still up')
    t.same(await lostWrites(a.port, loop.acked), [], `every one of the ${loop.acked.size} acknowledged writes is there`)
  })
}

t.test('a Redis that may evict keys is refused; one without appendonly is used with a warning', async t => {
  await t.test('maxmemory-policy allkeys-lru: start-up fails, naming it', async t => {
    const redis = await startRedis({ t, maxmemoryPolicy: 'allkeys-lru' })
    const dir = tempDir(t, 'simple-kv-instance-')
    const file = writeConfig(dir, redisConfig(redis, uniquePrefix(), dir))
    const exit = await runCli(t, ['--config', file], { timeoutMs: WAIT_BOUND_MS })
    t.not(exit.code, 0, 'non-zero exit')
    t.equal(exit.signal, null, 'it exited by itself')
    t.match(exit.stderr, /maxmemory-policy allkeys-lru/, exit.stderr)
    t.notMatch(exit.stdout, /Listening/, 'it never listened')
  })

  await t.test('appendonly no: it starts and warns', async t => {
    const redis = await startRedis({ t, appendonly: false })
    const a = await startInstance(t, dir => redisConfig(redis, uniquePrefix(), dir))
    const warning = await waitForLog(a.server, r => r.level === 40 && typeof r.msg === 'string' && r.msg.includes('appendonly no'))
    t.ok(warning, 'a warning log line names appendonly no')
    t.equal((await put(a.port, 'p1', 'k', 'v')).status, 200, 'and it serves')
    const status = await call(a.port, 'GET', '/status', sys)
    t.equal(status.status, 200)
    t.same(status.json.System.storage, { engine: 'redis', durability: 'none' }, '/status reports no durability')
  })
})
