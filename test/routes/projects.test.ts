import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigStore } from '../../lib/config.js'
import { bearer, build, proj, PROJECT_KEY, sys, testConfig } from '../support/app.js'
import { onEveryEngine } from '../support/engines.js'

const json = { 'content-type': 'application/json' }

function projectFiles (dir: string, id: string): string[] {
  return readdirSync(join(dir, 'storage_data')).filter(f => f.startsWith(`${id}_`))
}

onEveryEngine('R2 lists projects without ids or secrets, with System', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const res = await app.inject({ method: 'GET', url: '/api/v1/projects', headers: sys })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.message, 'Project listing fetched successfully')
  t.ok(body.System)
  t.same(body.data, {
    p1: {
      storage: { on_disk: engine.onDisk },
      authentication: { enabled: true, save_api_key_to_config: true },
      security: { keys_and_values_discoverable: true }
    }
  })
  t.notMatch(res.body, /api_key"|api_key_hash|"id"/)
  t.notMatch(res.body, PROJECT_KEY)
})

onEveryEngine('R2 is 403 with System when project_discoverable is false', async (t, engine) => {
  const { app } = await build(t, { config: engine.config(c => { c.system!.security = { project_discoverable: false } }) })
  const res = await app.inject({ method: 'GET', url: '/api/v1/projects', headers: sys })
  t.equal(res.statusCode, 403)
  t.equal(res.json().message, 'Project listing is disabled')
  t.ok(res.json().System)
})

onEveryEngine('a project key never opens a system route', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  for (const [method, url] of [['GET', '/status'], ['GET', '/api/v1/projects'], ['POST', '/api/v1/projects'], ['DELETE', '/api/v1/projects/p1'], ['POST', '/api/v1/projects/p1/config/regenerate-api-key']] as const) {
    const res = await app.inject({ method, url, headers: proj })
    t.equal(res.statusCode, 401, `${method} ${url}`)
    t.equal(res.json().System, null)
  }
})

onEveryEngine('the system key does not open project data', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  for (const url of ['/api/v1/projects/p1', '/api/v1/projects/p1/store', '/api/v1/projects/p1/store/k']) {
    const res = await app.inject({ method: 'GET', url, headers: sys })
    t.equal(res.statusCode, 401, url)
  }
})

onEveryEngine('R3 create: checks in the contract order with exact messages', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const post = async (payload: string | undefined, headers: Record<string, string> = json) =>
    await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...headers }, payload })
  const notJson = 'Request body must be valid JSON (Content-Type: application/json)'
  for (const [payload, headers] of [['{bad', json], ['[1,2]', json], ['"str"', json], ['null', json], ['{"id":"x"}', { 'content-type': 'text/plain' }], [undefined, {}], ['', json]] as const) {
    const res = await post(payload, headers)
    t.equal(res.statusCode, 400, `body ${payload}`)
    t.equal(res.json().message, notJson)
    t.ok(res.json().System, 'System after the key check passed')
  }
  let res = await post('{"storage":{}}')
  t.equal(res.json().message, "Project 'id' is required in the request body")
  for (const bad of ['..', '../x', 'a b', '', 'x'.repeat(65), 'é', 5]) {
    res = await post(JSON.stringify({ id: bad }))
    t.equal(res.statusCode, 400)
    t.match(res.json().message, /Project id must be 1 to 64 characters/, `id ${JSON.stringify(bad)}`)
  }
  res = await post('{"id":"p1","bogus":true}')
  t.equal(res.json().message, "Project with ID 'p1' already exists in configuration.", 'duplicate is checked before fields')
  res = await post('{"id":"p2","bogus":true}')
  t.equal(res.statusCode, 400)
  t.equal(res.json().message, "Unknown field 'bogus'")
  res = await post('{"id":"p2","storage":{"on_disk":"yes"}}')
  t.equal(res.statusCode, 400)
  t.match(res.json().message, /storage\.on_disk/)
  res = await post('{"id":"p2","security":5}')
  t.match(res.json().message, /'security'/)
})

onEveryEngine('R3 create with auth on returns a 43-character key that works, and saves only its hash', async (t, engine) => {
  const { app, configPath } = await build(t, { config: engine.config() })
  const res = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'p2', authentication: { api_key: 'ignored', api_key_hash: 'ignored' } } })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.equal(body.message, 'Project created successfully. Store the returned API key securely as it may not be shown again.')
  t.ok(body.System)
  const key = body.data.new_api_key as string
  t.match(key, /^[A-Za-z0-9_-]{43}$/)
  const saved = await engine.savedProject(configPath, 'p2') as any
  t.match(saved.authentication.api_key_hash, /^\$argon2id\$v=19\$/)
  t.equal(saved.authentication.api_key, null, 'plaintext not saved by default')
  t.same(saved.storage, { on_disk: true })
  t.same(saved.security, { keys_and_values_discoverable: true })
  const ok = await app.inject({ method: 'GET', url: '/api/v1/projects/p2', headers: bearer(key) })
  t.equal(ok.statusCode, 200)
  const wrong = await app.inject({ method: 'GET', url: '/api/v1/projects/p2', headers: bearer('ignored') })
  t.equal(wrong.statusCode, 401)
})

