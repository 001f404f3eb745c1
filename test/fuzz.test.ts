import fc from 'fast-check'
import t from 'tap'
import { build, PROJECT_KEY, sys, SYSTEM_KEY, testConfig } from './support/app.js'

const methods = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'] as const
const prefixes = [
  '', '/', '/health', '/status', '/docs', '/openapi.json', '/api', '/api/v1/projects', '/api/v1/projects/p1',
  '/api/v1/projects/p1/store', '/api/v1/projects/p1/store/k', '/api/v1/projects/p1/store/k/value',
  '/api/v1/projects/open', '/api/v1/projects/open/store/k', '/api/v1/projects/ghost/store/k',
  '/api/v1/projects/p1/config/regenerate-api-key'
]
const segment = fc.oneof(
  fc.constantFrom('..', '.', '%2F', '%2e%2e', '%00', '%', '%zz', '%E0%A4%A', '__proto__', 'constructor', 'value', 'store', 'p1', 'k', '', '~', '?x=1', '#frag'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }).map(s => encodeURIComponent(s)),
  fc.integer({ min: 600, max: 5000 }).map(n => 'x'.repeat(n))
)
const path = fc.tuple(fc.constantFrom(...prefixes), fc.array(segment, { maxLength: 3 }))
  .map(([p, rest]) => (p + (rest.length > 0 ? '/' + rest.join('/') : '')) || '/')
const keyValue = fc.oneof(
  fc.constantFrom(SYSTEM_KEY, PROJECT_KEY, '', ' ', 'wrong', 'Bearer', 'é', 'x'.repeat(5000)),
  fc.string({ maxLength: 50 })
)
const headers = fc.record({
  authorization: fc.option(fc.oneof(keyValue.map(k => `Bearer ${k}`), keyValue, fc.constant('Basic abc')), { nil: undefined }),
  'x-api-key': fc.option(keyValue, { nil: undefined }),
  'api-key': fc.option(keyValue, { nil: undefined }),
  'content-type': fc.option(fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', 'application/xml', 'multipart/form-data', 'application/x-www-form-urlencoded', '', '*/*', 'application/json; charset=latin1', ';;'), { nil: undefined }),
  accept: fc.option(fc.constantFrom('*/*', 'text/html', 'application/json'), { nil: undefined })
}, { requiredKeys: [] })
const body = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.string({ maxLength: 200 }),
  fc.constant(''),
  fc.constantFrom('{', '[1,', '{"id":', 'null', '"', '{"id":"new_project"}', '{"id":"x","storage":{"on_disk":false}}', '{"storage":{"on_disk":false}}', '{"security":{"keys_and_values_discoverable":false}}', '{"id":"__proto__"}', '{"__proto__":{"polluted":true}}'),
  fc.integer({ min: 1000, max: 20000 }).map(n => '['.repeat(n) + ']'.repeat(n)),
  fc.constant('x'.repeat(1024 * 1024 + 10))
)

function cleanHeaders (h: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = v
  return out
}

