import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigStore, configError } from '../../../lib/config.js'
import { LocalRegistry } from '../../../lib/registry.js'
import { build, proj, sys, testConfig } from '../../support/app.js'
import { tempDir } from '../../support/temp.js'

const base = '/api/v1/projects/p1'

/** The meta file of p1: its epoch and revision. */
function meta (dir: string): { epoch: string, rev: number } {
  return JSON.parse(readFileSync(join(dir, 'storage_data', 'p1_store.meta'), 'utf8')) as { epoch: string, rev: number }
}

function files (dir: string): string[] {
  const storage = join(dir, 'storage_data')
  return existsSync(storage) ? readdirSync(storage).filter(n => n.startsWith('p1_')).sort() : []
}

t.test('a failing disk write is a 507 envelope; reads keep working; writes work again once the disk does', async t => {
  const { app, dir } = await build(t)
  t.equal((await app.inject({ method: 'PUT', url: `${base}/store/a`, headers: proj, payload: 'A' })).statusCode, 200)
  await app.close()
  const again = await build(t, { dir })
  const journal = join(dir, 'storage_data', 'p1_store.journal')
  mkdirSync(journal)
  const res = await again.app.inject({ method: 'PUT', url: `${base}/store/b`, headers: proj, payload: 'B' })
  t.equal(res.statusCode, 507)
  t.same(res.json(), { status_code: 507, message: "Could not write the store of project 'p1' to disk", System: null, data: null })
  t.equal((await again.app.inject({ method: 'DELETE', url: `${base}/store/a`, headers: proj })).statusCode, 507)
  t.equal((await again.app.inject({ method: 'GET', url: `${base}/store/a/value`, headers: proj })).body, 'A', 'reads keep working')
  t.equal((await again.app.inject({ method: 'GET', url: `${base}/store/b`, headers: proj })).statusCode, 404, 'the failed write left memory as it was')
  rmSync(journal, { recursive: true })
  t.equal((await again.app.inject({ method: 'PUT', url: `${base}/store/b`, headers: proj, payload: 'B' })).statusCode, 200)
  await again.app.close()
  const third = await build(t, { dir })
  const all = (await third.app.inject({ method: 'GET', url: `${base}/store`, headers: proj })).json().data
  t.same(Object.keys(all).sort(), ['a', 'b'])
})

t.test('a failed compaction is logged as an error naming the project; writes go on and nothing is lost', async t => {
  const log: string[] = []
  const { app, dir } = await build(t, { config: testConfig(c => { c.system!.storage!.journal_max_bytes = 1024 }), log })
  // Compaction first sets the journal aside as p1_store.journal.1; a folder in that place makes it fail.
  const blocker = join(dir, 'storage_data', 'p1_store.journal.1')
  mkdirSync(join(blocker, 'inside'), { recursive: true })
  const value = 'v'.repeat(100)
  for (let i = 0; i < 20; i++) {
    t.equal((await app.inject({ method: 'PUT', url: `${base}/store/k${i}`, headers: proj, payload: value })).statusCode, 200)
  }
  const errors = log.map(l => JSON.parse(l) as { level: number, msg: string, project?: string, failures?: number, err?: { message: string } }).filter(r => r.level === 50)
  t.equal(errors.length, 1, 'one error line: the retry waits')
  t.match(errors[0], {
    project: 'p1',
    failures: 1,
    msg: "compaction of project 'p1' failed (1 in a row): its journal keeps every change and grows until a retry succeeds",
    err: { message: /p1_store\.journal\.1/ }
  })
  rmSync(blocker, { recursive: true })
  await app.close()
  const again = await build(t, { dir })
  const all = (await again.app.inject({ method: 'GET', url: `${base}/store`, headers: proj })).json().data
  t.equal(Object.keys(all).length, 20, 'every write survived')
})

t.test('switching storage.on_disk takes effect at once, both ways, and survives a restart', async t => {
  const { app, dir } = await build(t)
  const put = async (key: string, value: string): Promise<number> => (await app.inject({ method: 'PUT', url: `${base}/store/${key}`, headers: proj, payload: value })).statusCode
  t.equal(await put('a', 'A'), 200)
  t.same(files(dir), ['p1_store.journal', 'p1_store.meta'])
  const { epoch } = meta(dir)

  const off = await app.inject({ method: 'PUT', url: base, headers: proj, payload: { storage: { on_disk: false } } })
  t.equal(off.statusCode, 200)
  t.same(files(dir), [], 'off: the files are gone at once')
  t.equal(await put('b', 'B'), 200)
  t.same(files(dir), [], 'off: writes stay in memory')
  t.equal((await app.inject({ method: 'GET', url: `${base}/store/a/value`, headers: proj })).body, 'A', 'the data stayed')

  const on = await app.inject({ method: 'PUT', url: base, headers: proj, payload: { storage: { on_disk: true } } })
  t.equal(on.statusCode, 200)
  t.same(files(dir), ['p1_store.json', 'p1_store.meta'], 'on: the store is on disk at once')
  t.same(meta(dir), { epoch, rev: 2 }, 'the same epoch, at the revision of the write made in memory')
  t.same(Object.keys(JSON.parse(readFileSync(join(dir, 'storage_data', 'p1_store.json'), 'utf8'))).sort(), ['a', 'b'])
  t.equal(await put('c', 'C'), 200)
  t.same(files(dir), ['p1_store.journal', 'p1_store.json', 'p1_store.meta'])

  // Toggles with writes in flight: every acknowledged write is kept.
  const writes = Array.from({ length: 30 }, async (_, i) => await put(`w${i}`, `${i}`))
  const toggles = [
    app.inject({ method: 'PUT', url: base, headers: proj, payload: { storage: { on_disk: false } } }),
    app.inject({ method: 'PUT', url: base, headers: proj, payload: { storage: { on_disk: true } } })
  ]
  t.same((await Promise.all(toggles)).map(r => r.statusCode), [200, 200])
  t.ok((await Promise.all(writes)).every(s => s === 200))
  await app.close()
  t.same(files(dir), ['p1_store.json', 'p1_store.meta'], 'a clean stop folds the journal into the store file')
  t.equal(meta(dir).epoch, epoch, 'the epoch survives every switch')
  t.ok(meta(dir).rev >= 33, 'and the revision counts every write')
  const again = await build(t, { dir })
  const all = (await again.app.inject({ method: 'GET', url: `${base}/store`, headers: proj })).json().data
  t.equal(Object.keys(all).length, 33)
})

