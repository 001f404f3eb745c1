import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { run } from '../cli/main.js'
import type { KvConfig } from '../lib/config.js'
import { generateApiKey, hashApiKey } from '../lib/keys.js'
import { verifyCopy } from '../lib/migrate.js'
import type { KvRecord } from '../lib/record.js'
import { build, proj, testConfig, writeConfig } from './support/app.js'
import { freePort, HOST } from './support/net.js'
import { sharedRedis, uniquePrefix } from './support/redis.js'
import { tempDir } from './support/temp.js'

const HASHED_KEY = generateApiKey()
const json = { 'content-type': 'application/json' }

/** The file's shared redis-server (test/support/redis.ts), a key prefix of this test's own, and a client for checks. */
async function redisFor (t: Test): Promise<{ url: string, client: Redis, prefix: string }> {
  const server = await sharedRedis()
  const client = new Redis({ host: HOST, port: server.port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => { client.disconnect() })
  return { url: server.url, client, prefix: uniquePrefix() }
}

/** Run a command line in this process, capturing what it prints. */
async function cli (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const out = { stdout: '', stderr: '' }
  const code = await run(args, { stdout: s => { out.stdout += s }, stderr: s => { out.stderr += s }, env: {} })
  return { code, ...out }
}

function readConfig (file: string): KvConfig {
  return JSON.parse(readFileSync(file, 'utf8')) as KvConfig
}

/** The local test config plus p2 (key kept as a hash only) and p3 (memory-only). */
async function localConfig (): Promise<KvConfig> {
  const hash = await hashApiKey(HASHED_KEY)
  return testConfig(c => {
    c.projects!.push({ id: 'p2', storage: { on_disk: true }, authentication: { enabled: true, save_api_key_to_config: false, api_key_hash: hash } })
    c.projects!.push({ id: 'p3', storage: { on_disk: false }, authentication: { enabled: false } })
  })
}

/** `config` switched to the Redis engine at `url` with our prefix, for a server of its own folder. */
function redisConfig (config: KvConfig, url: string, prefix: string): KvConfig {
  const copy = structuredClone(config)
  copy.system!.storage = { ...copy.system!.storage, engine: 'redis', redis: { url, key_prefix: prefix } }
  return copy
}

async function put (app: FastifyInstance, project: string, key: string, value: unknown, query = '', auth = proj) {
  const res = await app.inject({ method: 'PUT', url: `/api/v1/projects/${project}/store/${key}${query}`, headers: { ...auth, ...json }, payload: JSON.stringify(value) })
  if (res.statusCode !== 200) throw new Error(`PUT ${key}: ${res.statusCode} ${res.body}`)
  return res
}

interface Listed { items: Array<Record<string, unknown>>, rev: number, next_cursor: string | null }

async function listing (app: FastifyInstance, project: string, auth = proj, query = 'values=true&limit=1000'): Promise<Listed> {
  const res = await app.inject({ method: 'GET', url: `/api/v1/projects/${project}/keys?${query}`, headers: auth })
  if (res.statusCode !== 200) throw new Error(`listing ${project}: ${res.statusCode} ${res.body}`)
  return res.json().data as Listed
}

/** A folder with config.json and a local store for p1 and p2 written through the API, the server stopped again. */
async function seededFolder (t: Test): Promise<{ dir: string, configPath: string, config: KvConfig, etags: Map<string, string>, p1: Listed, p2: Listed }> {
  const dir = tempDir(t)
  const config = await localConfig()
  const configPath = writeConfig(dir, config)
  const { app } = await build(t, { dir })
  const etags = new Map<string, string>()
  await put(app, 'p1', 'plain', { name: 'a', list: [1, 2.5, []] })
  await put(app, 'p1', 'twice', 'first')
  etags.set('twice', (await put(app, 'p1', 'twice', 'second')).headers.etag as string)
  etags.set('ttl', (await put(app, 'p1', 'ttl', 42, '?ttl=3600')).headers.etag as string)
  await put(app, 'p1', 'soon', 'gone', '?ttl=0.05')
  for (let i = 0; i < 520; i++) await put(app, 'p1', `bulk-${String(i).padStart(4, '0')}`, i)
  await put(app, 'p2', 'k', 'v', '', { authorization: `Bearer ${HASHED_KEY}` })
  await put(app, 'p3', 'lost', 'memory only', '', {})
  await sleep(100)
  const p1 = await listing(app, 'p1')
  const p2 = await listing(app, 'p2', { authorization: `Bearer ${HASHED_KEY}` })
  await app.close()
  return { dir, configPath, config, etags, p1, p2 }
}

t.test('migrate: bad command lines exit with 2', async t => {
  for (const args of [
    ['migrate'],
    ['migrate', '--to', 'mongo'],
    ['migrate', '--to', 'redis', '--port', '1'],
    ['migrate', '--to', 'redis', 'extra'],
    ['migrate', '--to', 'redis', '--project', 'bad id'],
    ['migrate', '--to', 'redis', '--key-prefix', 'a:b'],
    ['migrate', '--to', 'local', '--redis-url', 'http://127.0.0.1'],
    ['migrate', '--to', 'local', '--overwrite=yes'],
    ['init', '--overwrite']
  ]) {
    const { code, stderr } = await cli(args)
    t.equal(code, 2, args.join(' '))
    t.match(stderr, /^simple-kv: .+\n\nUsage:/, `${args.join(' ')}: one line, then the usage`)
  }
})

t.test('migrate --to redis, then back --to local: records, versions, tags, expiry, key hashes, epochs and revisions', async t => {
  const { url, client, prefix } = await redisFor(t)
  const { dir, configPath, config, etags, p1, p2 } = await seededFolder(t)
  const flags = ['--config', configPath, '--redis-url', url, '--key-prefix', prefix]
  t.equal(p1.items.length, 523, 'the expired key is no longer listed locally')

  const toRedis = await cli(['migrate', '--to', 'redis', ...flags])
  t.equal(toRedis.code, 0, toRedis.stderr)
  t.match(toRedis.stdout, /Migrated 3 projects to redis:\n {2}p1: 523 keys copied and verified; epoch \S+, revision \d+\n {2}p2: 1 key copied and verified/)
  t.match(toRedis.stdout, /p3: memory-only: settings copied, no records/)
  t.notMatch(toRedis.stdout, /127\.0\.0\.1:\d+\/0.*password/, 'no credentials printed')
  t.ok(await client.get(`${prefix}:seeded`), 'Redis is marked as seeded')
  const catalog = await client.hgetall(`${prefix}:catalog`)
  t.same(Object.keys(catalog).sort(), ['p1', 'p2', 'p3'])
  t.equal(JSON.parse(catalog.p2).config.authentication.api_key_hash, config.projects![1].authentication!.api_key_hash, 'the key hash is copied as it is')
  t.same(await client.keys(`${prefix}:*~migrating*`), [], 'no staging keys are left')

  // A server on the Redis engine, in a folder of its own, serves the copy.
  const redisDir = tempDir(t)
  writeConfig(redisDir, redisConfig(config, url, prefix))
  const { app: onRedis } = await build(t, { dir: redisDir })
  const twice = await onRedis.inject({ method: 'GET', url: '/api/v1/projects/p1/store/twice', headers: { ...proj, 'if-none-match': etags.get('twice') as string } })
  t.equal(twice.statusCode, 304, 'the old ETag still matches')
  const fromRedis = await listing(onRedis, 'p1')
  t.same(fromRedis.items, p1.items, 'every record the same: value, version, tag, timestamps, expiry')
  t.equal(fromRedis.rev, p1.rev, 'the revision is the local one')
  t.same((await listing(onRedis, 'p2', { authorization: `Bearer ${HASHED_KEY}` })).items, p2.items, 'the key of p2 (kept as a hash) works')
  t.equal((await onRedis.inject({ method: 'GET', url: '/api/v1/projects/p1/store/soon', headers: proj })).statusCode, 404, 'the expired key was not copied')
  t.equal((await listing(onRedis, 'p3', {})).items.length, 0, 'the memory-only project is there, empty')
  // A cursor names its epoch: one taken from the local listing goes on in Redis.
  const localDir = dir
  const { app: local } = await build(t, { dir: localDir })
  const firstPage = await listing(local, 'p1', proj, 'limit=1')
  await local.close()
  const next = await onRedis.inject({ method: 'GET', url: `/api/v1/projects/p1/keys?limit=1&cursor=${encodeURIComponent(firstPage.next_cursor as string)}`, headers: proj })
  t.equal(next.statusCode, 200, 'the epoch moved with the store')

  // A change on Redis, so the way back has something to carry.
  const changed = await put(onRedis, 'p1', 'twice', 'third')
  const afterChange = await listing(onRedis, 'p1')
  await onRedis.close()

  // Back into a fresh folder whose config lists no project.
  const backDir = tempDir(t)
  const backConfig = testConfig(c => { c.projects = [] })
  const backPath = writeConfig(backDir, backConfig)
  const toLocal = await cli(['migrate', '--to', 'local', '--config', backPath, '--redis-url', url, '--key-prefix', prefix])
  t.equal(toLocal.code, 0, toLocal.stderr)
  t.match(toLocal.stdout, /p1: 523 keys copied and verified/)
  const written = readConfig(backPath)
  t.same(written.projects!.map(p => p.id), ['p1', 'p2', 'p3'], 'the projects are listed in config.json, in their order')
  t.equal(written.projects![1].authentication!.api_key_hash, config.projects![1].authentication!.api_key_hash)
  const meta = JSON.parse(readFileSync(join(backDir, 'storage_data', 'p1_store.meta'), 'utf8')) as { epoch: string, rev: number }
  t.equal(meta.rev, afterChange.rev, 'the meta file holds the revision from Redis')
  const { app: back } = await build(t, { dir: backDir })
  t.same((await listing(back, 'p1')).items, afterChange.items, 'a local server serves the same records')
  const third = await back.inject({ method: 'GET', url: '/api/v1/projects/p1/store/twice', headers: { ...proj, 'if-none-match': changed.headers.etag as string } })
  t.equal(third.statusCode, 304, 'and the same ETags')
  t.equal((await listing(back, 'p1')).rev, afterChange.rev)
  t.equal((await back.inject({ method: 'GET', url: '/api/v1/projects/p2/store/k', headers: { authorization: `Bearer ${HASHED_KEY}` } })).statusCode, 200)
  await back.close()
})

t.test('migrate refuses existing projects unless --overwrite; an overwrite replaces them and never takes the revision back', async t => {
  const { url, client, prefix } = await redisFor(t)
  const { dir, configPath, config } = await seededFolder(t)
  const flags = ['--config', configPath, '--redis-url', url, '--key-prefix', prefix]
  t.equal((await cli(['migrate', '--to', 'redis', ...flags, '--project', 'p1'])).code, 0)
  t.same(Object.keys(await client.hgetall(`${prefix}:catalog`)), ['p1'], '--project copies only that one')

  const again = await cli(['migrate', '--to', 'redis', ...flags])
  t.equal(again.code, 1)
  t.match(again.stderr, /project 'p1' already exists in Redis .*--overwrite/)
  t.same(Object.keys(await client.hgetall(`${prefix}:catalog`)), ['p1'], 'nothing was copied, p2 included')

  // Redis moved on (another instance wrote), then the folder changes and is copied over it.
  const entry = JSON.parse(await client.hget(`${prefix}:catalog`, 'p1') as string) as { epoch: string }
  const metaKey = `${prefix}:{p1}:${entry.epoch}:m`
  await client.hset(metaKey, 'rev', 5000)
  await client.hset(`${prefix}:{p1}:${entry.epoch}:d`, 'stale', '1|1|1||1|string|x\n"s"')
  await client.zadd(`${prefix}:{p1}:${entry.epoch}:i`, 0, 'stale')
  const { app: local } = await build(t, { dir })
  await put(local, 'p1', 'added', true)
  await local.close()
  const over = await cli(['migrate', '--to', 'redis', ...flags, '--overwrite'])
  t.equal(over.code, 0, over.stderr)
  t.match(over.stdout, /p1: 524 keys copied and verified; epoch \S+, revision 5001 \(replaced the existing project\)/)
  t.equal(Number(await client.hget(metaKey, 'rev')), 5001, 'the same epoch: the revision passes the one Redis had')
  t.equal(await client.hexists(`${prefix}:{p1}:${entry.epoch}:d`, 'stale'), 0, 'the old store was replaced, not merged')
  t.equal(await client.hexists(`${prefix}:{p1}:${entry.epoch}:d`, 'added'), 1)

  // The way back: config.json lists them all, so only --overwrite may replace them.
  const refused = await cli(['migrate', '--to', 'local', ...flags])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /project 'p1', 'p2', 'p3' already exists in .*config\.json/)
  const metaFile = join(dir, 'storage_data', 'p1_store.meta')
  writeFileSync(metaFile, JSON.stringify({ epoch: entry.epoch, rev: 9000 }) + '\n')
  const overLocal = await cli(['migrate', '--to', 'local', ...flags, '--overwrite', '--project', 'p1'])
  t.equal(overLocal.code, 0, overLocal.stderr)
  t.equal((JSON.parse(readFileSync(metaFile, 'utf8')) as { rev: number }).rev, 9001, 'the files had a later revision of the same epoch: the copy passes it')
  t.same(readConfig(configPath).projects!.map(p => p.id), config.projects!.map(p => p.id), 'the project keeps its place in config.json')
  const { app: back } = await build(t, { dir })
  const listed = await listing(back, 'p1')
  t.equal(listed.rev, 9001)
  t.equal(listed.items.length, 524)
  await back.close()
})

