import t, { type Test } from 'tap'
import { build, proj, sys } from '../support/app.js'

function isEnvelope (t: Test, body: any, status: number): void {
  t.same(Object.keys(body), ['status_code', 'message', 'System', 'data'])
  t.equal(body.status_code, status)
}

t.test('unknown route: 404 in the envelope with the framework message', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope?x=1' })
  t.equal(res.statusCode, 404)
  t.same(res.json(), { status_code: 404, message: 'Route GET:/nope?x=1 not found', System: null, data: null })
})

t.test('wrong method: 405 with an Allow header', async t => {
  const { app } = await build(t)
  let res = await app.inject({ method: 'PATCH', url: '/api/v1/projects/p1/store/k', headers: proj })
  t.equal(res.statusCode, 405)
  t.equal(res.headers.allow, 'DELETE, GET, HEAD, PUT')
  isEnvelope(t, res.json(), 405)
  res = await app.inject({ method: 'DELETE', url: '/status' })
  t.equal(res.statusCode, 405)
  t.equal(res.headers.allow, 'GET, HEAD')
  res = await app.inject({ method: 'PUT', url: '/api/v1/projects' })
  t.equal(res.headers.allow, 'GET, HEAD, POST')
})

t.test('unsupported media type on a project route is the contract 400, on store routes text', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'id=x' })
  t.equal(res.statusCode, 400)
  isEnvelope(t, res.json(), 400)
})

t.test('body too large: 413 in the envelope', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, 'content-type': 'application/json' }, payload: JSON.stringify({ id: 'x', pad: 'x'.repeat(2 * 1024 * 1024) }) })
  t.equal(res.statusCode, 413)
  isEnvelope(t, res.json(), 413)
  t.ok(res.json().System)
})

t.test('an unexpected error is a 500 envelope with no details', async t => {
  const { app } = await build(t)
  const rss = process.memoryUsage.rss
  process.memoryUsage.rss = () => { throw new Error('secret detail') }
  t.teardown(() => { process.memoryUsage.rss = rss })
  const res = await app.inject({ method: 'GET', url: '/status', headers: sys })
  process.memoryUsage.rss = rss
  t.equal(res.statusCode, 500)
  t.equal(res.json().message, 'Internal server error')
  t.notMatch(res.body, /secret detail/)
})

t.test('HEAD on a GET route answers without a body', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'HEAD', url: '/health' })
  t.equal(res.statusCode, 200)
  t.equal(res.body, '')
})
