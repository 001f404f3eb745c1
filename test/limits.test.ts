import t from 'tap'
import { build, proj, testConfig } from './support/app.js'
import { onEveryEngine } from './support/engines.js'

const base = '/api/v1/projects/p1/store'
const json = { ...proj, 'content-type': 'application/json' }

onEveryEngine('value size per record', async (t, engine) => {
  const { app } = await build(t, { config: engine.config(c => { c.system!.limits = { max_value_bytes: 10 } }) })
  t.equal((await app.inject({ method: 'PUT', url: `${base}/a`, headers: proj, payload: 'x'.repeat(10) })).statusCode, 200)
  const big = await app.inject({ method: 'PUT', url: `${base}/a`, headers: proj, payload: 'y'.repeat(11) })
  t.equal(big.statusCode, 413)
  t.same(big.json(), { status_code: 413, message: 'Value is larger than the maximum of 10 bytes', System: null, data: null })
  const jsonBig = await app.inject({ method: 'PUT', url: `${base}/b`, headers: json, payload: '{"a":"123456"}' })
  t.equal(jsonBig.statusCode, 413, 'JSON values count their compact size (14 bytes)')
  t.equal((await app.inject({ method: 'GET', url: `${base}/a/value`, headers: proj })).body, 'x'.repeat(10), 'nothing half-written')
  t.equal((await app.inject({ method: 'GET', url: `${base}/b`, headers: proj })).statusCode, 404)
})

onEveryEngine('keys per project', async (t, engine) => {
  const { app } = await build(t, { config: engine.config(c => { c.system!.limits = { max_keys_per_project: 3 } }) })
  for (const k of ['a', 'b', 'c']) t.equal((await app.inject({ method: 'PUT', url: `${base}/${k}`, headers: proj, payload: k })).statusCode, 200)
  const fourth = await app.inject({ method: 'PUT', url: `${base}/d`, headers: proj, payload: 'd' })
  t.equal(fourth.statusCode, 413)
  t.equal(fourth.json().message, "Project 'p1' already holds the maximum of 3 keys")
  t.equal((await app.inject({ method: 'PUT', url: `${base}/a`, headers: proj, payload: 'updated' })).statusCode, 200, 'updating an existing key is fine')
  await app.inject({ method: 'DELETE', url: `${base}/b`, headers: proj })
  t.equal((await app.inject({ method: 'PUT', url: `${base}/d`, headers: proj, payload: 'd' })).statusCode, 200, 'room again after a delete')
  const list = (await app.inject({ method: 'GET', url: base, headers: proj })).json().data
  t.same(Object.keys(list).sort(), ['a', 'c', 'd'])
})

onEveryEngine('keys per project hold under concurrent writes', async (t, engine) => {
  const { app } = await build(t, { config: engine.config(c => { c.system!.limits = { max_keys_per_project: 10 } }) })
  const results = await Promise.all(Array.from({ length: 40 }, async (_, i) =>
    await app.inject({ method: 'PUT', url: `${base}/k${i}`, headers: proj, payload: 'v' })))
  t.equal(results.filter(r => r.statusCode === 200).length, 10)
  t.equal(results.filter(r => r.statusCode === 413).length, 30)
  t.equal(Object.keys((await app.inject({ method: 'GET', url: base, headers: proj })).json().data).length, 10)
})

onEveryEngine('value bytes per project', async (t, engine) => {
  const { app } = await build(t, { config: engine.config(c => { c.system!.limits = { max_bytes_per_project: 20 } }) })
  t.equal((await app.inject({ method: 'PUT', url: `${base}/a`, headers: proj, payload: 'x'.repeat(15) })).statusCode, 200)
  const over = await app.inject({ method: 'PUT', url: `${base}/b`, headers: proj, payload: 'x'.repeat(6) })
  t.equal(over.statusCode, 413)
  t.equal(over.json().message, "Project 'p1' would exceed its maximum of 20 bytes of values")
  t.equal((await app.inject({ method: 'PUT', url: `${base}/a`, headers: proj, payload: 'x'.repeat(20) })).statusCode, 200, 'replacing counts the difference')
  await app.inject({ method: 'DELETE', url: base, headers: proj })
  t.equal((await app.inject({ method: 'PUT', url: `${base}/b`, headers: proj, payload: 'x'.repeat(20) })).statusCode, 200, 'a clear frees everything')
})

t.test('the limits are in the config schema and refuse bad values', async t => {
  await t.rejects(build(t, { config: testConfig(c => { (c.system as any).limits = { max_keys_per_project: 0 } }) }), /max_keys_per_project/)
})
