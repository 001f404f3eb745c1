import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import t from 'tap'
import { build, proj, sys } from './support/app.js'

function walk (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? [join(dir, e.name), ...walk(join(dir, e.name))] : [join(dir, e.name)])
}

t.test('config and data files are 0600, the storage folder 0700', async t => {
  const { app, dir, configPath } = await build(t)
  await app.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/k', headers: proj, payload: 'v' })
  await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, 'content-type': 'application/json' }, payload: { id: 'p2' } })
  await app.close()
  t.equal(statSync(configPath).mode & 0o777, 0o600, 'config.json')
  const storage = join(dir, 'storage_data')
  t.equal(statSync(storage).mode & 0o777, 0o700, 'storage folder')
  const files = walk(storage)
  t.ok(files.some(f => f.endsWith('p1_store.json')))
  for (const file of files) t.equal(statSync(file).mode & 0o777, 0o600, relative(dir, file))
})

t.test('no id, key or header makes the server write outside its folder', async t => {
  const { app, dir } = await build(t)
  const hostile = ['..', '../..', '../../etc/passwd', '..%2F..%2Fx', '%2e%2e', '/etc/passwd', 'a/../../b', '\u0000', 'C:\\x', '~root']
  for (const value of hostile) {
    const enc = encodeURIComponent(value)
    await app.inject({ method: 'PUT', url: `/api/v1/projects/p1/store/${enc}`, headers: proj, payload: 'x' })
    await app.inject({ method: 'PUT', url: `/api/v1/projects/${enc}/store/k`, headers: proj, payload: 'x' })
    const created = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, 'content-type': 'application/json' }, payload: { id: value } })
    t.equal(created.statusCode, 400, `id ${JSON.stringify(value)} refused`)
    await app.inject({ method: 'GET', url: '/status', headers: { ...sys, 'x-forwarded-for': value, host: value } })
  }
  const got = await app.inject({ method: 'GET', url: `/api/v1/projects/p1/store/${encodeURIComponent('../../etc/passwd')}`, headers: proj })
  t.equal(got.json().data.value, 'x', 'a key with dots is an ordinary key')
  await app.close()
  const files = walk(dir).map(f => relative(dir, f)).sort()
  t.ok(files.every(f => f === 'config.json' || f === 'storage_data' || f.startsWith('storage_data/p1_')), files.join(', '))
})