onEveryEngine('R3 save_api_key_to_config stores the plaintext too', async (t, engine) => {
  const { app, configPath } = await build(t, { config: engine.config() })
  const res = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'p2', authentication: { save_api_key_to_config: true } } })
  const key = res.json().data.new_api_key
  const saved = await engine.savedProject(configPath, 'p2') as any
  t.equal(saved.authentication.api_key, key)
})

onEveryEngine('R3 create with auth off: 201, data null, project open to anyone', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const res = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'open', authentication: { enabled: false }, storage: { on_disk: false } } })
  t.equal(res.statusCode, 201)
  t.equal(res.json().message, 'Project created successfully. No API key generated (authentication for this project may be disabled).')
  t.equal(res.json().data, null)
  const put = await app.inject({ method: 'PUT', url: '/api/v1/projects/open/store/k', payload: 'v' })
  t.equal(put.statusCode, 200)
})

onEveryEngine('R3 projects never share settings objects (creating B keeps A\'s key)', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const a = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'a' } })
  const b = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'b' } })
  const keyA = a.json().data.new_api_key
  const keyB = b.json().data.new_api_key
  t.not(keyA, keyB)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/a', headers: bearer(keyA) })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/b', headers: bearer(keyB) })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/a', headers: bearer(keyB) })).statusCode, 401)
})

onEveryEngine('R4 regenerate: new key works, old key stops at once, 404 and 409', async (t, engine) => {
  const { app, configPath } = await build(t, { config: engine.config(c => { c.projects!.push({ id: 'noauth', authentication: { enabled: false } }) }) })
  const before = await app.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: proj })
  t.equal(before.statusCode, 200)
  const res = await app.inject({ method: 'POST', url: '/api/v1/projects/p1/config/regenerate-api-key', headers: sys })
  t.equal(res.statusCode, 200)
  t.equal(res.json().message, "API key regenerated successfully for project 'p1'")
  t.ok(res.json().System)
  const key = res.json().data.new_api_key
  t.match(key, /^[A-Za-z0-9_-]{43}$/)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: proj })).statusCode, 401, 'old key stops at once')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: bearer(key) })).statusCode, 200)
  t.equal((await engine.savedProject(configPath, 'p1') as any).authentication.api_key, key, 'save_api_key_to_config keeps the plaintext')
  const missing = await app.inject({ method: 'POST', url: '/api/v1/projects/nope/config/regenerate-api-key', headers: sys })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().message, "Project with id 'nope' not found")
  const off = await app.inject({ method: 'POST', url: '/api/v1/projects/noauth/config/regenerate-api-key', headers: sys })
  t.equal(off.statusCode, 409)
  t.equal(off.json().message, 'Failed to regenerate API key for the project (authentication may be disabled for `noauth`)')
})

onEveryEngine('R4 a cached (already verified) hashed key is dropped on regenerate', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const created = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'h' } })
  const key = created.json().data.new_api_key
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/h', headers: bearer(key) })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/h', headers: bearer(key) })).statusCode, 200)
  await app.inject({ method: 'POST', url: '/api/v1/projects/h/config/regenerate-api-key', headers: sys })
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/h', headers: bearer(key) })).statusCode, 401)
})

onEveryEngine('R5 delete: removes config and files; a new project with the id starts empty', async (t, engine) => {
  const { app, dir, configPath } = await build(t, { config: engine.config() })
  await app.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/k', headers: proj, payload: 'v' })
  t.ok((await engine.leftovers(dir, 'p1')).length > 0 || !engine.persistent, 'the project has files (or Redis keys)')
  const res = await app.inject({ method: 'DELETE', url: '/api/v1/projects/p1', headers: sys })
  t.equal(res.statusCode, 200)
  t.equal(res.json().message, "Project 'p1' deleted successfully")
  t.ok(res.json().System)
  t.same(await engine.leftovers(dir, 'p1'), [], 'every file (or Redis key) of the project is gone')
  t.equal(await engine.savedProject(configPath, 'p1'), undefined, 'the project is gone from where projects are kept')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p1/store/k', headers: proj })).statusCode, 404)
  const again = await app.inject({ method: 'DELETE', url: '/api/v1/projects/p1', headers: sys })
  t.equal(again.statusCode, 404)
  t.equal(again.json().message, "Project with id 'p1' not found")
  const created = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'p1' } })
  const list = await app.inject({ method: 'GET', url: '/api/v1/projects/p1/store', headers: bearer(created.json().data.new_api_key) })
  t.same(list.json().data, {})
})

