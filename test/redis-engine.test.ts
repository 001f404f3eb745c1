import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { ConfigStore, type KvConfig } from '../lib/config.js'
import { bearer, build, proj, PROJECT_KEY, sys, testConfig } from './support/app.js'
import { sharedRedis, sharedRedisCluster, startRedis, uniquePrefix } from './support/redis.js'

const json = { 'content-type': 'application/json' }
const store = '/api/v1/projects/p1/store'

/** The test config on the Redis at `url` under `prefix`. */
function redisConfig (url: string, prefix: string, more: (c: KvConfig) => void = () => {}): KvConfig {
  return testConfig(c => {
    c.system!.storage = { engine: 'redis', redis: { url, key_prefix: prefix } }
    more(c)
  })
}

t.test('durability is read from Redis and reported in System.storage', async t => {
  for (const [opts, expected] of [[{ appendfsync: 'always' }, 'always'], [{ appendfsync: 'everysec' }, 'everysec'], [{ appendonly: false }, 'none']] as const) {
    const redis = await startRedis({ ...opts, t })
    const log: string[] = []
    const { app } = await build(t, { config: redisConfig(redis.url, uniquePrefix()), log })
    const status = (await app.inject({ method: 'GET', url: '/status', headers: sys })).json()
    t.same(status.System.storage, { engine: 'redis', durability: expected }, JSON.stringify(opts))
    if (expected === 'none') t.ok(log.some(l => l.includes('appendonly no')), 'appendonly off is a warning in the log')
    await app.close()
  }
})

t.test('a Redis that may evict keys is refused at start, naming the policy; volatile policies are fine', async t => {
  const lru = await startRedis({ maxmemoryPolicy: 'allkeys-lru', t })
  await t.rejects(build(t, { config: redisConfig(lru.url, uniquePrefix()) }), /maxmemory-policy allkeys-lru/)
  const volatile = await startRedis({ maxmemoryPolicy: 'volatile-lru', t })
  const { app } = await build(t, { config: redisConfig(volatile.url, uniquePrefix()) })
  t.equal((await app.inject({ method: 'PUT', url: `${store}/k`, headers: proj, payload: 'v' })).statusCode, 200, 'Simple KV sets no Redis TTL, so volatile-* never evicts its keys')
})

t.test('SIMPLE_KV_REDIS_URL overrides the file; credentials never reach the log or the status', async t => {
  const config = ConfigStore.fromObject(redisConfig('redis://127.0.0.1:1/0', 'p'), t.testdir())
  const before = process.env.SIMPLE_KV_REDIS_URL
  t.teardown(() => { if (before === undefined) delete process.env.SIMPLE_KV_REDIS_URL; else process.env.SIMPLE_KV_REDIS_URL = before })
  const secret = 's3cret-pass-word'
  const redis = await startRedis({ requirePass: secret, t })
  process.env.SIMPLE_KV_REDIS_URL = redis.url
  t.equal(ConfigStore.fromObject(redisConfig('redis://127.0.0.1:1/0', 'p'), t.testdir()).settings.redis.url, redis.url)
  t.equal(config.settings.redis.url, redis.url, 'read when the settings are derived')
  const log: string[] = []
  let summary = ''
  const { app } = await build(t, { config: redisConfig('redis://127.0.0.1:1/0', uniquePrefix()), log, app: { onRegistry: r => { summary = r.storage.summary } } })
  t.equal((await app.inject({ method: 'PUT', url: `${store}/k`, headers: proj, payload: 'v' })).statusCode, 200, 'connected with the password from the environment')
  t.notMatch(summary, secret)
  t.match(summary, /\*\*\*/, 'the password is masked')
  t.notOk(log.some(l => l.includes(secret)), 'no log line holds the password')
})

t.test('an unreachable Redis at start fails with a clear message', async t => {
  const redis = await startRedis({ t })
  const url = redis.url
  await redis.stop()
  await t.rejects(build(t, { config: redisConfig(url, uniquePrefix(), c => { c.system!.storage!.redis!.connect_timeout_ms = 500 }) }), /Cannot reach Redis at redis:\/\/127\.0\.0\.1/)
})

