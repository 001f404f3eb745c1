import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { build, proj } from '../support/app.js'
import { onEveryEngine } from '../support/engines.js'

const base = '/api/v1/projects/p1'
const store = `${base}/store`
const json = { 'content-type': 'application/json' }
const MAX_TTL = 315_360_000

async function put (app: FastifyInstance, key: string, value: string, query = '', headers: Record<string, string> = {}) {
  return await app.inject({ method: 'PUT', url: `${store}/${key}${query}`, headers: { ...proj, ...headers }, payload: value })
}

async function record (app: FastifyInstance, key: string) {
  return (await app.inject({ method: 'GET', url: `${store}/${key}`, headers: proj })).json().data
}

async function rev (app: FastifyInstance): Promise<number> {
  return (await app.inject({ method: 'GET', url: `${base}/keys?limit=1`, headers: proj })).json().data.rev
}

async function txn (app: FastifyInstance, payload: unknown) {
  return await app.inject({ method: 'POST', url: `${base}/txn`, headers: { ...proj, ...json }, payload: payload as Record<string, unknown> })
}

onEveryEngine('?ttl=, ?expires_at= and ?keep_ttl=true on R9; a write without them clears the expiry', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const plain = await put(app, 'k', 'v')
  t.equal(plain.statusCode, 200)
  t.equal((await record(app, 'k')).expires_at, null, 'no expiry: null')

  const before = Date.now() / 1000
  t.equal((await put(app, 'k', 'v', '?ttl=100')).statusCode, 200)
  const after = Date.now() / 1000
  const withTtl = await record(app, 'k')
  t.ok(withTtl.expires_at >= before + 100 && withTtl.expires_at <= after + 100.001, `ttl=100: expires_at ${withTtl.expires_at} is 100 s from now`)

  t.equal((await put(app, 'k', 'v2', '?keep_ttl=true')).statusCode, 200)
  const kept = await record(app, 'k')
  t.equal(kept.expires_at, withTtl.expires_at, 'keep_ttl=true keeps it')
  t.equal(kept.value, 'v2')

  const at = Math.floor(Date.now() / 1000) + 3600.25
  t.equal((await put(app, 'k', 'v3', `?expires_at=${at}`)).statusCode, 200)
  t.equal((await record(app, 'k')).expires_at, at, 'expires_at is stored as given (epoch seconds, fractional)')

  t.equal((await put(app, 'k', 'v4', '?keep_ttl=false')).statusCode, 200)
  t.equal((await record(app, 'k')).expires_at, null, 'keep_ttl=false clears it')
  t.equal((await put(app, 'k', 'v5', '?ttl=0.001')).statusCode, 200, 'the smallest ttl, 0.001')
  t.equal((await put(app, 'k', 'v6', `?ttl=${MAX_TTL}`)).statusCode, 200, 'the largest ttl')
  t.equal((await put(app, 'k', 'v7')).statusCode, 200)
  t.equal((await record(app, 'k')).expires_at, null, 'a plain write clears it (Redis SET)')
  t.equal((await put(app, 'n', 'v', '?keep_ttl=true')).statusCode, 200, 'keep_ttl on a new key')
  t.equal((await record(app, 'n')).expires_at, null, 'has nothing to keep')

  const listed = (await app.inject({ method: 'GET', url: `${base}/keys`, headers: proj })).json().data.items
  t.same(listed.map((i: { expires_at: unknown }) => i.expires_at), [null, null], 'listing items carry expires_at')
  const all = (await app.inject({ method: 'GET', url: store, headers: proj })).json().data
  t.equal(all.k.expires_at, null, 'R8 records carry expires_at')
})