t.test('random requests: no 500, always the envelope, no unauthorized change, still answering', async t => {
  const { app } = await build(t, {
    config: testConfig(c => {
      c.projects!.push({ id: 'open', storage: { on_disk: false }, authentication: { enabled: false } })
    })
  })
  // The whole observable state: project settings and every store.
  const snapshot = async (): Promise<string> => {
    const parts: unknown[] = [(await app.inject({ method: 'GET', url: '/api/v1/projects', headers: sys })).json().data]
    for (const [id, key] of [['p1', PROJECT_KEY], ['open', '']] as const) {
      const res = await app.inject({ method: 'GET', url: `/api/v1/projects/${id}/store`, headers: { 'x-api-key': key } })
      parts.push(res.statusCode, res.json().data)
    }
    return JSON.stringify(parts)
  }
  let before = await snapshot()
  let requests = 0
  const statuses = new Map<number, number>()
  await fc.assert(fc.asyncProperty(fc.constantFrom(...methods), path, headers, body, async (method, url, h, payload) => {
    let res
    try {
      res = await app.inject({ method, url, headers: cleanHeaders(h), payload: method === 'GET' || method === 'HEAD' ? undefined : payload })
    } catch (err) {
      // light-my-request refuses some header values before they reach the server.
      if ((err as NodeJS.ErrnoException).code === 'ERR_INVALID_CHAR' || (err as Error).name === 'TypeError') return
      throw err
    }
    requests++
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    if (res.statusCode >= 500) throw new Error(`${method} ${url} answered ${res.statusCode}: ${res.body.slice(0, 200)}`)
    const type = String(res.headers['content-type'] ?? '')
    if (type.startsWith('application/json') && !url.includes('/value') && !url.startsWith('/openapi.json') && !url.startsWith('/docs') && method !== 'HEAD') {
      const parsed = JSON.parse(res.body)
      if (JSON.stringify(Object.keys(parsed)) !== '["status_code","message","System","data"]' || parsed.status_code !== res.statusCode) {
        throw new Error(`${method} ${url}: not the envelope: ${res.body.slice(0, 200)}`)
      }
    }
    const after = await snapshot()
    const write = ['PUT', 'POST', 'DELETE'].includes(method) && res.statusCode >= 200 && res.statusCode < 300
    if (!write && after !== before) throw new Error(`${method} ${url} answered ${res.statusCode} but changed the data`)
    before = after
  }), { numRuns: 2500, seed: 20261125 })
  t.ok(requests > 2000, `${requests} requests sent`)
  t.comment(`statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`)
  t.ok([...statuses.keys()].some(s => s >= 200 && s < 300), 'some requests succeeded')
  t.equal((({}) as Record<string, unknown>).polluted, undefined, 'no prototype pollution')
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200, 'still answering')
})

t.test('no sequence of API calls produces a config.json that fails to load', async t => {
  const { app, dir } = await build(t)
  const settings = fc.oneof(
    fc.json({ maxDepth: 3 }).map(j => JSON.parse(j) as unknown),
    fc.record({
      storage: fc.option(fc.record({ on_disk: fc.oneof(fc.boolean(), fc.constant('yes')), cache_in_memory: fc.boolean() }, { requiredKeys: [] }), { nil: undefined }),
      security: fc.option(fc.record({ keys_and_values_discoverable: fc.oneof(fc.boolean(), fc.integer()) }, { requiredKeys: [] }), { nil: undefined }),
      authentication: fc.option(fc.record({ enabled: fc.boolean(), save_api_key_to_config: fc.boolean(), api_key: fc.string() }, { requiredKeys: [] }), { nil: undefined }),
      id: fc.option(fc.oneof(fc.stringMatching(/^[a-z]{1,6}$/), fc.string({ maxLength: 70 })), { nil: undefined }),
      extra: fc.option(fc.anything(), { nil: undefined })
    }, { requiredKeys: [] })
  )
  const op = fc.tuple(fc.constantFrom('create', 'update', 'delete', 'regenerate'), fc.constantFrom('p1', 'a', 'b', 'c'), settings)
  let accepted = 0
  await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 8 }), async (ops) => {
    for (const [kind, id, s] of ops) {
      const payload = JSON.stringify(kind === 'create' && s !== null && typeof s === 'object' && !Array.isArray(s) ? { id, ...s } : s)
      const res = kind === 'create'
        ? await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, 'content-type': 'application/json' }, payload })
        : kind === 'update'
          ? await app.inject({ method: 'PUT', url: `/api/v1/projects/${id}`, headers: { 'content-type': 'application/json', 'x-api-key': id === 'p1' ? PROJECT_KEY : 'x' }, payload })
          : kind === 'delete'
            ? await app.inject({ method: 'DELETE', url: `/api/v1/projects/${id}`, headers: sys })
            : await app.inject({ method: 'POST', url: `/api/v1/projects/${id}/config/regenerate-api-key`, headers: sys })
      if (res.statusCode >= 500) throw new Error(`${kind} ${id} ${payload}: ${res.statusCode}`)
      if (res.statusCode < 300) accepted++
    }
  }), { numRuns: 60, seed: 7 })
  t.ok(accepted > 0, `${accepted} changes accepted`)
  await app.close()
  const restarted = await build(t, { dir })
  const res = await restarted.app.inject({ method: 'GET', url: '/api/v1/projects', headers: { authorization: `Bearer ${SYSTEM_KEY}` } })
  t.equal(res.statusCode, 200, 'the config written by all those calls loads again')
})
