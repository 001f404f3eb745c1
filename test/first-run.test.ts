import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { bearer, build } from './support/app.js'

t.test('first run: default config with first_project, keys shown once, only hashes saved', async t => {
  const { app, configPath, generated, dir } = await build(t, { config: null })
  const saved = JSON.parse(readFileSync(configPath, 'utf8'))
  t.same(saved.projects.map((p: any) => p.id), ['first_project'])
  t.same(generated.map(g => [g.scope, g.id]), [['system', 'system'], ['project', 'first_project']])
  const [systemKey, projectKey] = generated.map(g => g.key)
  t.match(systemKey, /^[A-Za-z0-9_-]{43}$/)
  t.match(saved.system.authentication.api_key_hash, /^\$argon2id\$/)
  t.match(saved.projects[0].authentication.api_key_hash, /^\$argon2id\$/)
  const text = readFileSync(configPath, 'utf8')
  t.notMatch(text, systemKey, 'no plaintext system key in config.json')
  t.notMatch(text, projectKey, 'no plaintext project key in config.json')
  t.equal((await app.inject({ method: 'GET', url: '/status', headers: bearer(systemKey) })).statusCode, 200)
  t.equal((await app.inject({ method: 'PUT', url: '/api/v1/projects/first_project/store/k', headers: bearer(projectKey), payload: 'v' })).statusCode, 200)
  await app.close()

  const again = await build(t, { dir })
  t.same(again.generated, [], 'a second start generates nothing')
  t.equal((await again.app.inject({ method: 'GET', url: '/api/v1/projects/first_project/store/k/value', headers: bearer(projectKey) })).body, 'v')
  t.ok(join(dir, 'storage_data'))
})
