import type { IncomingMessage, ServerResponse } from 'node:http'
import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import Fastify from 'fastify'
import helmet from 'helmet'
import t from 'tap'
import { helmetHeaders, helmetOptions } from '../../plugins/security.js'
import { build, proj, testConfig } from '../support/app.js'

t.test('security headers on API, error and docs responses', async t => {
  const { app } = await build(t)
  await app.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/k', headers: proj, payload: '<b>x</b>' })
  for (const url of ['/health', '/nope', '/api/v1/projects/p1/store/k/value', '/docs/', '/openapi.json']) {
    const res = await app.inject({ method: 'GET', url, headers: proj })
    t.equal(res.headers['x-content-type-options'], 'nosniff', url)
    t.match(res.headers['content-security-policy'], /default-src 'self'/, url)
    t.match(res.headers['content-security-policy'], /frame-ancestors 'none'/, url)
    t.notMatch(res.headers['content-security-policy'], /upgrade-insecure-requests/, url)
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', url)
  }
})

t.test('CORS is off by default', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://evil.example' } })
  t.equal(res.headers['access-control-allow-origin'], undefined)
  const preflight = await app.inject({ method: 'OPTIONS', url: '/api/v1/projects/p1/store/k', headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' } })
  t.not(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], undefined)
})

t.test('CORS allows exactly the configured origins', async t => {
  const { app } = await build(t, { config: testConfig(c => { c.system!.security = { cors_origins: ['https://app.example'] } }) })
  const ok = await app.inject({ method: 'OPTIONS', url: '/api/v1/projects/p1/store/k', headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-api-key,content-type' } })
  t.equal(ok.statusCode, 204)
  t.equal(ok.headers['access-control-allow-origin'], 'https://app.example')
  t.match(ok.headers['access-control-allow-headers'], /x-api-key/)
  const other = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://evil.example' } })
  t.equal(other.headers['access-control-allow-origin'], undefined)
  const missing = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(missing.statusCode, 404, 'the preflight route does not turn unknown paths into 405')
  const conditional = await app.inject({ method: 'OPTIONS', url: '/api/v1/projects/p1/store/k', headers: { origin: 'https://app.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'if-match,if-none-match,last-event-id' } })
  t.match(conditional.headers['access-control-allow-headers'], /if-match.*if-none-match.*last-event-id/, 'the 1.1 request headers are allowed')
  t.match(conditional.headers['access-control-allow-methods'], /PATCH/)
  const read = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://app.example' } })
  t.match(read.headers['access-control-expose-headers'], /^etag, ?link, ?retry-after$/, 'ETag, Link and Retry-After are exposed to scripts')
})

t.test('the API carries exactly the headers helmet() itself sets for the shared options', async t => {
  const fromHelmet: Record<string, string> = {}
  const response = {
    setHeader (name: string, value: string | number) { fromHelmet[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { Reflect.deleteProperty(fromHelmet, name.toLowerCase()) }
  }
  helmet(helmetOptions)({} as unknown as IncomingMessage, response as unknown as ServerResponse, () => {})
  t.ok(Object.keys(fromHelmet).length >= 10, `helmet() set ${Object.keys(fromHelmet).length} headers`)
  t.same(helmetHeaders(), fromHelmet, 'the precomputed set is what helmet() produces')

  const { app } = await build(t)
  await app.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/k', headers: proj, payload: 'v' })
  for (const url of ['/health', '/api/v1/projects/p1/store/k', '/api/v1/projects/p1/store/k/value', '/nope', '/openapi.json']) {
    const res = await app.inject({ method: 'GET', url, headers: proj })
    for (const [name, value] of Object.entries(fromHelmet)) t.equal(res.headers[name], value, `${url}: ${name}`)
  }
})

t.test('the Swagger UI pages get the headers of @fastify/helmet, for the same options', async t => {
  const expected = helmetHeaders()
  // @fastify/helmet with these options, alone in a bare Fastify: what the docs pages must carry.
  const reference = Fastify()
  t.teardown(async () => { await reference.close() })
  await reference.register(fastifyHelmet, helmetOptions as FastifyHelmetOptions)
  reference.get('/page', async () => 'page')
  const plugin = (await reference.inject({ method: 'GET', url: '/page' })).headers
  for (const [name, value] of Object.entries(expected)) t.equal(plugin[name], value, `@fastify/helmet: ${name}`)

  const { app } = await build(t)
  const index = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(index.statusCode, 200)
  t.match(index.headers['content-type'], /text\/html/)
  const assets = [...index.body.matchAll(/(?:src|href)="\.\/([^"]+)"/g)].map(m => `/docs/${m[1]}`)
  t.ok(assets.length >= 2, `the index references assets: ${assets.join(', ')}`)
  for (const url of ['/docs/', ...assets, '/docs/static/swagger-initializer.js']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 200, url)
    for (const [name, value] of Object.entries(expected)) t.equal(res.headers[name], value, `${url}: ${name}`)
  }
})

t.test('@fastify/helmet runs on the Swagger UI routes only, after the precomputed set is taken off', async t => {
  const { app } = await build(t)
  // printRoutes names each route's onRequest hooks; the tree is rebuilt into full paths.
  const tree = app.printRoutes({ includeHooks: true, commonPrefix: false, method: 'GET' }).split('\n')
  const segments: string[] = []
  const hooks = new Map<string, string[]>()
  let path = ''
  for (const line of tree) {
    const route = /^([│ ]*)[├└]── (.+) \(GET\)$/.exec(line)
    if (route !== null) {
      const depth = route[1].length / 4
      segments.length = depth
      segments.push(route[2])
      path = segments.join('')
      continue
    }
    const onRequest = /• \(onRequest\) (\[.*\])$/.exec(line)
    if (onRequest !== null) hooks.set(path, (JSON.parse(onRequest[1]) as string[]).map(name => name.replace('()', '')))
  }
  const docs = [...hooks.keys()].filter(p => p.startsWith('/docs'))
  t.ok(docs.includes('/docs/') && docs.includes('/docs/static/swagger-initializer.js'), `docs routes: ${docs.join(', ')}`)
  for (const route of docs) {
    const names = hooks.get(route) as string[]
    const dropped = names.indexOf('dropPrecomputedHeaders')
    t.ok(names.indexOf('securityHeaders') < dropped, `${route}: the precomputed set is taken off after it is set`)
    t.ok(dropped < names.indexOf('helmetApplyHeaders'), `${route}: then @fastify/helmet sets its headers`)
  }
  for (const route of ['/health', '/openapi.json', '/api/v1/projects/:id/store/:key', '/api/v1/projects/:id/store/:key/value']) {
    const names = hooks.get(route)
    t.ok(names?.includes('securityHeaders'), `${route}: the precomputed set`)
    t.notOk(names?.some(name => name.startsWith('helmet') || name === 'dropPrecomputedHeaders'), `${route}: no per-request Helmet`)
  }
})
