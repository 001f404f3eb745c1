import { pbkdf2Sync } from 'node:crypto'
import t from 'tap'
import { build, PROJECT_KEY, SYSTEM_KEY, testConfig } from '../support/app.js'

const status = '/status'

t.test('header precedence: a well-formed Bearer wins outright, then X-API-Key, then Api-Key', async t => {
  const { app } = await build(t)
  const cases: Array<[Record<string, string>, number, string]> = [
    [{ authorization: `Bearer ${SYSTEM_KEY}` }, 200, 'bearer'],
    [{ authorization: `bearer ${SYSTEM_KEY}` }, 200, 'scheme is case-insensitive'],
    [{ authorization: `BEARER   ${SYSTEM_KEY}  ` }, 200, 'extra spaces'],
    [{ 'x-api-key': SYSTEM_KEY }, 200, 'x-api-key'],
    [{ 'api-key': SYSTEM_KEY }, 200, 'api-key'],
    [{ authorization: 'Bearer wrong', 'x-api-key': SYSTEM_KEY }, 401, 'a well-formed bearer wins even when wrong'],
    [{ authorization: `Bearer ${SYSTEM_KEY}`, 'x-api-key': 'wrong' }, 200, 'bearer over x-api-key'],
    [{ authorization: `Basic ${SYSTEM_KEY}`, 'x-api-key': SYSTEM_KEY }, 200, 'non-bearer authorization falls through'],
    [{ authorization: 'Bearer', 'x-api-key': SYSTEM_KEY }, 200, 'malformed bearer falls through'],
    [{ authorization: 'Bearer a b', 'api-key': SYSTEM_KEY }, 200, 'bearer with two tokens is malformed'],
    [{ 'x-api-key': 'wrong', 'api-key': SYSTEM_KEY }, 401, 'x-api-key before api-key'],
    [{ 'x-api-key': '', 'api-key': SYSTEM_KEY }, 200, 'first non-empty'],
    [{ 'x-api-key': '   ', 'api-key': SYSTEM_KEY }, 200, 'blank is empty'],
    [{}, 401, 'no key'],
    [{ authorization: `Bearer ${SYSTEM_KEY}x` }, 401, 'longer key'],
    [{ authorization: `Bearer ${SYSTEM_KEY.slice(0, -1)}` }, 401, 'shorter key'],
    [{ authorization: `Bearer ${PROJECT_KEY}` }, 401, 'project key']
  ]
  for (const [headers, expected, name] of cases) {
    const res = await app.inject({ method: 'GET', url: status, headers })
    t.equal(res.statusCode, expected, name)
    if (expected === 401) t.same(res.json(), { status_code: 401, message: 'Invalid or missing API key', System: null, data: null })
  }
})

t.test('no query-string keys', async t => {
  const { app } = await build(t)
  for (const q of ['api_key', 'key', 'apikey', 'x-api-key']) {
    const res = await app.inject({ method: 'GET', url: `${status}?${q}=${SYSTEM_KEY}` })
    t.equal(res.statusCode, 401, q)
  }
})

t.test('plaintext api_key: any length, any bytes, never a 500', async t => {
  const { app } = await build(t)
  for (const key of ['x', 'é'.repeat(100), 'a'.repeat(10_000), '\u0000\u0001', '🔑']) {
    const res = await app.inject({ method: 'GET', url: status, headers: { 'x-api-key': Buffer.from(key).toString('latin1') } })
    t.equal(res.statusCode, 401)
  }
})

t.test('Simple-PyKV pbkdf2_sha256 hashes verify', async t => {
  // Computed independently: key sys-test-key, salt bytes 0x00..0x0f, 200000 iterations.
  const legacy = 'pbkdf2_sha256$200000$AAECAwQFBgcICQoLDA0ODw$19rnQXd3-DvSvC715pTHJJd2x7gwTDo35UZrH4tpIbI'
  const { app } = await build(t, { config: testConfig(c => { c.system!.authentication = { enabled: true, save_api_key_to_config: false, api_key: null, api_key_hash: legacy } }) })
  t.equal((await app.inject({ method: 'GET', url: status, headers: { 'x-api-key': 'sys-test-key' } })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: status, headers: { 'x-api-key': 'sys-test-key' } })).statusCode, 200, 'again, from the cache')
  t.equal((await app.inject({ method: 'GET', url: status, headers: { 'x-api-key': 'sys-test-kez' } })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: status, headers: { 'x-api-key': 'sys-test-kez' } })).statusCode, 401, 'rejected again')
})

t.test('a pbkdf2 hash with another iteration count and length verifies too', async t => {
  const salt = Buffer.from('salt-for-test')
  const derived = pbkdf2Sync('other-key', salt, 1000, 16, 'sha256')
  const hash = `pbkdf2_sha256$1000$${salt.toString('base64url')}$${derived.toString('base64url')}`
  const { app } = await build(t, { config: testConfig(c => { c.projects![0].authentication = { enabled: true, api_key_hash: hash } }) })
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: { 'api-key': 'other-key' } })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: { 'api-key': 'other-kez' } })).statusCode, 401)
})

t.test('authentication.enabled false opens the scope; missing enabled means true', async t => {
  const { app } = await build(t, {
    config: testConfig(c => {
      c.system!.authentication = { enabled: false }
      c.projects![0].authentication = { api_key: PROJECT_KEY }
    })
  })
  const res = await app.inject({ method: 'GET', url: status })
  t.equal(res.statusCode, 200)
  t.ok(res.json().System, 'System shown once the (open) check passed')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p1' })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: { 'x-api-key': PROJECT_KEY } })).statusCode, 200)
})

t.test('failed authentications are limited per address: 429 with Retry-After, then reset', async t => {
  const { app } = await build(t, {
    config: testConfig(c => { c.system!.security = { project_discoverable: false, max_auth_failures: 3, auth_failure_window_seconds: 1 } })
  })
  const from = (ip: string, headers: Record<string, string>) => ({ method: 'GET' as const, url: '/api/v1/projects/p1', headers, remoteAddress: ip })
  for (let i = 0; i < 3; i++) t.equal((await app.inject(from('10.0.0.1', { 'x-api-key': `wrong-${i}` }))).statusCode, 401)
  const limited = await app.inject(from('10.0.0.1', { 'x-api-key': 'wrong-again' }))
  t.equal(limited.statusCode, 429)
  t.same(limited.json(), { status_code: 429, message: 'Too many failed authentication attempts; retry later', System: null, data: null })
  t.equal(limited.headers['retry-after'], '1')
  t.equal(limited.headers.connection, 'close', 'the flooding connection is closed')
  const unknown = await app.inject({ method: 'GET', url: '/api/v1/projects/ghost', headers: { 'x-api-key': 'x' }, remoteAddress: '10.0.0.1' })
  t.equal(unknown.statusCode, 429, 'an unknown project answers like a wrong key, limit included')
  t.equal((await app.inject(from('10.0.0.1', { 'x-api-key': PROJECT_KEY }))).statusCode, 200, 'a good key is never held back')
  t.equal((await app.inject(from('10.0.0.2', { 'x-api-key': 'wrong' }))).statusCode, 401, 'other addresses are not affected')
  await new Promise(resolve => setTimeout(resolve, 1100))
  t.equal((await app.inject(from('10.0.0.1', { 'x-api-key': 'wrong' }))).statusCode, 401, 'the window ended: counting starts again')
})
