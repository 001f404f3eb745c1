import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import app, { serverOptions } from '../app.js'
import { proj, sys, testConfig } from './support/app.js'
import { tempDir } from './support/temp.js'

t.test('the app embeds under a prefix without touching the host', async t => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'config.json'), JSON.stringify(testConfig()))
  const host = Fastify({ ...serverOptions() })
  t.teardown(async () => { await host.close() })
  const hostHookSeen: string[] = []
  host.addHook('onRequest', async (request) => { hostHookSeen.push(request.url) })
  host.setErrorHandler(async (error: Error, _request, reply) => await reply.code(418).send({ host: true, error: error.message }))
  host.get('/ping', async () => ({ pong: true }))
  host.get('/fail', async () => { throw new Error('host failure') })
  await host.register(app, { prefix: '/kv', configPath: join(dir, 'config.json') })
  await host.ready()

  const health = await host.inject({ method: 'GET', url: '/kv/health' })
  t.same(health.json(), { status_code: 200, message: 'OK', System: null, data: null })
  const put = await host.inject({ method: 'PUT', url: '/kv/api/v1/projects/p1/store/k', headers: proj, payload: 'v' })
  t.equal(put.statusCode, 200)
  const raw = await host.inject({ method: 'GET', url: '/kv/api/v1/projects/p1/store/k/value', headers: proj })
  t.equal(raw.body, 'v')
  const status = await host.inject({ method: 'GET', url: '/kv/status', headers: sys })
  t.ok(status.json().System)
  const missing = await host.inject({ method: 'GET', url: '/kv/nope' })
  t.same(missing.json(), { status_code: 404, message: 'Route GET:/kv/nope not found', System: null, data: null })
  const wrongMethod = await host.inject({ method: 'PATCH', url: '/kv/status' })
  t.equal(wrongMethod.statusCode, 405)
  t.equal((await host.inject({ method: 'GET', url: '/health' })).statusCode, 404, 'nothing leaks to the root')

  // The host keeps its own routes, hooks and error handler.
  t.same((await host.inject({ method: 'GET', url: '/ping' })).json(), { pong: true })
  const fail = await host.inject({ method: 'GET', url: '/fail' })
  t.equal(fail.statusCode, 418)
  t.same(fail.json(), { host: true, error: 'host failure' })
  t.ok(hostHookSeen.includes('/ping') && hostHookSeen.includes('/kv/health'), 'host hooks still run')
  t.notOk(host.hasDecorator('kv'), 'app decorators stay inside the app')
  t.notOk(host.hasRequestDecorator('kvProject'))

  // Swagger UI and its assets load under the prefix.
  const docs = await host.inject({ method: 'GET', url: '/kv/docs' })
  t.ok([200, 302].includes(docs.statusCode))
  const index = await host.inject({ method: 'GET', url: '/kv/docs/' })
  t.equal(index.statusCode, 200)
  t.match(index.headers['content-type'], /text\/html/)
  const assets = [...index.body.matchAll(/(?:src|href)="([^"]+)"/g)].map(m => m[1]).filter(u => !u.startsWith('http'))
  t.ok(assets.length >= 2, `index references assets: ${assets.join(', ')}`)
  for (const asset of assets) {
    const url = new URL(asset, 'http://host/kv/docs/').pathname
    t.ok(url.startsWith('/kv/'), `${asset} resolves under the prefix`)
    t.equal((await host.inject({ method: 'GET', url })).statusCode, 200, url)
  }
  const initializer = await host.inject({ method: 'GET', url: '/kv/docs/static/swagger-initializer.js' })
  t.equal(initializer.statusCode, 200)
  const spec = await host.inject({ method: 'GET', url: '/kv/openapi.json' })
  t.equal(spec.json().servers[0].url, '/kv', 'the document\'s server is the prefix')
  t.ok(spec.json().paths['/api/v1/projects/{id}/store/{key}'], 'and its paths are relative to it')
  t.ok((await host.inject({ method: 'GET', url: '/kv/docs/json' })).statusCode === 200)
})

t.test('docs: false leaves /openapi.json and /docs to the host', async t => {
  const dir = tempDir(t)
  const host = Fastify({ ...serverOptions() })
  t.teardown(async () => { await host.close() })
  await host.register(app, { prefix: '/kv', config: testConfig(), baseDir: dir, docs: false })
  t.equal((await host.inject({ method: 'GET', url: '/kv/openapi.json' })).statusCode, 404)
  t.equal((await host.inject({ method: 'GET', url: '/kv/docs' })).statusCode, 404)
  t.equal((await host.inject({ method: 'GET', url: '/kv/health' })).statusCode, 200)
})