t.test('deleting a project while writes and compactions are in flight leaves no files; the id starts empty again', async t => {
  const config = testConfig(c => { c.system!.storage!.journal_max_bytes = 1024 })
  const { app, dir } = await build(t, { config })
  writeFileSync(join(dir, 'storage_data', 'p10_store.json'), '{}\n')
  for (let i = 0; i < 20; i++) await app.inject({ method: 'PUT', url: `${base}/store/k${i}`, headers: proj, payload: 'x'.repeat(200) })
  const writes = Array.from({ length: 60 }, async (_, i) => (await app.inject({ method: 'PUT', url: `${base}/store/n${i}`, headers: proj, payload: 'y'.repeat(100) })).statusCode)
  const del = await app.inject({ method: 'DELETE', url: base, headers: sys })
  t.equal(del.statusCode, 200)
  const statuses = await Promise.all(writes)
  t.ok(statuses.every(s => s === 200 || s === 404 || s === 401), `writes either landed before the delete or found no project (${[...new Set(statuses)].join(',')})`)
  t.same(files(dir), [], 'no file of p1 is left')
  t.ok(existsSync(join(dir, 'storage_data', 'p10_store.json')), 'a project whose id starts the same is untouched')
  const created = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: sys, payload: { id: 'p1', authentication: { enabled: false } } })
  t.equal(created.statusCode, 201)
  t.same((await app.inject({ method: 'GET', url: `${base}/store`, headers: proj })).json().data, {}, 'the new project starts empty')
})

t.test('a second app on the same storage folder is refused until the first one stops', async t => {
  const { app, dir } = await build(t)
  await t.rejects(build(t, { dir }), { name: 'StorageError', message: new RegExp(`storage folder ${join(dir, 'storage_data')} is in use by another Simple KV process \\(pid ${process.pid}`) })
  await app.close()
  const again = await build(t, { dir })
  t.equal((await again.app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
})

t.test('start-up: a corrupt journal stops it naming file and line; a torn tail is a warning for the caller', async t => {
  const dir = tempDir(t)
  const storage = join(dir, 'storage_data')
  mkdirSync(storage)
  const journal = join(storage, 'p1_store.journal')
  const good = JSON.stringify({ op: 'set', key: 'a', record: { value: 'A', created_at: 1, updated_at: 1 } }) + '\n'
  writeFileSync(journal, good + 'garbage\n' + good)
  const config = ConfigStore.fromObject(testConfig(), dir)
  await t.rejects(LocalRegistry.open(config), { name: 'StorageError', message: new RegExp(`Journal file ${journal} line 2 is not valid JSON`) })
  t.equal(readFileSync(journal, 'utf8'), good + 'garbage\n' + good)
  t.notOk(existsSync(join(storage, 'simple-kv.lock')), 'a failed start gives the lock back')

  writeFileSync(journal, good + '{"op":"se')
  const { registry, warnings } = await LocalRegistry.open(config)
  t.equal(warnings.length, 1)
  t.match(warnings[0], /line 2: dropped a torn last line/)
  t.equal((await registry.resolve('p1')?.store.get('a'))?.value, 'A')
  await registry.close()
  t.same(readdirSync(storage).sort(), ['p1_store.json', 'p1_store.meta'])
})

t.test('system.storage.durability and journal_max_bytes are part of the config schema', async t => {
  t.equal(configError(testConfig(c => { c.system!.storage = { durability: 'everysec', journal_max_bytes: 4096 } })), null)
  t.match(configError(testConfig(c => { (c.system!.storage as Record<string, unknown>).durability = 'sometimes' })), /durability/)
  t.match(configError(testConfig(c => { c.system!.storage!.journal_max_bytes = 10 })), /journal_max_bytes/)
  const settings = ConfigStore.fromObject(testConfig(), '/tmp').settings
  t.equal(settings.durability, 'always')
  t.equal(settings.journalMaxBytes, 16 * 1024 * 1024)
})

t.test('storage_usage_bytes counts the journal too', async t => {
  const { app } = await build(t)
  await app.inject({ method: 'PUT', url: `${base}/store/a`, headers: proj, payload: 'x'.repeat(500) })
  const usage = (await app.inject({ method: 'GET', url: '/status', headers: sys })).json().System.storage_usage_bytes
  t.ok(usage > 500)
})
