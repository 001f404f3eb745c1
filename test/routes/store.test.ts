import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { build, proj, testConfig } from '../support/app.js'
import { onEveryEngine } from '../support/engines.js'

const base = '/api/v1/projects/p1/store'

onEveryEngine('R9/R10 JSON bodies store any JSON value with its type and size', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const cases: Array<[string, unknown, string, number]> = [
    ['{"a":"é"}', { a: 'é' }, 'object', 10],
    ['[1,2,3]', [1, 2, 3], 'array', 7],
    ['"123"', '123', 'string', 3],
    ['123', 123, 'number', 3],
    ['true', true, 'boolean', 4],
    ['null', null, 'null', 4],
    ['""', '', 'string', 0]
  ]
  for (const [payload, value, type, size] of cases) {
    const put = await app.inject({ method: 'PUT', url: `${base}/k`, headers: { ...proj, 'content-type': 'application/json' }, payload })
    t.equal(put.statusCode, 200, payload)
    t.same(put.json(), { status_code: 200, message: "Key 'k' set successfully in project 'p1' store", System: null, data: null })
    const get = await app.inject({ method: 'GET', url: `${base}/k`, headers: proj })
    const body = get.json()
    t.equal(body.message, "Key 'k' fetched successfully from project 'p1' store")
    t.same(body.data.value, value)
    t.equal(body.data.type, type)
    t.equal(body.data.size_bytes, size, `size of ${payload}`)
    t.same(Object.keys(body.data), ['value', 'created_at', 'updated_at', 'size_bytes', 'type', 'version', 'expires_at'], 'the 1.0 record, then the 1.1 fields')
  }
})

onEveryEngine('R9 any other content type (or none) stores the body verbatim as a string', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  for (const [ct, payload] of [['text/plain', '123'], ['text/plain; charset=utf-8', '{"a":1}'], ['application/xml', '<a/>'], [undefined, 'true']] as const) {
    const headers: Record<string, string> = { ...proj }
    if (ct !== undefined) headers['content-type'] = ct
    const put = await app.inject({ method: 'PUT', url: `${base}/k`, headers, payload })
    t.equal(put.statusCode, 200, `${ct}`)
    const got = (await app.inject({ method: 'GET', url: `${base}/k`, headers: proj })).json().data
    t.equal(got.value, payload, 'stored as the string, not re-parsed (deviation)')
    t.equal(got.type, 'string')
  }
})

onEveryEngine('R9 invalid JSON and empty bodies are 400 and change nothing', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await app.inject({ method: 'PUT', url: `${base}/k`, headers: proj, payload: 'keep' })
  const bad = await app.inject({ method: 'PUT', url: `${base}/k`, headers: { ...proj, 'content-type': 'application/json' }, payload: '{oops' })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /not valid JSON/)
  for (const headers of [{ 'content-type': 'application/json' }, { 'content-type': 'text/plain' }, {}]) {
    const empty = await app.inject({ method: 'PUT', url: `${base}/k`, headers: { ...proj, ...headers }, payload: '' })
    t.equal(empty.statusCode, 400)
    t.equal(empty.json().message, 'Request body must be valid JSON or non-empty plain text')
  }
  t.equal((await app.inject({ method: 'GET', url: `${base}/k`, headers: proj })).json().data.value, 'keep')
})

t.test('R9 created_at survives updates and restarts; updated_at moves', async t => {
  const { app, dir } = await build(t)
  await app.inject({ method: 'PUT', url: `${base}/k`, headers: proj, payload: 'a' })
  await app.close()
  const file = join(dir, 'storage_data', 'p1_store.json')
  const onDisk = JSON.parse(readFileSync(file, 'utf8'))
  onDisk.k.created_at = 1000
  onDisk.k.updated_at = 1000
  writeFileSync(file, JSON.stringify(onDisk))
  const again = await build(t, { dir })
  await again.app.inject({ method: 'PUT', url: `${base}/k`, headers: proj, payload: 'b' })
  const rec = (await again.app.inject({ method: 'GET', url: `${base}/k`, headers: proj })).json().data
  t.equal(rec.created_at, 1000)
  t.ok(rec.updated_at > 1000)
  t.equal(rec.value, 'b')
})