onEveryEngine('bad expiry parameters are 400 and change nothing', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await put(app, 'k', 'keep', '?ttl=500')
  const expires = (await record(app, 'k')).expires_at
  const before = await rev(app)
  const now = Math.floor(Date.now() / 1000)
  for (const query of [
    `?ttl=10&expires_at=${now + 100}`, '?ttl=10&keep_ttl=true', `?expires_at=${now + 100}&keep_ttl=true`,
    '?ttl=0', '?ttl=-1', '?ttl=0.0001', '?ttl=abc', '?ttl=', '?ttl=Infinity', '?ttl=NaN', `?ttl=${MAX_TTL + 1}`,
    '?expires_at=0', `?expires_at=${now - 10}`, '?expires_at=-5', '?expires_at=soon', `?expires_at=${now + MAX_TTL + 1000}`,
    '?keep_ttl=maybe', '?keep_ttl=1'
  ]) {
    const res = await put(app, 'k', 'changed', query)
    t.equal(res.statusCode, 400, query)
    t.equal(res.json().status_code, 400, `${query}: ${res.json().message as string}`)
  }
  t.equal(await rev(app), before, 'no revision')
  const rec = await record(app, 'k')
  t.equal(rec.value, 'keep')
  t.equal(rec.expires_at, expires)
})

onEveryEngine('a key read 1 ms after expires_at is 404; before it, it is served', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await put(app, 'other', 'stays')
  // 300 ms ahead leaves room for a busy machine to answer at least one read before it.
  const at = (Date.now() + 300) / 1000
  t.equal((await put(app, 'k', 'v', `?expires_at=${at}`)).statusCode, 200)
  const atMs = Math.ceil(at * 1000)
  let servedBefore = 0
  let polledAfter = 0
  while (polledAfter < 20) {
    const started = Date.now()
    const res = await app.inject({ method: 'GET', url: `${store}/k`, headers: proj })
    const ended = Date.now()
    if (started >= atMs + 1) {
      polledAfter++
      t.equal(res.statusCode, 404, `a read started ${started - atMs} ms after expires_at`)
    } else if (ended < atMs) {
      servedBefore++
      t.equal(res.statusCode, 200, `a read ended ${atMs - ended} ms before expires_at`)
    }
    if (started < atMs - 5) await sleep(2)
  }
  // On a very slow machine no read may finish before expiry; the reads after it are the point.
  t.comment(`${servedBefore} reads answered before expiry`)
  t.equal((await app.inject({ method: 'GET', url: `${store}/k/value`, headers: proj })).statusCode, 404, 'R11')
  t.equal((await app.inject({ method: 'HEAD', url: `${store}/k`, headers: proj })).statusCode, 404, 'HEAD')
  t.same(Object.keys((await app.inject({ method: 'GET', url: store, headers: proj })).json().data), ['other'], 'R8')
  t.same((await app.inject({ method: 'GET', url: `${base}/keys`, headers: proj })).json().data.items.map((i: { key: string }) => i.key), ['other'], 'listing')
  const ifMatch = await put(app, 'k', 'again', '', { 'if-match': '*' })
  t.equal(ifMatch.statusCode, 412, 'If-Match * on an expired key')
  t.same(ifMatch.json().data, { etag: null })
  t.equal((await put(app, 'k', 'again', '', { 'if-none-match': '*' })).statusCode, 200, 'create-only write of an expired key')
})

