import type { FastifyInstance } from 'fastify'
import { build, proj } from '../support/app.js'
import { onEveryEngine } from '../support/engines.js'

const base = '/api/v1/projects/p1'
const store = `${base}/store`
const json = { 'content-type': 'application/json' }

async function txn (app: FastifyInstance, payload: unknown) {
  return await app.inject({ method: 'POST', url: `${base}/txn`, headers: { ...proj, ...json }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) })
}

async function put (app: FastifyInstance, key: string, value: unknown): Promise<string> {
  const res = await app.inject({ method: 'PUT', url: `${store}/${key}`, headers: { ...proj, ...json }, payload: JSON.stringify(value) })
  return res.headers.etag as string
}

async function get (app: FastifyInstance, key: string) {
  return await app.inject({ method: 'GET', url: `${store}/${key}`, headers: proj })
}

async function rev (app: FastifyInstance): Promise<number> {
  return (await app.inject({ method: 'GET', url: `${base}/keys?limit=1`, headers: proj })).json().data.rev
}

/** The whole store, key → value, to show that a refused transaction applied nothing. */
async function snapshot (app: FastifyInstance): Promise<Record<string, unknown>> {
  const all = (await app.inject({ method: 'GET', url: store, headers: proj })).json().data as Record<string, { value: unknown, version: number }>
  return Object.fromEntries(Object.entries(all).map(([k, r]) => [k, [r.value, r.version]]))
}

onEveryEngine('a transaction that moves a value between two keys (the README example)', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const tag = await put(app, 'from', { amount: 42 })
  const before = await rev(app)
  const res = await txn(app, {
    checks: [{ key: 'from', etag: tag }, { key: 'to', exists: false }],
    ops: [{ op: 'set', key: 'to', value: { amount: 42 } }, { op: 'delete', key: 'from' }]
  })
  t.equal(res.statusCode, 200)
  t.equal(res.json().message, "Transaction applied to project 'p1'")
  const data = res.json().data
  t.equal(data.rev, before + 1, 'one revision')
  t.equal(await rev(app), before + 1)
  const to = await get(app, 'to')
  t.same(data.results, [{ key: 'to', etag: to.headers.etag }, { key: 'from', deleted: true }])
  t.same(to.json().data.value, { amount: 42 })
  t.equal(to.json().data.version, data.rev, 'every written key gets the transaction\'s revision')
  t.equal((await get(app, 'from')).statusCode, 404)
  t.equal(res.headers['cache-control'], 'no-store')

  const again = await txn(app, {
    checks: [{ key: 'from', etag: tag }, { key: 'to', exists: false }],
    ops: [{ op: 'set', key: 'to', value: { amount: 0 } }, { op: 'delete', key: 'from' }]
  })
  t.equal(again.statusCode, 409, 'the same move again fails its checks')
  t.same(again.json(), {
    status_code: 409,
    message: 'Transaction checks failed',
    System: null,
    data: { failed: [{ index: 0, key: 'from', etag: null }, { index: 1, key: 'to', etag: to.headers.etag }] }
  })
  t.same((await get(app, 'to')).json().data.value, { amount: 42 }, 'nothing applied')
})

onEveryEngine('ops apply in order and a get sees the earlier ops; results per op', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await put(app, 'old', 'x')
  const res = await txn(app, {
    ops: [
      { op: 'get', key: 'a' },
      { op: 'set', key: 'a', value: 1 },
      { op: 'get', key: 'a' },
      { op: 'delete', key: 'old' },
      { op: 'get', key: 'old' },
      { op: 'delete', key: 'never' },
      { op: 'set', key: 'b', value: { deep: [true] }, ttl: 100 },
      { op: 'get', key: 'b' }
    ]
  })
  t.equal(res.statusCode, 200)
  const { rev: r, results } = res.json().data
  const a = await get(app, 'a')
  const b = await get(app, 'b')
  t.equal(results.length, 8, 'one result per op')
  t.same(results[0], { key: 'a', etag: null, record: null }, 'get of a missing key: record null')
  t.same(results[1], { key: 'a', etag: a.headers.etag }, 'set: key and etag')
  t.same(results[2], { key: 'a', etag: a.headers.etag, record: a.json().data }, 'a get sees the set before it, with its record')
  t.same(results[3], { key: 'old', deleted: true }, 'delete of an existing key')
  t.same(results[4], { key: 'old', etag: null, record: null }, 'a get sees the delete before it')
  t.same(results[5], { key: 'never', deleted: false }, 'delete of a missing key is not an error')
  t.same(results[6], { key: 'b', etag: b.headers.etag })
  t.same(results[7], { key: 'b', etag: b.headers.etag, record: b.json().data })
  t.equal(a.json().data.version, r)
  t.type(b.json().data.expires_at, 'number', 'a set op takes ttl')
})