onEveryEngine('R9 body over the limit is 413 in the envelope', async (t, engine) => {
  const { app } = await build(t, { config: engine.config(c => { c.system!.limits = { max_body_bytes: 100 } }) })
  const res = await app.inject({ method: 'PUT', url: `${base}/k`, headers: proj, payload: 'x'.repeat(101) })
  t.equal(res.statusCode, 413)
  t.equal(res.json().status_code, 413)
  t.equal((await app.inject({ method: 'GET', url: `${base}/k`, headers: proj })).statusCode, 404)
})

onEveryEngine('keys: percent-encoded slash, unicode, __proto__ and constructor are ordinary keys', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const keys = ['a/b', '__proto__', 'constructor', 'hasOwnProperty', 'ключ 🔑', 'value', 'a%b']
  for (const key of keys) {
    const url = `${base}/${encodeURIComponent(key)}`
    const put = await app.inject({ method: 'PUT', url, headers: { ...proj, 'content-type': 'application/json' }, payload: JSON.stringify({ k: key }) })
    t.equal(put.statusCode, 200, key)
    t.equal(put.json().message, `Key '${key}' set successfully in project 'p1' store`)
    const got = await app.inject({ method: 'GET', url, headers: proj })
    t.same(got.json().data.value, { k: key })
  }
  const list = (await app.inject({ method: 'GET', url: base, headers: proj })).json().data
  t.same(Object.keys(list).sort(), [...keys].sort())
  t.equal(Object.getPrototypeOf(list), Object.prototype)
  // eslint-disable-next-line no-proto -- the stored key named __proto__, an own property of the parsed JSON
  t.same(list.__proto__.value, { k: '__proto__' })
})

onEveryEngine('keys over the configured length are rejected', async (t, engine) => {
  const { app } = await build(t, { config: engine.config(c => { c.system!.limits = { max_key_bytes: 8 } }) })
  t.equal((await app.inject({ method: 'PUT', url: `${base}/12345678`, headers: proj, payload: 'v' })).statusCode, 200)
  const res = await app.inject({ method: 'PUT', url: `${base}/123456789`, headers: proj, payload: 'v' })
  t.equal(res.statusCode, 413)
  t.equal(res.json().message, 'Key is longer than the maximum of 8 bytes')
  const multi = await app.inject({ method: 'PUT', url: `${base}/${encodeURIComponent('ééééé')}`, headers: proj, payload: 'v' })
  t.equal(multi.statusCode, 413, 'length counts UTF-8 bytes')
})

onEveryEngine('a 512-byte key works with the default limits', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const key = 'é'.repeat(256)
  const res = await app.inject({ method: 'PUT', url: `${base}/${encodeURIComponent(key)}`, headers: proj, payload: 'v' })
  t.equal(res.statusCode, 200)
})

onEveryEngine('R10/R12 missing keys are 404 with the exact messages', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const get = await app.inject({ method: 'GET', url: `${base}/nope`, headers: proj })
  t.equal(get.statusCode, 404)
  t.same(get.json(), { status_code: 404, message: "Key 'nope' not found in project 'p1' store", System: null, data: null })
  const del = await app.inject({ method: 'DELETE', url: `${base}/nope`, headers: proj })
  t.equal(del.statusCode, 404)
  t.equal(del.json().message, "Key 'nope' not found in project 'p1' store")
  const raw = await app.inject({ method: 'GET', url: `${base}/nope/value`, headers: proj })
  t.equal(raw.statusCode, 404)
  t.equal(raw.json().message, "Key 'nope' not found in project 'p1' store")
})

onEveryEngine('R11 raw value: strings as text/plain, everything else as JSON, with nosniff', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const cases: Array<[string, string | undefined, string, string]> = [
    ['<script>alert(1)</script>', 'text/plain', 'text/plain; charset=utf-8', '<script>alert(1)</script>'],
    ['{"a":[1,"é"]}', 'application/json', 'application/json; charset=utf-8', '{"a":[1,"é"]}'],
    ['42', 'application/json', 'application/json; charset=utf-8', '42'],
    ['false', 'application/json', 'application/json; charset=utf-8', 'false'],
    ['null', 'application/json', 'application/json; charset=utf-8', 'null'],
    ['"quoted"', 'application/json', 'text/plain; charset=utf-8', 'quoted']
  ]
  for (const [payload, ct, expectedType, expectedBody] of cases) {
    await app.inject({ method: 'PUT', url: `${base}/k`, headers: { ...proj, ...(ct === undefined ? {} : { 'content-type': ct }) }, payload })
    const res = await app.inject({ method: 'GET', url: `${base}/k/value`, headers: proj })
    t.equal(res.statusCode, 200, payload)
    t.equal(res.headers['content-type'], expectedType, payload)
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.equal(res.body, expectedBody)
  }
})