t.test('config.json seeds Redis once; later its projects are ignored with a warning', async t => {
  const redis = await sharedRedis()
  const prefix = uniquePrefix()
  const first = await build(t, { config: redisConfig(redis.url, prefix) })
  t.equal((await first.app.inject({ method: 'PUT', url: `${store}/k`, headers: proj, payload: 'seeded' })).statusCode, 200)
  const log: string[] = []
  const second = await build(t, {
    log,
    config: redisConfig(redis.url, prefix, c => { c.projects!.push({ id: 'late', authentication: { enabled: false } }) })
  })
  t.ok(log.some(l => l.includes('is ignored')), 'the list in config.json is ignored, with a warning')
  t.equal((await second.app.inject({ method: 'GET', url: '/api/v1/projects/late/store' })).statusCode, 404, 'a project only in the file is not created')
  t.equal((await second.app.inject({ method: 'GET', url: `${store}/k/value`, headers: proj })).body, 'seeded', 'both instances see one dataset')
  const deleted = await first.app.inject({ method: 'DELETE', url: '/api/v1/projects/p1', headers: sys })
  t.equal(deleted.statusCode, 200)
  const third = await build(t, { config: redisConfig(redis.url, prefix) })
  t.equal((await third.app.inject({ method: 'GET', url: `${store}/k`, headers: proj })).statusCode, 404, 'an old config never brings a deleted project back')
})

t.test('two instances on one Redis: creation, regeneration, settings and deletion are in force at the next request', async t => {
  const redis = await sharedRedis()
  const prefix = uniquePrefix()
  const a = (await build(t, { config: redisConfig(redis.url, prefix) })).app
  const b = (await build(t, { config: redisConfig(redis.url, prefix) })).app
  const created = await a.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'shared' } })
  t.equal(created.statusCode, 201)
  const key = created.json().data.new_api_key as string
  const put = await b.inject({ method: 'PUT', url: '/api/v1/projects/shared/store/k', headers: bearer(key), payload: 'from b' })
  t.equal(put.statusCode, 200, 'created on A, written on B')
  t.equal((await b.inject({ method: 'GET', url: '/api/v1/projects/shared/store/k/value', headers: bearer(key) })).body, 'from b', 'B verified and cached the key')
  const read = await a.inject({ method: 'GET', url: '/api/v1/projects/shared/store/k', headers: bearer(key) })
  t.equal(read.headers.etag, put.headers.etag, 'the same record, the same ETag')
  const regenerated = await a.inject({ method: 'POST', url: '/api/v1/projects/shared/config/regenerate-api-key', headers: sys })
  t.equal(regenerated.statusCode, 200)
  t.equal((await b.inject({ method: 'GET', url: '/api/v1/projects/shared/store/k', headers: bearer(key) })).statusCode, 401, 'the old key is refused on B at once, though B had it cached')
  const fresh = regenerated.json().data.new_api_key as string
  t.equal((await b.inject({ method: 'GET', url: '/api/v1/projects/shared/store/k', headers: bearer(fresh) })).statusCode, 200)
  // Two settings changed at the same moment on two instances: both are kept (compare-and-swap of the entry).
  const [x, y] = await Promise.all([
    a.inject({ method: 'PUT', url: '/api/v1/projects/shared', headers: { ...bearer(fresh), ...json }, payload: { security: { keys_and_values_discoverable: false } } }),
    b.inject({ method: 'PUT', url: '/api/v1/projects/shared', headers: { ...bearer(fresh), ...json }, payload: { security: { require_conditional_writes: true } } })
  ])
  t.same([x.statusCode, y.statusCode], [200, 200])
  const details = (await b.inject({ method: 'GET', url: '/api/v1/projects/shared', headers: bearer(fresh) })).json().data
  t.same(details.security, { keys_and_values_discoverable: false, require_conditional_writes: true }, 'neither change was lost')
  t.equal((await a.inject({ method: 'PUT', url: '/api/v1/projects/shared/store/k', headers: bearer(fresh), payload: 'x' })).statusCode, 428, 'B\'s setting is in force on A')
  t.equal((await a.inject({ method: 'DELETE', url: '/api/v1/projects/shared', headers: sys })).statusCode, 200)
  t.equal((await b.inject({ method: 'GET', url: '/api/v1/projects/shared', headers: bearer(fresh) })).statusCode, 404, 'deleted on A, gone on B')
  const listed = (await b.inject({ method: 'GET', url: '/api/v1/projects', headers: sys })).json()
  t.same(Object.keys(listed.data), ['p1'])
  t.equal(listed.System.number_of_projects, 1)
})