t.test('migrate refuses a folder a server owns, unknown projects and an unreachable Redis', async t => {
  const { url, prefix } = await redisFor(t)
  const dir = tempDir(t)
  // The Redis comes from the config's system.storage.redis when the command line names none.
  const configPath = writeConfig(dir, testConfig(c => { c.system!.storage = { ...c.system!.storage, redis: { url, key_prefix: prefix } } }))
  const flags = ['--config', configPath]
  const { app } = await build(t, { dir })
  const busy = await cli(['migrate', '--to', 'redis', ...flags])
  t.equal(busy.code, 1)
  t.match(busy.stderr, /a Simple KV server is running on .*config\.json/)
  await app.close()
  const unknown = await cli(['migrate', '--to', 'redis', ...flags, '--project', 'nope'])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /no project 'nope' in /)
  const notInRedis = await cli(['migrate', '--to', 'local', ...flags, '--project', 'nope'])
  t.equal(notInRedis.code, 1)
  t.match(notInRedis.stderr, new RegExp(`no project 'nope' in Redis \\(key prefix ${prefix}\\)`))
  const port = await freePort()
  const away = await cli(['migrate', '--to', 'redis', '--config', configPath, '--redis-url', `redis://:secret@${HOST}:${port}/0`])
  t.equal(away.code, 1)
  t.match(away.stderr, /Cannot reach Redis/)
  t.notMatch(away.stderr, /secret/, 'the password is not printed')
  const fromConfig = await cli(['migrate', '--to', 'redis', ...flags])
  t.equal(fromConfig.code, 0, fromConfig.stderr)
  t.match(fromConfig.stdout, `key prefix ${prefix} now holds them`)
})

