import t from 'tap'
import { build, proj, testConfig } from '../helper.js'

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
})