t.test('two instances create the same project at once: one 201, one 400, one store', async t => {
  const redis = await sharedRedis()
  const prefix = uniquePrefix()
  const a = (await build(t, { config: redisConfig(redis.url, prefix) })).app
  const b = (await build(t, { config: redisConfig(redis.url, prefix) })).app
  const answers = await Promise.all([a, b].map(async app => await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'race' } })))
  t.same(answers.map(r => r.statusCode).sort(), [201, 400])
  const key = answers.find(r => r.statusCode === 201)?.json().data.new_api_key as string
  for (const app of [a, b]) t.equal((await app.inject({ method: 'PUT', url: '/api/v1/projects/race/store/k', headers: bearer(key), payload: 'v' })).statusCode, 200)
  const metas = await redis.cli('KEYS', `${prefix}:{race}:*:m`)
  t.equal(metas.split('\n').length, 1, 'the loser removed the store it had made')
})

t.test('Redis away: 503 in the envelope with Retry-After, nothing half-written; back: served again by itself', async t => {
  const redis = await startRedis({ t })
  const { app } = await build(t, { config: redisConfig(redis.url, uniquePrefix()) })
  t.equal((await app.inject({ method: 'PUT', url: `${store}/before`, headers: proj, payload: '1' })).statusCode, 200)
  await redis.stop()
  for (const [method, url, payload] of [['GET', `${store}/before`, undefined], ['PUT', `${store}/during`, '2'], ['GET', '/api/v1/projects/p1/keys', undefined]] as const) {
    const res = await app.inject({ method, url, headers: proj, payload })
    t.equal(res.statusCode, 503, `${method} ${url}`)
    t.equal(res.json().status_code, 503)
    t.match(res.json().message, /Redis at redis:\/\/127\.0\.0\.1:\d+\/? is unavailable/)
    t.equal(res.headers['retry-after'], '1')
  }
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'the process stays up')
  await redis.restart()
  let status = 0
  for (let i = 0; i < 600 && status !== 200; i++) {
    status = (await app.inject({ method: 'GET', url: `${store}/before/value`, headers: proj })).statusCode
    if (status !== 200) await sleep(100)
  }
  t.equal(status, 200, 'recovered without a restart of Simple KV')
  t.equal((await app.inject({ method: 'GET', url: `${store}/during`, headers: proj })).statusCode, 404, 'the refused write left nothing')
  t.equal((await app.inject({ method: 'PUT', url: `${store}/after`, headers: proj, payload: '3' })).statusCode, 200)
})

t.test('a full Redis (maxmemory, noeviction) refuses writes with 507 and keeps serving reads', async t => {
  const redis = await startRedis({ maxmemory: '3mb', maxmemoryPolicy: 'noeviction', t })
  const log: string[] = []
  const { app } = await build(t, { config: redisConfig(redis.url, uniquePrefix()), log })
  t.equal((await app.inject({ method: 'PUT', url: `${store}/first`, headers: proj, payload: 'kept' })).statusCode, 200)
  const big = 'x'.repeat(200_000)
  let status = 200
  for (let i = 0; i < 100 && status === 200; i++) status = (await app.inject({ method: 'PUT', url: `${store}/big${i}`, headers: proj, payload: big })).statusCode
  t.equal(status, 507, 'a write past maxmemory is 507')
  t.ok(log.some(l => l.includes('out of memory')), 'the failure is logged')
  t.notOk(log.some(l => l.includes('x'.repeat(100))), 'without the command\'s arguments (the value)')
  t.notOk(log.some(l => l.includes(PROJECT_KEY)), 'nor the key')
  t.equal((await app.inject({ method: 'GET', url: `${store}/first/value`, headers: proj })).body, 'kept')
})

