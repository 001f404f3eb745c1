import { pbkdf2Sync } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { build } from './support/app.js'
import { tempDir } from './support/temp.js'

function pykvHash (key: string, salt: Buffer, iterations = 200000): string {
  return `pbkdf2_sha256$${iterations}$${salt.toString('base64url')}$${pbkdf2Sync(key, salt, iterations, 32, 'sha256').toString('base64url')}`
}

t.test('a Simple-PyKV folder is served unchanged', async t => {
  const dir = tempDir(t)
  // config.json as Simple-PyKV 1.0 writes it: version 1, cache_in_memory, null keys, pbkdf2 hashes.
  const config = {
    version: 1,
    server_port: 23849,
    server_host: '0.0.0.0',
    system: {
      storage: { persistent_file_path: 'storage_data' },
      authentication: { enabled: true, save_api_key_to_config: false, api_key: null, api_key_hash: 'pbkdf2_sha256$200000$AAECAwQFBgcICQoLDA0ODw$19rnQXd3-DvSvC715pTHJJd2x7gwTDo35UZrH4tpIbI' },
      security: { project_discoverable: true }
    },
    projects: [{
      id: 'first_project',
      storage: { on_disk: true, cache_in_memory: true },
      authentication: { enabled: true, save_api_key_to_config: false, api_key: null, api_key_hash: pykvHash('project-legacy-key', Buffer.from('0123456789abcdef')) },
      security: { keys_and_values_discoverable: true }
    }]
  }
  const configText = JSON.stringify(config, null, 2)
  writeFileSync(join(dir, 'config.json'), configText)
  mkdirSync(join(dir, 'storage_data'))
  // The store file as Simple-PyKV writes it: indent 2, non-ASCII kept, no "type".
  const store = {
    greeting: { created_at: 1764992680, updated_at: 1765075342, size_bytes: 5, value: 'hello' },
    profile: { created_at: 1764992680, updated_at: 1764992680, size_bytes: 14, value: { a: 'é' } },
    count: { created_at: 1764992680, updated_at: 1764992680, size_bytes: 2, value: 42 },
    flags: { created_at: 1764992680, updated_at: 1764992680, size_bytes: 12, value: [true, null] }
  }
  writeFileSync(join(dir, 'storage_data', 'first_project_store.json'), JSON.stringify(store, null, 2))

  const { app, generated } = await build(t, { dir })
  t.same(generated, [], 'no new keys: the old hashes are used')
  t.equal(readFileSync(join(dir, 'config.json'), 'utf8'), configText, 'config.json is not rewritten on start')
  const status = await app.inject({ method: 'GET', url: '/status', headers: { 'x-api-key': 'sys-test-key' } })
  t.equal(status.statusCode, 200)
  const headers = { 'api-key': 'project-legacy-key' }
  const rec = await app.inject({ method: 'GET', url: '/api/v1/projects/first_project/store/greeting', headers })
  t.same(rec.json().data, { value: 'hello', created_at: 1764992680, updated_at: 1765075342, size_bytes: 5, type: 'string', version: 0, expires_at: null },
    'the 1.0 record, and the 1.1 fields a file without them loads with: version 0, no expiry')
  t.match(rec.headers.etag, /^"[A-Za-z0-9_-]+\.0"$/, 'the epoch\'s legacy ETag')
  const profile = (await app.inject({ method: 'GET', url: '/api/v1/projects/first_project/store/profile', headers })).json().data
  t.equal(profile.type, 'object', 'type computed on load')
  t.equal(profile.size_bytes, 10, 'size recomputed as UTF-8 bytes of compact JSON')
  const all = (await app.inject({ method: 'GET', url: '/api/v1/projects/first_project/store', headers })).json().data
  t.same(Object.keys(all), ['greeting', 'profile', 'count', 'flags'])
  t.same(all.flags.value, [true, null])
  t.equal(all.count.type, 'number')

  // A write keeps the Simple-PyKV format, readable back by a plain JSON parser.
  await app.inject({ method: 'PUT', url: '/api/v1/projects/first_project/store/new', headers, payload: 'x' })
  await app.close()
  const onDisk = JSON.parse(readFileSync(join(dir, 'storage_data', 'first_project_store.json'), 'utf8'))
  const { version, expires_at: expiresAt, tag, ...greeting } = onDisk.greeting
  t.same(greeting, { value: 'hello', created_at: 1764992680, updated_at: 1765075342, size_bytes: 5, type: 'string' }, 'the 1.0 fields as they were')
  t.same({ version, expiresAt, tag: `"${tag as string}"` }, { version: 0, expiresAt: null, tag: rec.headers.etag }, 'plus the 1.1 fields, which 1.0 readers ignore')
  t.equal(onDisk.new.value, 'x')
})

t.test('a store file that does not parse stops start-up and is left untouched', async t => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ system: { authentication: { enabled: false } }, projects: [{ id: 'p', authentication: { enabled: false } }] }))
  mkdirSync(join(dir, 'storage_data'))
  const file = join(dir, 'storage_data', 'p_store.json')
  for (const text of ['{"a": {"value": 1', '[1,2]', '{"a": 5}']) {
    writeFileSync(file, text)
    await t.rejects(build(t, { dir }), /p_store\.json/)
    t.equal(readFileSync(file, 'utf8'), text)
  }
})
