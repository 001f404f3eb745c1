import t from 'tap'
import { build, sys } from '../support/app.js'

t.test('GET /health needs no key and carries no System', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status_code: 200, message: 'OK', System: null, data: null })
})

t.test('GET /status with the system key carries System', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/status', headers: sys })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body), ['status_code', 'message', 'System', 'data'])
  t.equal(body.message, 'Simple PyKV server is fully operational.')
  t.equal(body.System.number_of_projects, 1)
  t.equal(body.System.version, '1.0.0')
  t.ok(body.System.memory_usage_bytes > 0)
  t.ok(Number.isInteger(body.System.uptime))
  t.ok(Number.isInteger(body.System.storage_usage_bytes))
})

t.test('GET /status without a key is 401 with System null', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/status' })
  t.equal(res.statusCode, 401)
  t.same(res.json(), { status_code: 401, message: 'Invalid or missing API key', System: null, data: null })
})