t.test('values are opaque to the scripts; keys with BYLEX and header characters list in order', async t => {
  const redis = await sharedRedis()
  const { app } = await build(t, { config: redisConfig(redis.url, uniquePrefix()) })
  const value = { empty: [], obj: {}, big: 1e300, tiny: 5e-324, neg: -0.5, text: 'line\nbreak|pipe\u0000nul', nested: [[[]]], unicode: '\u{10000}é' }
  t.equal((await app.inject({ method: 'PUT', url: `${store}/v`, headers: { ...proj, ...json }, payload: JSON.stringify(value) })).statusCode, 200)
  t.same((await app.inject({ method: 'GET', url: `${store}/v`, headers: proj })).json().data.value, value, '[] stays [], numbers keep their value')
  const keys = ['(a', '+', '-', '[b', 'a|b', 'a\nb', '\u{10000}', '\uffff']
  for (const key of keys) t.equal((await app.inject({ method: 'PUT', url: `${store}/${encodeURIComponent(key)}`, headers: proj, payload: key })).statusCode, 200, JSON.stringify(key))
  const all = (await app.inject({ method: 'GET', url: '/api/v1/projects/p1/keys?limit=1000', headers: proj })).json().data.items.map((i: { key: string }) => i.key)
  t.same(all, [...keys, 'v'].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))), 'UTF-8 byte order')
  for (const prefix of ['[', '(', '+', '-', 'a']) {
    const page = (await app.inject({ method: 'GET', url: `/api/v1/projects/p1/keys?prefix=${encodeURIComponent(prefix)}`, headers: proj })).json().data
    t.same(page.items.map((i: { key: string }) => i.key), all.filter((k: string) => k.startsWith(prefix)), `prefix ${prefix}`)
  }
})

