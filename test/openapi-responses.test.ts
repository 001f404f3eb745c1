import { pbkdf2Sync } from 'node:crypto'
import type { FastifyInstance, InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import { StorageUnavailableError } from '../lib/errors.js'
import type { Project, Registry } from '../lib/registry.js'
import { openApiDocument } from '../scripts/openapi-document.js'
import { PROJECT_KEY, build, proj, sys, testConfig } from './support/app.js'
import { responseChecker } from './support/openapi-check.js'

/** A Simple-PyKV style hash: every wrong key presented to it costs a slow verification. */
function pbkdf2Hash (key: string): string {
  const salt = Buffer.from('openapi-test-salt')
  return `pbkdf2_sha256$20000$${salt.toString('base64url')}$${pbkdf2Sync(key, salt, 20000, 32, 'sha256').toString('base64url')}`
}

const STORE = '/api/v1/projects/p1/store'
const json = { 'content-type': 'application/json' }
const text = { 'content-type': 'text/plain' }
const wrong = { authorization: 'Bearer wrong-key-0123456789' }

t.test('every answer of a varied set of requests matches the document\'s response for its status and content type', async t => {
  const doc = await openApiDocument()
  const { check, seen } = responseChecker(doc)
  let registry: Registry | undefined
  const { app } = await build(t, {
    app: { onRegistry: r => { registry = r } },
    config: testConfig(c => {
      c.system = { ...c.system, security: { ...c.system?.security, max_auth_failures: 3 }, limits: { max_body_bytes: 4096 } }
      const key = { enabled: true, save_api_key_to_config: true, api_key: PROJECT_KEY }
      c.projects?.push(
        { id: 'open', authentication: { enabled: false } },
        { id: 'strict', authentication: key, security: { require_conditional_writes: true } },
        { id: 'hidden', authentication: key, security: { keys_and_values_discoverable: false } },
        { id: 'hashed', authentication: { enabled: true, api_key_hash: pbkdf2Hash('the-right-key') } }
      )
    })
  })
  const { app: closed } = await build(t, { config: testConfig(c => { c.system = { ...c.system, security: { project_discoverable: false } } }) })

  async function send (opts: InjectOptions, on: FastifyInstance = app, tt: Test = t) {
    const res = await on.inject(opts)
    check(tt, { method: opts.method ?? 'GET', url: String(opts.url), status: res.statusCode, headers: res.headers, body: res.body })
    return res
  }

  // Status and projects.
  await send({ method: 'GET', url: '/health' })
  await send({ method: 'HEAD', url: '/health' })
  await send({ method: 'GET', url: '/status', headers: sys })
  await send({ method: 'HEAD', url: '/status', headers: sys })
  await send({ method: 'GET', url: '/status', remoteAddress: '10.0.0.1' })
  await send({ method: 'POST', url: '/status', headers: sys })
  await send({ method: 'GET', url: '/api/v1/projects', headers: sys })
  await send({ method: 'HEAD', url: '/api/v1/projects', headers: sys })
  await send({ method: 'GET', url: '/api/v1/projects', headers: sys }, closed)
  await send({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'made' } })
  await send({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'made_open', authentication: { enabled: false } } })
  await send({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'made' } })
  await send({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: '{not json' })
  await send({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: JSON.stringify({ id: 'x'.repeat(5000) }) })
  await send({ method: 'POST', url: '/api/v1/projects/made/config/regenerate-api-key', headers: sys })
  await send({ method: 'POST', url: '/api/v1/projects/open/config/regenerate-api-key', headers: sys })
  await send({ method: 'POST', url: '/api/v1/projects/nope/config/regenerate-api-key', headers: sys })
  await send({ method: 'DELETE', url: '/api/v1/projects/made', headers: sys })
  await send({ method: 'DELETE', url: '/api/v1/projects/made', headers: sys })
  await send({ method: 'GET', url: '/api/v1/projects/p1', headers: proj })
  await send({ method: 'HEAD', url: '/api/v1/projects/p1', headers: proj })
  await send({ method: 'GET', url: '/api/v1/projects/open' })
  await send({ method: 'GET', url: '/api/v1/projects/nope', headers: proj })
  await send({ method: 'GET', url: '/api/v1/projects/%zz', headers: proj })
  await send({ method: 'PUT', url: '/api/v1/projects/p1', headers: { ...proj, ...json }, payload: { security: { keys_and_values_discoverable: true } } })
  await send({ method: 'PUT', url: '/api/v1/projects/p1', headers: { ...proj, ...json }, payload: { id: 'other' } })
  await send({ method: 'PATCH', url: '/api/v1/projects/p1', headers: proj })

  // The store: values of every kind, conditional requests, expiry.
  await send({ method: 'PUT', url: `${STORE}/list`, headers: { ...proj, ...json }, payload: '["milk","eggs"]' })
  await send({ method: 'PUT', url: `${STORE}/note`, headers: { ...proj, ...text }, payload: 'buy before 6pm' })
  await send({ method: 'PUT', url: `${STORE}/blob`, headers: { ...proj, 'content-type': 'application/octet-stream' }, payload: Buffer.from('bytes') })
  await send({ method: 'PUT', url: `${STORE}/n?ttl=60`, headers: { ...proj, ...json }, payload: '42' })
  await send({ method: 'PUT', url: `${STORE}/nothing`, headers: { ...proj, ...json }, payload: 'null' })
  await send({ method: 'PUT', url: `${STORE}/empty`, headers: { ...proj, ...text }, payload: '' })
  await send({ method: 'PUT', url: `${STORE}/big`, headers: { ...proj, ...text }, payload: 'x'.repeat(5000) })
  await send({ method: 'PUT', url: `${STORE}/${'k'.repeat(600)}`, headers: { ...proj, ...text }, payload: 'v' })
  await send({ method: 'PUT', url: `${STORE}/n?ttl=-1`, headers: { ...proj, ...json }, payload: '1' })
  const record = await send({ method: 'GET', url: `${STORE}/list`, headers: proj })
  const etag = String(record.headers.etag)
  await send({ method: 'HEAD', url: `${STORE}/list`, headers: proj })
  await send({ method: 'GET', url: `${STORE}/list`, headers: { ...proj, 'if-none-match': etag } })
  await send({ method: 'GET', url: `${STORE}/list`, headers: { ...proj, 'if-none-match': 'not a tag' } })
  await send({ method: 'GET', url: `${STORE}/missing`, headers: proj })
  await send({ method: 'GET', url: `${STORE}/%zz`, headers: proj })
  for (const key of ['list', 'note', 'n', 'nothing', 'blob']) await send({ method: 'GET', url: `${STORE}/${key}/value`, headers: proj })
  await send({ method: 'HEAD', url: `${STORE}/note/value`, headers: proj })
  await send({ method: 'GET', url: `${STORE}/list/value`, headers: { ...proj, 'if-none-match': etag } })
  await send({ method: 'GET', url: `${STORE}/missing/value`, headers: proj })
  await send({ method: 'GET', url: `${STORE}/list/value`, headers: wrong, remoteAddress: '10.0.0.1' })
  await send({ method: 'PUT', url: `${STORE}/list`, headers: { ...proj, ...json, 'if-match': '"stale"' }, payload: '[]' })
  await send({ method: 'PUT', url: `${STORE}/list`, headers: { ...proj, ...json, 'if-match': etag }, payload: '["milk","eggs","tea"]' })
  await send({ method: 'PUT', url: `${STORE}/list/ttl`, headers: { ...proj, ...json }, payload: { ttl: 3600 } })
  await send({ method: 'PUT', url: `${STORE}/list/ttl`, headers: { ...proj, ...json }, payload: { persist: true } })
  await send({ method: 'PUT', url: `${STORE}/list/ttl`, headers: { ...proj, ...json }, payload: {} })
  await send({ method: 'PUT', url: `${STORE}/list/ttl`, headers: { ...proj, ...json, 'if-match': '"stale"' }, payload: { ttl: 5 } })
  await send({ method: 'PUT', url: `${STORE}/missing/ttl`, headers: { ...proj, ...json }, payload: { ttl: 5 } })
  await send({ method: 'GET', url: STORE, headers: proj })
  await send({ method: 'HEAD', url: STORE, headers: proj })
  await send({ method: 'GET', url: '/api/v1/projects/hidden/store', headers: proj })
  await send({ method: 'DELETE', url: `${STORE}/note`, headers: { ...proj, 'if-match': '"stale"' } })
  await send({ method: 'DELETE', url: `${STORE}/note`, headers: proj })
  await send({ method: 'DELETE', url: `${STORE}/note`, headers: proj })
  await send({ method: 'DELETE', url: `${STORE}/note`, headers: { ...proj, ...json }, payload: 'x'.repeat(5000) })
  await send({ method: 'POST', url: `${STORE}/note`, headers: proj })

  // Projects that require conditional writes.
  await send({ method: 'PUT', url: '/api/v1/projects/strict/store/a', headers: { ...proj, ...text }, payload: 'v' })
  await send({ method: 'PUT', url: '/api/v1/projects/strict/store/a', headers: { ...proj, ...text, 'if-none-match': '*' }, payload: 'v' })
  await send({ method: 'PUT', url: '/api/v1/projects/strict/store/a/ttl', headers: { ...proj, ...json }, payload: { ttl: 5 } })
  await send({ method: 'DELETE', url: '/api/v1/projects/strict/store/a', headers: proj })
  await send({ method: 'POST', url: '/api/v1/projects/strict/txn', headers: { ...proj, ...json }, payload: { ops: [{ op: 'set', key: 'a', value: 1 }] } })

  // Listing and transactions.
  await send({ method: 'GET', url: '/api/v1/projects/p1/keys?limit=1', headers: proj })
  await send({ method: 'GET', url: '/api/v1/projects/p1/keys?values=true&prefix=l', headers: proj })
  await send({ method: 'HEAD', url: '/api/v1/projects/p1/keys', headers: proj })
  await send({ method: 'GET', url: '/api/v1/projects/p1/keys?cursor=bad!', headers: proj })
  await send({ method: 'GET', url: '/api/v1/projects/hidden/keys', headers: proj })
  await send({ method: 'POST', url: '/api/v1/projects/p1/txn', headers: { ...proj, ...json }, payload: { checks: [{ key: 'list', exists: true }], ops: [{ op: 'set', key: 't', value: { a: 1 }, ttl: 60 }, { op: 'get', key: 't' }, { op: 'get', key: 'none' }, { op: 'delete', key: 'blob' }] } })
  await send({ method: 'POST', url: '/api/v1/projects/p1/txn', headers: { ...proj, ...json }, payload: { checks: [{ key: 'list', etag: '"stale"' }], ops: [{ op: 'delete', key: 'list' }] } })
  await send({ method: 'POST', url: '/api/v1/projects/p1/txn', headers: { ...proj, ...json }, payload: { ops: [] } })
  await send({ method: 'DELETE', url: '/api/v1/projects/open/store' })

  // Failed authentications: 401, then 429 once over the limit (3 per address here).
  for (let i = 0; i < 5; i++) await send({ method: 'GET', url: `${STORE}/list`, headers: wrong, remoteAddress: '10.0.0.2' })
  for (let i = 0; i < 5; i++) await send({ method: 'GET', url: '/api/v1/projects', headers: wrong, remoteAddress: '10.0.0.3' })

  // 503: more wrong keys at once than the verification queue holds.
  const flood = await Promise.all(Array.from({ length: 80 }, async (_, i) => await send({
    method: 'GET', url: '/api/v1/projects/hashed/keys', headers: { authorization: `Bearer wrong-${i}` }, remoteAddress: `10.1.0.${i}`
  })))
  t.ok(flood.some(r => r.statusCode === 503), 'the flood got 503s')

  // Failures of the store itself: a bug (500) and a disk that refuses a write (507).
  const store = (registry?.resolve('p1') as Project).store as { get: unknown, set: unknown, clear: unknown }
  const { get, set, clear } = store
  store.get = async () => { throw new Error('a bug') }
  store.set = async () => { throw new StorageUnavailableError('disk full') }
  store.clear = async () => { throw new StorageUnavailableError('disk full') }
  await send({ method: 'GET', url: `${STORE}/list`, headers: proj })
  await send({ method: 'PUT', url: `${STORE}/list`, headers: { ...proj, ...json }, payload: '1' })
  await send({ method: 'DELETE', url: STORE, headers: proj })
  Object.assign(store, { get, set, clear })
  await send({ method: 'DELETE', url: STORE, headers: proj })

  const documented = new Set<string>()
  const answered = new Set<string>()
  for (const [, item] of Object.entries((doc as { paths: Record<string, Record<string, { operationId: string, responses: object }>> }).paths)) {
    for (const op of Object.values(item)) {
      for (const code of Object.keys(op.responses)) documented.add(code)
      const codes = [...(seen.get(op.operationId) ?? [])]
      for (const code of codes) answered.add(code)
      t.ok(codes.some(c => c.startsWith('2')), `${op.operationId} answered with success at least once`, { codes })
    }
  }
  t.same([...answered].sort(), [...documented].sort(), 'every status the document lists was answered and checked')
})