onEveryEngine('expired keys are invisible to transactions', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const tag = (await put(app, 'k', 'v', '?ttl=0.05')).headers.etag as string
  await sleep(80)
  const failed = await txn(app, { checks: [{ key: 'k', exists: true }, { key: 'k', etag: tag }], ops: [{ op: 'get', key: 'k' }] })
  t.equal(failed.statusCode, 409)
  t.same(failed.json().data.failed, [{ index: 0, key: 'k', etag: null }, { index: 1, key: 'k', etag: null }])
  const ok = await txn(app, { checks: [{ key: 'k', exists: false }], ops: [{ op: 'get', key: 'k' }, { op: 'delete', key: 'k' }] })
  t.equal(ok.statusCode, 200)
  t.same(ok.json().data.results[0].record, null, 'a get sees nothing')
  t.same(ok.json().data.results[1], { key: 'k', deleted: false }, 'a delete finds nothing')
  const set = await txn(app, { ops: [{ op: 'set', key: 't', value: 1, ttl: 100 }, { op: 'set', key: 'u', value: 2, expires_at: Date.now() / 1000 + 100 }] })
  t.equal(set.statusCode, 200)
  const ttlAt = (await record(app, 't')).expires_at
  t.type(ttlAt, 'number', 'a set op takes ttl')
  t.type((await record(app, 'u')).expires_at, 'number', 'a set op takes expires_at')
  const keep = await txn(app, { ops: [{ op: 'set', key: 't', value: 3, keep_ttl: true }, { op: 'set', key: 'u', value: 4 }] })
  t.equal(keep.statusCode, 200)
  t.equal((await record(app, 't')).expires_at, ttlAt, 'keep_ttl member keeps it')
  t.equal((await record(app, 'u')).expires_at, null, 'a set op without them clears it')
})

onEveryEngine('PUT …/store/<key>/ttl: ttl, expires_at, persist; new ETag and version; 404; preconditions; bad bodies', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const created = await put(app, 'k', 'v')
  let tag = created.headers.etag as string
  let version = (await record(app, 'k')).version
  const at = Math.floor(Date.now() / 1000) + 1000
  for (const [body, expect] of [
    [{ ttl: 60 }, (e: number | null) => e !== null && Math.abs(e - (Date.now() / 1000 + 60)) < 5],
    [{ expires_at: at }, (e: number | null) => e === at],
    [{ persist: true }, (e: number | null) => e === null]
  ] as const) {
    const before = await rev(app)
    const res = await app.inject({ method: 'PUT', url: `${store}/k/ttl`, headers: { ...proj, ...json }, payload: body })
    t.equal(res.statusCode, 200, JSON.stringify(body))
    t.equal(res.json().message, "Expiry of key 'k' updated in project 'p1' store")
    const data = res.json().data
    t.ok(expect(data.expires_at), `${JSON.stringify(body)} → expires_at ${data.expires_at as string}`)
    t.equal(data.value, 'v', 'the value is left as it is')
    t.not(res.headers.etag, tag, 'a new ETag')
    t.ok(data.version > version, 'a new version')
    t.equal(await rev(app), before + 1, 'one revision')
    t.equal(data.version, before + 1, 'the version is the revision')
    const got = await app.inject({ method: 'GET', url: `${store}/k`, headers: proj })
    t.equal(got.headers.etag, res.headers.etag)
    t.same(got.json().data, data)
    tag = res.headers.etag as string
    version = data.version
  }
  const missing = await app.inject({ method: 'PUT', url: `${store}/nope/ttl`, headers: { ...proj, ...json }, payload: { ttl: 5 } })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().message, "Key 'nope' not found in project 'p1' store")

  const stale = await app.inject({ method: 'PUT', url: `${store}/k/ttl`, headers: { ...proj, ...json, 'if-match': '"old"' }, payload: { ttl: 5 } })
  t.equal(stale.statusCode, 412)
  t.same(stale.json().data, { etag: tag })
  const createOnly = await app.inject({ method: 'PUT', url: `${store}/k/ttl`, headers: { ...proj, ...json, 'if-none-match': '*' }, payload: { ttl: 5 } })
  t.equal(createOnly.statusCode, 412)
  const current = await app.inject({ method: 'PUT', url: `${store}/k/ttl`, headers: { ...proj, ...json, 'if-match': tag }, payload: { ttl: 5 } })
  t.equal(current.statusCode, 200)
  tag = current.headers.etag as string

  const before = await rev(app)
  for (const payload of [
    '{}', '{"ttl":0}', '{"ttl":-3}', '{"ttl":"10"}', `{"ttl":${MAX_TTL + 1}}`, '{"expires_at":5}', '{"expires_at":"x"}',
    '{"persist":false}', '{"persist":true,"ttl":5}', `{"ttl":5,"expires_at":${at}}`, '{"other":1}', '[]', '5', 'null', '{oops'
  ]) {
    const res = await app.inject({ method: 'PUT', url: `${store}/k/ttl`, headers: { ...proj, ...json }, payload })
    t.equal(res.statusCode, 400, payload)
    t.equal(res.json().status_code, 400)
  }
  t.equal(await rev(app), before, 'bad bodies make no revision')
  t.equal((await app.inject({ method: 'GET', url: `${store}/k`, headers: proj })).headers.etag, tag)

  await put(app, 'short', 'v', '?ttl=0.03')
  await sleep(60)
  t.equal((await app.inject({ method: 'PUT', url: `${store}/short/ttl`, headers: { ...proj, ...json }, payload: { persist: true } })).statusCode, 404, 'an expired key cannot be brought back')
})