onEveryEngine('R8 list needs keys_and_values_discoverable', async (t, engine) => {
  const { app } = await build(t, { config: engine.config(c => { c.projects!.push({ id: 'secret', authentication: { enabled: false }, security: { keys_and_values_discoverable: false } }) }) })
  const empty = await app.inject({ method: 'GET', url: base, headers: proj })
  t.same(empty.json(), { status_code: 200, message: '', System: null, data: {} })
  await app.inject({ method: 'PUT', url: `${base}/a`, headers: proj, payload: '1' })
  const one = await app.inject({ method: 'GET', url: base, headers: proj })
  t.same(Object.keys(one.json().data), ['a'])
  t.equal(one.json().data.a.value, '1')
  const hidden = await app.inject({ method: 'GET', url: '/api/v1/projects/secret/store' })
  t.equal(hidden.statusCode, 403)
  t.equal(hidden.json().message, 'Retrieving all keys and values is disabled for this project')
})

t.test('R12/R13 delete a key and clear the store, on disk too', async t => {
  const { app, dir } = await build(t)
  for (const k of ['a', 'b', 'c']) await app.inject({ method: 'PUT', url: `${base}/${k}`, headers: proj, payload: k })
  const del = await app.inject({ method: 'DELETE', url: `${base}/a`, headers: proj })
  t.same(del.json(), { status_code: 200, message: "Key 'a' deleted successfully from project 'p1' store", System: null, data: null })
  await app.close()
  const file = join(dir, 'storage_data', 'p1_store.json')
  t.same(Object.keys(JSON.parse(readFileSync(file, 'utf8'))), ['b', 'c'], 'after a stop the store file holds the store')
  const again = await build(t, { dir })
  for (let i = 0; i < 2; i++) {
    const clear = await again.app.inject({ method: 'DELETE', url: base, headers: proj })
    t.equal(clear.statusCode, 200, 'also when already empty')
    t.equal(clear.json().message, "All key-value pairs deleted successfully from project 'p1' store")
  }
  await again.app.close()
  t.same(JSON.parse(readFileSync(file, 'utf8')), {})
})

t.test('in-memory projects keep no file', async t => {
  const { app, dir } = await build(t, { config: testConfig(c => { c.projects![0].storage = { on_disk: false } }) })
  await app.inject({ method: 'PUT', url: `${base}/k`, headers: proj, payload: 'v' })
  t.equal((await app.inject({ method: 'GET', url: `${base}/k/value`, headers: proj })).body, 'v')
  t.same(readdirSync(join(dir, 'storage_data')).filter(f => f.startsWith('p1_')), [])
})

onEveryEngine('concurrent writes to one project are all kept, across a restart', async (t, engine) => {
  const { app, dir } = await build(t, { config: engine.config() })
  const results = await Promise.all(Array.from({ length: 50 }, async (_, i) =>
    await app.inject({ method: 'PUT', url: `${base}/k${i}`, headers: proj, payload: `v${i}` })))
  t.ok(results.every(r => r.statusCode === 200))
  await app.close()
  if (engine.kind === 'disk') {
    const onDisk = JSON.parse(readFileSync(join(dir, 'storage_data', 'p1_store.json'), 'utf8'))
    t.equal(Object.keys(onDisk).length, 50)
    t.equal(onDisk.k49.value, 'v49')
  }
  const again = await build(t, { dir })
  const all = (await again.app.inject({ method: 'GET', url: base, headers: proj })).json().data
  t.equal(Object.keys(all).length, engine.persistent ? 50 : 0, engine.persistent ? 'every write kept' : 'a memory-only project restarts empty')
  if (engine.persistent) t.equal(all.k49.value, 'v49')
})