onEveryEngine('checks hold against the state before the transaction', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const tag = await put(app, 'a', 1)
  const res = await txn(app, {
    checks: [{ key: 'a', etag: tag }, { key: 'a', exists: true }, { key: 'b', exists: false }],
    ops: [{ op: 'delete', key: 'a' }, { op: 'set', key: 'b', value: 2 }]
  })
  t.equal(res.statusCode, 200, 'checks do not see the ops')
  const weak = await txn(app, { checks: [{ key: 'b', etag: `W/${(await get(app, 'b')).headers.etag as string}` }], ops: [{ op: 'get', key: 'b' }] })
  t.equal(weak.statusCode, 409, 'a check compares the ETag exactly')
})

onEveryEngine('one revision per transaction, none for get-only', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await put(app, 'a', 1)
  const before = await rev(app)
  const reads = await txn(app, { checks: [{ key: 'a', exists: true }], ops: [{ op: 'get', key: 'a' }, { op: 'get', key: 'z' }] })
  t.equal(reads.statusCode, 200)
  t.equal(reads.json().data.rev, before, 'a get-only transaction reports the current revision')
  t.equal(await rev(app), before, 'and makes none')
  const ops = Array.from({ length: 50 }, (_, i) => ({ op: 'set', key: `k${i}`, value: i }))
  const many = await txn(app, { ops })
  t.equal(many.json().data.rev, before + 1)
  t.equal(await rev(app), before + 1, '50 sets: one revision')
  const tags = new Set(many.json().data.results.map((r: { etag: string }) => r.etag))
  t.equal(tags.size, 50, 'each key its own ETag')
  const deletesOfMissing = await txn(app, { ops: [{ op: 'delete', key: 'nope' }] })
  t.equal(deletesOfMissing.statusCode, 200)
  t.equal(await rev(app), before + 2, 'a transaction with a write op is a revision even when it deletes nothing')
})

onEveryEngine('failing checks: 409 naming each failed check with the current ETag, nothing applied', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const tagA = await put(app, 'a', 1)
  const tagB = await put(app, 'b', 2)
  const state = await snapshot(app)
  const before = await rev(app)
  const res = await txn(app, {
    checks: [{ key: 'a', etag: tagA }, { key: 'b', etag: '"stale"' }, { key: 'c', exists: true }, { key: 'a', exists: false }, { key: 'b', exists: true }],
    ops: [{ op: 'set', key: 'a', value: 'changed' }, { op: 'delete', key: 'b' }, { op: 'set', key: 'c', value: 3 }]
  })
  t.equal(res.statusCode, 409)
  t.same(res.json(), {
    status_code: 409,
    message: 'Transaction checks failed',
    System: null,
    data: { failed: [{ index: 1, key: 'b', etag: tagB }, { index: 2, key: 'c', etag: null }, { index: 3, key: 'a', etag: tagA }] }
  })
  t.same(await snapshot(app), state, 'nothing applied')
  t.equal(await rev(app), before, 'no revision')
})

onEveryEngine('validation before any write: 400 and nothing applied', async (t, engine) => {
  const { app } = await build(t, {
    config: engine.config(c => { c.system!.limits = { max_txn_ops: 3, max_txn_checks: 2 } })
  })
  const tag = await put(app, 'a', 1)
  const state = await snapshot(app)
  const before = await rev(app)
  const set = { op: 'set', key: 'x', value: 1 }
  const cases: Array<[string, unknown]> = [
    ['an unknown op', { ops: [set, { op: 'incr', key: 'y' }] }],
    ['a key written twice (set, set)', { ops: [set, { op: 'set', key: 'x', value: 2 }] }],
    ['a key written twice (set, delete)', { ops: [set, { op: 'delete', key: 'x' }] }],
    ['ttl 0', { ops: [set, { op: 'set', key: 'y', value: 1, ttl: 0 }] }],
    ['ttl negative', { ops: [set, { op: 'set', key: 'y', value: 1, ttl: -5 }] }],
    ['ttl not a number', { ops: [set, { op: 'set', key: 'y', value: 1, ttl: 'soon' }] }],
    ['ttl too long', { ops: [set, { op: 'set', key: 'y', value: 1, ttl: 315_360_001 }] }],
    ['expires_at past', { ops: [set, { op: 'set', key: 'y', value: 1, expires_at: 5 }] }],
    ['ttl and expires_at', { ops: [set, { op: 'set', key: 'y', value: 1, ttl: 5, expires_at: Date.now() / 1000 + 60 }] }],
    ['ttl and keep_ttl', { ops: [set, { op: 'set', key: 'y', value: 1, ttl: 5, keep_ttl: true }] }],
    ['over max_txn_ops', { ops: [set, { op: 'get', key: 'a' }, { op: 'get', key: 'b' }, { op: 'get', key: 'c' }] }],
    ['over max_txn_checks', { checks: [{ key: 'a', exists: true }, { key: 'a', etag: tag }, { key: 'b', exists: false }], ops: [set] }],
    ['a missing value', { ops: [set, { op: 'set', key: 'y' }] }],
    ['a missing key', { ops: [set, { op: 'delete' }] }],
    ['an empty key', { ops: [set, { op: 'set', key: '', value: 1 }] }],
    ['no ops', { ops: [] }],
    ['no ops member', { checks: [] }],
    ['an unknown member', { ops: [set], extra: true }],
    ['a check with etag and exists', { checks: [{ key: 'a', etag: tag, exists: true }], ops: [set] }],
    ['a check without a condition', { checks: [{ key: 'a' }], ops: [set] }],
    ['ops not an array', { ops: set }],
    ['a body that is not an object', [set]],
    ['a failing check does not hide a bad op', { checks: [{ key: 'a', exists: false }], ops: [set, { op: 'nope', key: 'y' }] }],
    ['malformed JSON', '{"ops": ['],
    ['an empty body', '']
  ]
  for (const [why, payload] of cases) {
    const res = await txn(app, payload)
    t.equal(res.statusCode, 400, why)
    t.equal(res.json().status_code, 400, `${why}: ${res.json().message as string}`)
  }
  t.same(await snapshot(app), state, 'nothing applied')
  t.equal(await rev(app), before, 'no revision')
  t.equal((await txn(app, { ops: [set, { op: 'get', key: 'a' }, { op: 'delete', key: 'b' }] })).statusCode, 200, 'exactly max_txn_ops is fine')
  t.equal((await txn(app, { checks: [{ key: 'a', exists: true }, { key: 'x', exists: true }], ops: [{ op: 'get', key: 'a' }] })).statusCode, 200, 'exactly max_txn_checks is fine')
})