t.test('Redis Cluster: a project\'s slot moved to another master is followed (MOVED) with no error and no data lost', async t => {
  const cluster = await sharedRedisCluster()
  const prefix = uniquePrefix()
  const { app } = await build(t, { config: redisConfig(cluster.url, prefix, c => { c.system!.storage!.redis!.cluster = true }) })
  for (let i = 0; i < 20; i++) t.equal((await app.inject({ method: 'PUT', url: `${store}/k${i}`, headers: proj, payload: `v${i}` })).statusCode, 200)
  const slot = await cluster.cli('CLUSTER', 'KEYSLOT', '{p1}')
  const from = await cluster.nodeForKey('{p1}')
  const to = cluster.nodes.find(n => n.port !== from.port) as typeof from
  const fromId = await from.cli('CLUSTER', 'MYID')
  const toId = await to.cli('CLUSTER', 'MYID')
  // The documented way to move one slot: importing, migrating, MIGRATE every key, then the new owner everywhere.
  await to.cli('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId)
  await from.cli('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId)
  for (;;) {
    const keys = (await from.cli('CLUSTER', 'GETKEYSINSLOT', slot, '100')).split('\n').filter(k => k !== '')
    if (keys.length === 0) break
    await from.cli('MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'KEYS', ...keys)
  }
  for (const node of cluster.nodes) await node.cli('CLUSTER', 'SETSLOT', slot, 'NODE', toId)
  t.equal((await cluster.nodeForKey('{p1}')).port, to.port, 'the slot has a new owner')
  const all = await app.inject({ method: 'GET', url: store, headers: proj })
  t.equal(all.statusCode, 200, 'the client followed MOVED')
  t.equal(Object.keys(all.json().data).length, 20, 'every key came along')
  t.equal((await app.inject({ method: 'PUT', url: `${store}/after`, headers: proj, payload: 'moved' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: `${store}/after/value`, headers: proj })).body, 'moved')
})

t.test('one round trip a request: a change made on another instance is caught by the store\'s guard and the request checked again', async t => {
  const redis = await sharedRedis()
  const prefix = uniquePrefix()
  const a = (await build(t, { config: redisConfig(redis.url, prefix) })).app
  const b = (await build(t, { config: redisConfig(redis.url, prefix, c => { c.system!.security = { project_discoverable: false } }) })).app
  const get = async (app: typeof a, key: string, url = `${store}/k`): Promise<number> => (await app.inject({ method: 'GET', url, headers: bearer(key) })).statusCode
  t.equal((await b.inject({ method: 'PUT', url: `${store}/k`, headers: proj, payload: 'v' })).statusCode, 200, 'B has p1 and its key cached')
  // A new key on A: B's cached check is stale; its next request is checked against the new entry.
  const fresh = (await a.inject({ method: 'POST', url: '/api/v1/projects/p1/config/regenerate-api-key', headers: sys })).json().data.new_api_key as string
  t.equal(await get(b, PROJECT_KEY), 401, 'the old key: refused on B')
  t.equal(await get(b, fresh), 200, 'the new key: served on B')
  // Another new key, sent to B before anything else: B's cached check says no, so B reads the project again.
  const newer = (await a.inject({ method: 'POST', url: '/api/v1/projects/p1/config/regenerate-api-key', headers: sys })).json().data.new_api_key as string
  t.equal(await get(b, newer), 200, 'a key B has never seen, right after A made it: served')
  t.equal(await get(b, fresh), 401, 'and the one before it: refused')
  t.equal((await a.inject({ method: 'POST', url: '/api/v1/projects/p1/config/regenerate-api-key', headers: sys })).statusCode, 200)
  t.equal(await get(b, newer), 401)
  const last = (await a.inject({ method: 'POST', url: '/api/v1/projects/p1/config/regenerate-api-key', headers: sys })).json().data.new_api_key as string
  // Settings changed on A are in force on B, even in checks made before the store is asked.
  t.equal((await a.inject({ method: 'PUT', url: '/api/v1/projects/p1', headers: { ...bearer(last), ...json }, payload: { security: { keys_and_values_discoverable: false, require_conditional_writes: true } } })).statusCode, 200)
  t.equal(await get(b, last, store), 403, 'R8 on B: listing off')
  t.equal(await get(b, last, '/api/v1/projects/p1/keys'), 403, 'listing on B: off')
  t.equal((await b.inject({ method: 'PUT', url: `${store}/k`, headers: bearer(last), payload: 'w' })).statusCode, 428, 'a write without a precondition on B: 428')
  t.equal((await b.inject({ method: 'DELETE', url: `${store}/k`, headers: bearer(last) })).statusCode, 428)
  t.same((await b.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: bearer(last) })).json().data.security, { keys_and_values_discoverable: false, require_conditional_writes: true })
  // And back on B: A, which holds its own change, lists again (a refusal is confirmed with Redis before it is answered).
  t.equal((await b.inject({ method: 'PUT', url: '/api/v1/projects/p1', headers: { ...bearer(last), ...json }, payload: { security: { keys_and_values_discoverable: true, require_conditional_writes: false } } })).statusCode, 200)
  t.equal(await get(a, last, store), 200, 'R8 on A: listing on again')
  t.equal(await get(a, last, '/api/v1/projects/p1/keys'), 200, 'listing on A: on again')
  t.equal((await a.inject({ method: 'PUT', url: `${store}/k`, headers: bearer(last), payload: 'w' })).statusCode, 200, 'a write without a precondition on A: 200 again')
  // Deleted on A: B (projects not discoverable there) answers as for a wrong key, A 404.
  t.equal((await a.inject({ method: 'DELETE', url: '/api/v1/projects/p1', headers: sys })).statusCode, 200)
  t.equal(await get(b, last), 401, 'B: deleted, and not discoverable: 401')
  t.equal(await get(a, last), 404, 'A: 404')
  // Created again on A under the same id: B's old store is gone, the new project's key works on B.
  const again = (await a.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'p1' } })).json().data.new_api_key as string
  t.equal(await get(b, last), 401, 'the key of the deleted project: refused')
  t.equal(await get(b, again), 404, 'the new project is empty')
  t.equal((await b.inject({ method: 'PUT', url: `${store}/k`, headers: bearer(again), payload: 'new life' })).statusCode, 200)
  t.equal((await a.inject({ method: 'GET', url: `${store}/k/value`, headers: bearer(again) })).body, 'new life')
})