onEveryEngine('10,000 keys expiring at once while GETs run: every GET answers, all reclaimed, none after a restart', async (t, engine) => {
  const { app, dir } = await build(t, { config: engine.config() })
  await put(app, 'stay', 'here')
  const count = 10_000
  const batch = 1000
  // Far enough ahead to write them all first, even on a slow machine.
  const at = (Date.now() + 4000) / 1000
  for (let i = 0; i < count; i += batch) {
    const ops = Array.from({ length: batch }, (_, j) => ({ op: 'set', key: `exp-${String(i + j).padStart(5, '0')}`, value: { n: i + j }, expires_at: at }))
    t.equal((await txn(app, { ops })).statusCode, 200)
  }
  const atMs = Math.ceil(at * 1000)
  const written = await rev(app)
  const early = Date.now() < atMs
  if (early) t.equal(Object.keys((await app.inject({ method: 'GET', url: store, headers: proj })).json().data).length, count + 1, 'all there before expiry')
  else t.comment('the machine was too slow to see the keys before they expired')

  let maxLatency = 0
  let gets = 0
  let reclaimedAt = 0
  let finalRev = written
  const deadline = atMs + 60_000
  while (Date.now() < deadline) {
    const started = performance.now()
    const res = await app.inject({ method: 'GET', url: `${store}/stay`, headers: proj })
    maxLatency = Math.max(maxLatency, performance.now() - started)
    gets++
    if (res.statusCode !== 200) t.fail(`GET answered ${res.statusCode}`)
    if (Date.now() > atMs && gets % 20 === 0) {
      finalRev = await rev(app)
      // One round reclaims at most 1,000 keys and is one revision: ten rounds at least.
      if (finalRev - written >= count / batch) {
        reclaimedAt = Date.now()
        break
      }
    }
    await sleep(1)
  }
  t.ok(reclaimedAt > 0, `reclaimed in ${finalRev - written} rounds (revisions)`)
  t.comment(`all reclaimed ${reclaimedAt - atMs} ms after expiry; ${gets} GETs, the slowest took ${maxLatency.toFixed(1)} ms`)
  const listing = (await app.inject({ method: 'GET', url: `${base}/keys?limit=1000`, headers: proj })).json().data
  t.same(listing.items.map((i: { key: string }) => i.key), ['stay'], 'the listing shows none of them')
  t.same(Object.keys((await app.inject({ method: 'GET', url: store, headers: proj })).json().data), ['stay'], 'R8 shows none of them')
  await sleep(200)
  const settled = await rev(app)
  await app.close()

  const again = await build(t, { dir })
  const after = (await again.app.inject({ method: 'GET', url: `${base}/keys?limit=1000`, headers: proj })).json().data
  if (engine.persistent) {
    t.same(after.items.map((i: { key: string }) => i.key), ['stay'], 'a restart resurrects none of them')
    t.ok(after.rev >= settled, `the revision after the restart (${after.rev as number}) is not below the one seen (${settled})`)
  } else {
    t.same(after.items, [], 'a memory-only project restarts empty')
  }
  t.equal((await again.app.inject({ method: 'GET', url: `${store}/exp-00000`, headers: proj })).statusCode, 404)
})