onEveryEngine('a value over max_value_bytes is 413 and nothing is applied', async (t, engine) => {
  const { app } = await build(t, {
    config: engine.config(c => { c.system!.limits = { max_value_bytes: 100 } })
  })
  await put(app, 'a', 1)
  const state = await snapshot(app)
  const before = await rev(app)
  const res = await txn(app, { ops: [{ op: 'set', key: 'small', value: 'ok' }, { op: 'delete', key: 'a' }, { op: 'set', key: 'big', value: 'x'.repeat(200) }] })
  t.equal(res.statusCode, 413)
  t.equal(res.json().status_code, 413)
  t.match(res.json().message, /big/, 'names the key')
  t.same(await snapshot(app), state, 'nothing applied')
  t.equal(await rev(app), before)
  t.equal((await txn(app, { ops: [{ op: 'set', key: 'fits', value: 'x'.repeat(90) }] })).statusCode, 200)
})

onEveryEngine('require_conditional_writes: 428 when a written key has no check', async (t, engine) => {
  const { app } = await build(t, {
    config: engine.config(c => { c.projects![0].security = { keys_and_values_discoverable: true, require_conditional_writes: true } })
  })
  const first = await txn(app, { checks: [{ key: 'a', exists: false }], ops: [{ op: 'set', key: 'a', value: 1 }] })
  t.equal(first.statusCode, 200, 'every written key checked')
  const before = await rev(app)
  for (const [why, payload] of [
    ['a set without a check', { ops: [{ op: 'set', key: 'b', value: 1 }] }],
    ['a delete without a check', { ops: [{ op: 'delete', key: 'a' }] }],
    ['one of two written keys unchecked', { checks: [{ key: 'a', exists: true }], ops: [{ op: 'set', key: 'a', value: 2 }, { op: 'set', key: 'c', value: 3 }] }],
    ['a check on another key', { checks: [{ key: 'x', exists: false }], ops: [{ op: 'delete', key: 'a' }] }]
  ] as const) {
    const res = await txn(app, payload)
    t.equal(res.statusCode, 428, why)
    t.equal(res.json().status_code, 428)
  }
  t.equal(await rev(app), before, 'nothing applied')
  t.equal((await txn(app, { ops: [{ op: 'get', key: 'a' }] })).statusCode, 200, 'a get-only transaction needs no check')
  const tag = (await get(app, 'a')).headers.etag as string
  const checked = await txn(app, { checks: [{ key: 'a', etag: tag }, { key: 'b', exists: false }], ops: [{ op: 'delete', key: 'a' }, { op: 'set', key: 'b', value: 1 }] })
  t.equal(checked.statusCode, 200)
})

onEveryEngine('concurrent transactions with the same check: exactly one applies', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const tag = await put(app, 'counter', 0)
  const answers = await Promise.all([1, 2, 3, 4].map(async n => await txn(app, { checks: [{ key: 'counter', etag: tag }], ops: [{ op: 'set', key: 'counter', value: n }] })))
  const codes = answers.map(r => r.statusCode).sort()
  t.same(codes, [200, 409, 409, 409])
  const winner = answers.find(r => r.statusCode === 200)!
  for (const loser of answers.filter(r => r.statusCode === 409)) {
    t.same(loser.json().data.failed, [{ index: 0, key: 'counter', etag: winner.json().data.results[0].etag }])
  }
})