onEveryEngine('R5 delete while writes are in flight leaves no files behind', async (t, engine) => {
  const { app, dir } = await build(t, { config: engine.config() })
  const writes = Array.from({ length: 30 }, async (_, i) => await app.inject({ method: 'PUT', url: `/api/v1/projects/p1/store/k${i}`, headers: proj, payload: `v${i}` }))
  const del = app.inject({ method: 'DELETE', url: '/api/v1/projects/p1', headers: sys })
  const results = await Promise.all(writes)
  t.equal((await del).statusCode, 200)
  for (const r of results) t.ok([200, 404, 401].includes(r.statusCode), `write answered ${r.statusCode}`)
  t.same(await engine.leftovers(dir, 'p1'), [], 'nothing of the project is left')
})

onEveryEngine('R6 details need the project key and show the config without secrets', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const res = await app.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: proj })
  t.equal(res.statusCode, 200)
  t.same(res.json(), {
    status_code: 200,
    message: "Project 'p1' details fetched successfully",
    System: null,
    data: { id: 'p1', storage: { on_disk: engine.onDisk }, authentication: { enabled: true, save_api_key_to_config: true }, security: { keys_and_values_discoverable: true } }
  })
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p1' })).statusCode, 401, 'no anonymous reads (deviation)')
})

onEveryEngine('R7 update: messages, order and effect', async (t, engine) => {
  const { app, configPath } = await build(t, { config: engine.config() })
  const put = async (payload: unknown, headers: Record<string, string> = json) =>
    await app.inject({ method: 'PUT', url: '/api/v1/projects/p1', headers: { ...proj, ...headers }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) })
  let res = await put({ id: 'x', authentication: { enabled: false } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().message, 'Updating authentication settings via this route is not allowed. Use the regenerate API key route instead.')
  res = await put({ id: 'x' })
  t.equal(res.json().message, 'Updating project ID via this route is not allowed.')
  res = await put('{not json')
  t.equal(res.json().message, 'Request body must be valid JSON (Content-Type: application/json)')
  res = await put({ storage: 5 })
  t.equal(res.statusCode, 400)
  t.match(res.json().message, /'storage'/)
  res = await put({ colour: 'red' })
  t.equal(res.json().message, "Unknown field 'colour'")
  res = await put({ security: { keys_and_values_discoverable: false } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status_code: 200, message: "Project 'p1' updated successfully", System: null, data: null })
  t.equal((await engine.savedProject(configPath, 'p1') as any).security.keys_and_values_discoverable, false)
  const list = await app.inject({ method: 'GET', url: '/api/v1/projects/p1/store', headers: proj })
  t.equal(list.statusCode, 403, 'takes effect at once')
  t.equal((await engine.savedProject(configPath, 'p1') as any).authentication.api_key, PROJECT_KEY, 'other settings kept')
  // Every accepted update leaves a config that loads.
  await t.resolves(ConfigStore.load(configPath))
})

t.test('R7 storage.on_disk switches both ways at once', async t => {
  const { app, dir } = await build(t)
  await app.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/k', headers: proj, payload: 'v1' })
  let res = await app.inject({ method: 'PUT', url: '/api/v1/projects/p1', headers: { ...proj, ...json }, payload: { storage: { on_disk: false } } })
  t.equal(res.statusCode, 200)
  t.same(projectFiles(dir, 'p1'), [], 'memory-only project keeps no file')
  await app.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/k2', headers: proj, payload: 'v2' })
  t.same(projectFiles(dir, 'p1'), [])
  res = await app.inject({ method: 'PUT', url: '/api/v1/projects/p1', headers: { ...proj, ...json }, payload: { storage: { on_disk: true } } })
  t.equal(res.statusCode, 200)
  const onDisk = JSON.parse(readFileSync(join(dir, 'storage_data', 'p1_store.json'), 'utf8'))
  t.same(Object.keys(onDisk).sort(), ['k', 'k2'], 'switching on writes the whole store')
  const got = await app.inject({ method: 'GET', url: '/api/v1/projects/p1/store/k2', headers: proj })
  t.equal(got.json().data.value, 'v2')
})

t.test('unknown project: 404 when discoverable, the same 401 as a wrong key when not', async t => {
  const open = await build(t)
  for (const url of ['/api/v1/projects/ghost', '/api/v1/projects/ghost/store', '/api/v1/projects/ghost/store/k', '/api/v1/projects/ghost/store/k/value']) {
    const res = await open.app.inject({ method: 'GET', url, headers: proj })
    t.equal(res.statusCode, 404, url)
    t.equal(res.json().message, "Project with id 'ghost' not found")
  }
  const hidden = await build(t, { config: testConfig(c => { c.system!.security = { project_discoverable: false } }) })
  const missing = await hidden.app.inject({ method: 'GET', url: '/api/v1/projects/ghost/store/k', headers: proj })
  const wrongKey = await hidden.app.inject({ method: 'GET', url: '/api/v1/projects/p1/store/k', headers: bearer('wrong') })
  t.equal(missing.statusCode, 401)
  t.same(missing.json(), wrongKey.json(), 'existence is not revealed')
  t.same(missing.headers['content-length'], wrongKey.headers['content-length'])
})