t.test('verifyCopy: a copy is verified by content and count', async t => {
  const now = 1_800_000_000_000
  const rec = (over: Partial<KvRecord> = {}): KvRecord => ({ value: { a: [1] }, created_at: 1, updated_at: 2, size_bytes: 9, type: 'object', version: 3, expires_at: null, tag: 'e.3', ...over })
  const copied: Array<[string, KvRecord]> = [['k', rec()], ['due', rec({ expires_at: now / 1000 + 1 })]]
  t.doesNotThrow(() => { verifyCopy('p', copied, [['k', rec()], ['due', rec({ expires_at: now / 1000 + 1 })]], now) }, 'the same')
  t.doesNotThrow(() => { verifyCopy('p', copied, [['k', rec()]], now) }, 'a key due within the margin may be gone')
  const cases: Array<[string, Array<[string, KvRecord]>, RegExp]> = [
    ['value', [['k', rec({ value: { a: [2] } })], ['due', copied[1][1]]], /key "k" \(value differs\)/],
    ['version', [['k', rec({ version: 4 })], ['due', copied[1][1]]], /version 4 instead of 3/],
    ['tag', [['k', rec({ tag: 'x' })], ['due', copied[1][1]]], /tag x instead of e\.3/],
    ['expiry', [['k', rec({ expires_at: 5 })], ['due', copied[1][1]]], /expires_at 5 instead of null/],
    ['timestamps', [['k', rec({ updated_at: 3 })], ['due', copied[1][1]]], /timestamps differ/],
    ['an extra key', [...copied, ['extra', rec()]], /key "extra" \(not copied\)/],
    ['a missing key', [['due', copied[1][1]]], /key "k" is missing \(1 keys found, 2 copied\)/]
  ]
  for (const [name, found, message] of cases) t.throws(() => { verifyCopy('p', copied, found, now) }, message, name)
  t.throws(() => { verifyCopy('p', [['later', rec({ expires_at: now / 1000 + 60 })]], [], now) }, /key "later" is missing/, 'a key due later must be there')
})