t.test('a Redis that refuses CONFIG GET (as managed services do): durability unknown, with a warning', async t => {
  const redis = await startRedis({ t, extraArgs: ['--rename-command', 'CONFIG', ''] })
  const log: string[] = []
  const { app } = await build(t, { config: redisConfig(redis.url, uniquePrefix()), log })
  t.ok(log.some(l => l.includes('cannot read the configuration of Redis')), 'warned')
  t.same((await app.inject({ method: 'GET', url: '/status', headers: sys })).json().System.storage, { engine: 'redis', durability: 'unknown' })
  t.equal((await app.inject({ method: 'PUT', url: `${store}/k`, headers: proj, payload: 'v' })).statusCode, 200, 'and serves')
})

t.test('wrong keys on a project this instance holds: counted, then 429 without a Redis read', async t => {
  const redis = await startRedis({ t })
  const { app } = await build(t, { config: redisConfig(redis.url, uniquePrefix(), c => { c.system!.security = { max_auth_failures: 3, auth_failure_window_seconds: 60 } }) })
  t.equal((await app.inject({ method: 'GET', url: `${store}/k`, headers: proj })).statusCode, 404, 'p1 is held')
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'GET', url: `${store}/k`, headers: bearer(`wrong-${i}`) })).statusCode, 401)
  const hgets = async (): Promise<number> => Number(/cmdstat_hget:calls=(\d+)/.exec(await redis.cli('INFO', 'commandstats'))?.[1] ?? 0)
  const before = await hgets()
  for (let i = 0; i < 5; i++) {
    const res = await app.inject({ method: 'GET', url: `${store}/k`, headers: bearer(`flood-${i}`) })
    t.equal(res.statusCode, 429)
    t.ok(Number(res.headers['retry-after']) > 0)
  }
  t.equal(await hgets(), before, 'the flood read nothing from Redis')
  t.equal((await app.inject({ method: 'GET', url: `${store}/k`, headers: proj })).statusCode, 404, 'the good key still works')
})

t.test('a transaction whose thousands of checks fail answers 409 naming each (no Lua stack limit)', async t => {
  const redis = await sharedRedis()
  const { app } = await build(t, { config: redisConfig(redis.url, uniquePrefix(), c => { c.system!.limits = { max_txn_checks: 5000 } }) })
  const checks = Array.from({ length: 4000 }, (_, i) => ({ key: `k${i}`, exists: true }))
  const res = await app.inject({ method: 'POST', url: '/api/v1/projects/p1/txn', headers: { ...proj, ...json }, payload: { checks, ops: [{ op: 'set', key: 'x', value: 1 }] } })
  t.equal(res.statusCode, 409)
  t.equal(res.json().data.failed.length, 4000)
  t.same(res.json().data.failed[3999], { index: 3999, key: 'k3999', etag: null })
})

t.test('seeding that stopped half-way is finished by the next start; instances seeding at once create each project once', async t => {
  const redis = await sharedRedis()
  const prefix = uniquePrefix()
  const two = (c: KvConfig): void => { c.projects!.push({ id: 'p2', authentication: { enabled: true } }) }
  // Two instances start together on a Redis never seeded: p2 has no key, so each would make one.
  const generated: Array<Array<{ id: string }>> = [[], []]
  const [a, b] = await Promise.all([0, 1].map(async i => (await build(t, { config: redisConfig(redis.url, prefix, two), app: { onGeneratedKeys: keys => { generated[i].push(...keys) } } })).app))
  const shown = [...generated[0], ...generated[1]].filter(k => k.id === 'p2') as Array<{ id: string, key: string }>
  t.equal(shown.length, 1, 'one new key for p2 is shown, by the instance that created it')
  for (const app of [a, b]) t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p2/store', headers: bearer(shown[0].key) })).statusCode, 200)
  // A seeding that died after p1: the marker is not set, so the next start adds p2.
  const half = uniquePrefix()
  const first = await build(t, { config: redisConfig(redis.url, half) })
  await redis.cli('DEL', `${half}:seeded`)
  await first.app.close()
  const next = await build(t, { config: redisConfig(redis.url, half, c => { c.projects!.push({ id: 'p3', authentication: { enabled: false } }) }) })
  t.equal((await next.app.inject({ method: 'PUT', url: '/api/v1/projects/p3/store/k', payload: 'v' })).statusCode, 200, 'the project left out is seeded')
  t.equal(await redis.cli('EXISTS', `${half}:seeded`), '1', 'and the dataset is marked seeded')
})
