import type { FastifyInstance } from 'fastify'
import { bearer, build, proj, sys } from '../support/app.js'
import { onEveryEngine } from '../support/engines.js'

const base = '/api/v1/projects/p1'
const store = `${base}/store`
const json = { 'content-type': 'application/json' }
const VARY = 'Authorization, X-API-Key, Api-Key, Origin'

async function put (app: FastifyInstance, key: string, value: string, headers: Record<string, string> = {}) {
  return await app.inject({ method: 'PUT', url: `${store}/${encodeURIComponent(key)}`, headers: { ...proj, ...headers }, payload: value })
}

async function etagOf (app: FastifyInstance, key: string): Promise<string> {
  const res = await app.inject({ method: 'GET', url: `${store}/${encodeURIComponent(key)}`, headers: proj })
  return res.headers.etag as string
}

/** The project's current revision, as the listing route reports it. */
async function rev (app: FastifyInstance): Promise<number> {
  return (await app.inject({ method: 'GET', url: `${base}/keys?limit=1`, headers: proj })).json().data.rev
}

onEveryEngine('ETag on R9, R10 and R11 (GET and HEAD): strong, quoted, one per state', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const first = await put(app, 'k', 'v1')
  t.equal(first.statusCode, 200)
  const tag = first.headers.etag as string
  t.match(tag, /^"[^"]+"$/, 'a strong entity tag, quotes included')
  for (const url of [`${store}/k`, `${store}/k/value`]) {
    const get = await app.inject({ method: 'GET', url, headers: proj })
    t.equal(get.statusCode, 200, url)
    t.equal(get.headers.etag, tag, `GET ${url} has the ETag of the PUT`)
    const head = await app.inject({ method: 'HEAD', url, headers: proj })
    t.equal(head.statusCode, 200, `HEAD ${url}`)
    t.equal(head.headers.etag, tag, `HEAD ${url} has the same ETag`)
    t.equal(head.body, '', `HEAD ${url} has no body`)
  }
  t.equal((await app.inject({ method: 'HEAD', url: `${store}/nope`, headers: proj })).statusCode, 404, 'HEAD of a missing key')
  const same = await put(app, 'k', 'v1')
  t.not(same.headers.etag, tag, 'an identical PUT is a new state with a new ETag')
  const seen = new Set([tag, same.headers.etag as string])
  for (let i = 0; i < 20; i++) seen.add((await put(app, `k${i % 3}`, 'v')).headers.etag as string)
  t.equal(seen.size, 22, 'no two writes share an ETag')
})

onEveryEngine('the etag in JSON equals the header, quotes included', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await put(app, 'a', 'x')
  const header = await etagOf(app, 'a')
  const item = (await app.inject({ method: 'GET', url: `${base}/keys`, headers: proj })).json().data.items[0]
  t.equal(item.etag, header, 'listing item')
  const txn = await app.inject({ method: 'POST', url: `${base}/txn`, headers: { ...proj, ...json }, payload: { ops: [{ op: 'get', key: 'a' }, { op: 'set', key: 'b', value: 1 }] } })
  t.equal(txn.json().data.results[0].etag, header, 'transaction get result')
  t.equal(txn.json().data.results[1].etag, await etagOf(app, 'b'), 'transaction set result')
  const failed = await put(app, 'a', 'y', { 'if-match': '"stale"' })
  t.equal(failed.json().data.etag, header, '412 data')
  const ttl = await app.inject({ method: 'PUT', url: `${store}/a/ttl`, headers: { ...proj, ...json }, payload: { ttl: 100 } })
  t.equal(ttl.headers.etag, await etagOf(app, 'a'), 'TTL route header')
})

onEveryEngine('If-None-Match on reads: 304 with the ETag and no body, weak comparison', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const tag = (await put(app, 'k', 'v')).headers.etag as string
  for (const url of [`${store}/k`, `${store}/k/value`]) {
    for (const method of ['GET', 'HEAD'] as const) {
      for (const inm of [tag, `"other", ${tag}`, `W/${tag}`, '*', `"a",,${tag} , "b"`]) {
        const res = await app.inject({ method, url, headers: { ...proj, 'if-none-match': inm } })
        t.equal(res.statusCode, 304, `${method} ${url} If-None-Match: ${inm}`)
        t.equal(res.headers.etag, tag)
        t.equal(res.body, '', 'no body')
        t.equal(res.headers['cache-control'], 'no-store')
        t.equal(res.headers.vary, VARY)
      }
      for (const inm of ['"other"', `W/"other", "x${tag.slice(1)}`]) {
        const res = await app.inject({ method, url, headers: { ...proj, 'if-none-match': inm } })
        t.equal(res.statusCode, 200, `${method} ${url} If-None-Match: ${inm} does not list the current tag`)
        t.equal(res.headers.etag, tag)
      }
    }
  }
  const missing = await app.inject({ method: 'GET', url: `${store}/nope`, headers: { ...proj, 'if-none-match': '*' } })
  t.equal(missing.statusCode, 404, 'a missing key is 404, not 304')
  const mod = await app.inject({ method: 'GET', url: `${store}/k`, headers: { ...proj, 'if-modified-since': 'Tue, 01 Jan 2999 00:00:00 GMT' } })
  t.equal(mod.statusCode, 200, 'If-Modified-Since is ignored')
})

onEveryEngine('If-Match on PUT, DELETE and the TTL route: 412 with the current ETag', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const tag = (await put(app, 'k', 'v1')).headers.etag as string
  const cases: Array<[string, string, string | null]> = [
    ['k', '"stale"', tag],
    ['k', `W/${tag}`, tag],
    ['k', `"a", W/${tag}`, tag],
    ['missing', tag, null],
    ['missing', '*', null]
  ]
  for (const [key, ifMatch, current] of cases) {
    const before = await rev(app)
    for (const [method, url, payload, headers] of [
      ['PUT', `${store}/${key}`, 'new', {}],
      ['DELETE', `${store}/${key}`, undefined, {}],
      ['PUT', `${store}/${key}/ttl`, JSON.stringify({ ttl: 60 }), json]
    ] as const) {
      const res = await app.inject({ method, url, headers: { ...proj, ...headers, 'if-match': ifMatch }, payload })
      t.equal(res.statusCode, 412, `${method} ${url} If-Match: ${ifMatch}`)
      t.same(res.json(), { status_code: 412, message: `Precondition failed for key '${key}'`, System: null, data: { etag: current } })
      t.equal(res.headers['cache-control'], 'no-store')
      t.equal(res.headers.vary, VARY)
    }
    t.equal(await rev(app), before, 'a 412 is no revision')
  }
  t.equal((await app.inject({ method: 'GET', url: `${store}/k/value`, headers: proj })).body, 'v1', 'nothing changed')
  t.equal((await app.inject({ method: 'GET', url: `${store}/missing`, headers: proj })).statusCode, 404, 'nothing created')

  const listed = await put(app, 'k', 'v2', { 'if-match': `"a", ${tag}` })
  t.equal(listed.statusCode, 200, 'a list naming the current tag matches')
  const star = await put(app, 'k', 'v3', { 'if-match': '*' })
  t.equal(star.statusCode, 200, '* matches an existing key')
  const ttl = await app.inject({ method: 'PUT', url: `${store}/k/ttl`, headers: { ...proj, ...json, 'if-match': star.headers.etag as string }, payload: { ttl: 60 } })
  t.equal(ttl.statusCode, 200, 'TTL route with the current tag')
  const del = await app.inject({ method: 'DELETE', url: `${store}/k`, headers: { ...proj, 'if-match': ttl.headers.etag as string } })
  t.equal(del.statusCode, 200, 'DELETE with the current tag')
  t.equal((await app.inject({ method: 'GET', url: `${store}/k`, headers: proj })).statusCode, 404)
})

onEveryEngine('If-None-Match on writes: * is create-only, a listed tag fails', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const created = await put(app, 'k', 'first', { 'if-none-match': '*' })
  t.equal(created.statusCode, 200, 'creates a missing key')
  const tag = created.headers.etag as string
  const again = await put(app, 'k', 'second', { 'if-none-match': '*' })
  t.equal(again.statusCode, 412, 'the key exists')
  t.same(again.json().data, { etag: tag })
  t.equal(again.json().message, "Precondition failed for key 'k'")
  const listed = await put(app, 'k', 'second', { 'if-none-match': `"x", ${tag}` })
  t.equal(listed.statusCode, 412, 'the current tag is listed')
  const weak = await put(app, 'k', 'second', { 'if-none-match': `W/${tag}` })
  t.equal(weak.statusCode, 412, 'If-None-Match compares weakly')
  const del = await app.inject({ method: 'DELETE', url: `${store}/k`, headers: { ...proj, 'if-none-match': '*' } })
  t.equal(del.statusCode, 412, 'DELETE with If-None-Match * of an existing key')
  t.equal((await app.inject({ method: 'GET', url: `${store}/k/value`, headers: proj })).body, 'first', 'nothing changed')
  const other = await put(app, 'k', 'third', { 'if-none-match': '"other"' })
  t.equal(other.statusCode, 200, 'a tag that is not current lets the write through')
})

onEveryEngine('a malformed entity-tag list is 400 and changes nothing', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await put(app, 'k', 'v')
  const before = await rev(app)
  for (const bad of ['abc', '"a" "b"', 'W/', 'W/abc', '"unterminated', ',', '*, "a"', '"a";', '"a"x']) {
    for (const name of ['if-match', 'if-none-match']) {
      for (const [method, url, payload] of [['PUT', `${store}/k`, 'new'], ['DELETE', `${store}/k`, undefined], ['GET', `${store}/k`, undefined]] as const) {
        const res = await app.inject({ method, url, headers: { ...proj, [name]: bad }, payload })
        t.equal(res.statusCode, 400, `${method} ${name}: ${bad}`)
        t.equal(res.json().status_code, 400)
      }
    }
  }
  t.equal(await rev(app), before)
  t.equal((await app.inject({ method: 'GET', url: `${store}/k/value`, headers: proj })).body, 'v')
  const wrongKey = await app.inject({ method: 'PUT', url: `${store}/k`, headers: { ...bearer('wrong'), 'if-match': 'abc' }, payload: 'x' })
  t.equal(wrongKey.statusCode, 401, 'a wrong key comes before a malformed header')
})

onEveryEngine('require_conditional_writes: 428 without a precondition, and the precedence 428 > 412 > 413 > 400', async (t, engine) => {
  const { app } = await build(t, {
    config: engine.config(c => {
      c.projects![0].security = { keys_and_values_discoverable: true, require_conditional_writes: true }
      c.system!.limits = { max_body_bytes: 100 }
    })
  })
  const created = await put(app, 'k', 'v', { 'if-none-match': '*' })
  t.equal(created.statusCode, 200)
  const tag = created.headers.etag as string
  const before = await rev(app)
  for (const [method, url, payload, headers] of [
    ['PUT', `${store}/k`, 'new', {}],
    ['PUT', `${store}/k`, 'x'.repeat(101), {}],
    ['PUT', `${store}/k`, '{oops', json],
    ['DELETE', `${store}/k`, undefined, {}],
    ['DELETE', `${store}/missing`, undefined, {}],
    ['PUT', `${store}/k/ttl`, JSON.stringify({ ttl: 5 }), json]
  ] as const) {
    const res = await app.inject({ method, url, headers: { ...proj, ...headers }, payload })
    t.equal(res.statusCode, 428, `${method} ${url} without a precondition`)
    t.equal(res.json().status_code, 428)
    t.match(res.json().message, /requires If-Match or If-None-Match/)
  }
  t.equal(await rev(app), before, 'nothing written')
  const badQuery = await app.inject({ method: 'PUT', url: `${store}/k?ttl=-1`, headers: proj, payload: 'v' })
  t.equal(badQuery.statusCode, 400, 'a malformed query comes before 428')
  const badHeader = await put(app, 'k', 'v', { 'if-match': 'nope' })
  t.equal(badHeader.statusCode, 400, 'a malformed header comes before 428')

  const tooLarge = await put(app, 'k', 'x'.repeat(101), { 'if-match': '"stale"' })
  t.equal(tooLarge.statusCode, 412, 'a failing If-Match with a too-large body is 412, not 413')
  t.same(tooLarge.json().data, { etag: tag })
  const badBody = await put(app, 'k', '{oops', { ...json, 'if-match': '"stale"' })
  t.equal(badBody.statusCode, 412, 'a failing If-Match with a malformed body is 412, not 400')
  const large = await put(app, 'k', 'x'.repeat(101), { 'if-match': tag })
  t.equal(large.statusCode, 413, 'a holding If-Match with a too-large body is 413')
  const malformed = await put(app, 'k', '{oops', { ...json, 'if-match': tag })
  t.equal(malformed.statusCode, 400, 'a holding If-Match with a malformed body is 400')
  t.equal(await rev(app), before, 'still nothing written')

  const ok = await put(app, 'k', 'v2', { 'if-match': tag })
  t.equal(ok.statusCode, 200, 'with If-Match the write goes through')
  const ttl = await app.inject({ method: 'PUT', url: `${store}/k/ttl`, headers: { ...proj, ...json, 'if-match': '*' }, payload: { ttl: 50 } })
  t.equal(ttl.statusCode, 200)
  const del = await app.inject({ method: 'DELETE', url: `${store}/k`, headers: { ...proj, 'if-match': ttl.headers.etag as string } })
  t.equal(del.statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: `${store}/missing`, headers: proj })).statusCode, 404, 'reads need no precondition')
})

onEveryEngine('two concurrent If-Match PUTs with the same ETag: exactly one 200, one 412', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  let tag = (await put(app, 'k', 'start')).headers.etag as string
  for (let round = 0; round < 25; round++) {
    const before = await rev(app)
    const a = put(app, 'k', `a${round}`, { 'if-match': tag })
    const b = put(app, 'k', `b${round}`, { 'if-match': tag })
    const answers = await Promise.all([a, b])
    const codes = answers.map(r => r.statusCode).sort()
    t.same(codes, [200, 412], `round ${round}`)
    const winner = answers.find(r => r.statusCode === 200)!
    const loser = answers.find(r => r.statusCode === 412)!
    t.equal(loser.json().data.etag, winner.headers.etag, 'the loser learns the winner\'s ETag')
    t.equal(await rev(app), before + 1, 'one revision')
    tag = winner.headers.etag as string
    t.equal(await etagOf(app, 'k'), tag)
  }
  const dels = await Promise.all([0, 1].map(async () => await app.inject({ method: 'DELETE', url: `${store}/k`, headers: { ...proj, 'if-match': tag } })))
  t.same(dels.map(r => r.statusCode).sort(), [200, 412], 'two concurrent conditional DELETEs: one wins')
})

onEveryEngine('every 2xx write is one revision; reads, 404 and 412 are none', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const steps: Array<[string, () => Promise<{ statusCode: number }>, number, number]> = [
    ['PUT', async () => await put(app, 'k', 'v'), 200, 1],
    ['identical PUT', async () => await put(app, 'k', 'v'), 200, 1],
    ['PUT with ttl', async () => await app.inject({ method: 'PUT', url: `${store}/k?ttl=100`, headers: proj, payload: 'v' }), 200, 1],
    ['TTL route', async () => await app.inject({ method: 'PUT', url: `${store}/k/ttl`, headers: { ...proj, ...json }, payload: { persist: true } }), 200, 1],
    ['GET', async () => await app.inject({ method: 'GET', url: `${store}/k`, headers: proj }), 200, 0],
    ['R8', async () => await app.inject({ method: 'GET', url: store, headers: proj }), 200, 0],
    ['412 PUT', async () => await put(app, 'k', 'x', { 'if-match': '"no"' }), 412, 0],
    ['transaction', async () => await app.inject({ method: 'POST', url: `${base}/txn`, headers: { ...proj, ...json }, payload: { ops: [{ op: 'set', key: 'a', value: 1 }, { op: 'set', key: 'b', value: 2 }, { op: 'delete', key: 'k' }] } }), 200, 1],
    ['get-only transaction', async () => await app.inject({ method: 'POST', url: `${base}/txn`, headers: { ...proj, ...json }, payload: { ops: [{ op: 'get', key: 'a' }] } }), 200, 0],
    ['DELETE', async () => await app.inject({ method: 'DELETE', url: `${store}/a`, headers: proj }), 200, 1],
    ['DELETE of a missing key', async () => await app.inject({ method: 'DELETE', url: `${store}/a`, headers: proj }), 404, 0],
    ['TTL of a missing key', async () => await app.inject({ method: 'PUT', url: `${store}/a/ttl`, headers: { ...proj, ...json }, payload: { ttl: 1 } }), 404, 0],
    ['clear', async () => await app.inject({ method: 'DELETE', url: store, headers: proj }), 200, 1],
    ['clear of an empty store', async () => await app.inject({ method: 'DELETE', url: store, headers: proj }), 200, 1]
  ]
  for (const [name, step, status, revisions] of steps) {
    const before = await rev(app)
    const res = await step()
    t.equal(res.statusCode, status, name)
    t.equal(await rev(app), before + revisions, `${name}: ${revisions} revision(s)`)
  }
})

onEveryEngine('Cache-Control: no-store and Vary on keyed answers', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await put(app, 'k', 'v')
  for (const [method, url, payload] of [
    ['PUT', `${store}/k`, 'v'],
    ['GET', `${store}/k`, undefined],
    ['HEAD', `${store}/k`, undefined],
    ['GET', `${store}/k/value`, undefined],
    ['GET', `${store}/missing`, undefined],
    ['GET', store, undefined],
    ['GET', `${base}/keys`, undefined],
    ['PUT', `${store}/k/ttl`, JSON.stringify({ ttl: 9 })],
    ['POST', `${base}/txn`, JSON.stringify({ ops: [{ op: 'get', key: 'k' }] })],
    ['DELETE', `${store}/k`, undefined]
  ] as const) {
    const res = await app.inject({ method, url, headers: { ...proj, ...json }, payload })
    t.equal(res.headers['cache-control'], 'no-store', `${method} ${url}`)
    t.equal(res.headers.vary, VARY, `${method} ${url}`)
  }
})

onEveryEngine('ETags of an unchanged key survive a restart; later writes never repeat one', async (t, engine) => {
  const first = await build(t, { config: engine.config() })
  const seen = new Set<string>()
  for (let i = 0; i < 5; i++) seen.add((await put(first.app, 'k', 'same')).headers.etag as string)
  let last = await etagOf(first.app, 'k')
  await first.app.close()
  for (let restart = 0; restart < 3; restart++) {
    const again = await build(t, { dir: first.dir })
    const get = await again.app.inject({ method: 'GET', url: `${store}/k`, headers: proj })
    if (engine.persistent) {
      t.equal(get.headers.etag, last, 'the on-disk key keeps its ETag across a restart')
    } else {
      t.equal(get.statusCode, 404, 'a memory-only project starts empty')
    }
    for (let i = 0; i < 5; i++) {
      const tag = (await put(again.app, 'k', 'same')).headers.etag as string
      t.notOk(seen.has(tag), `restart ${restart}: ${tag} is new`)
      seen.add(tag)
      last = tag
    }
    await again.app.close()
  }
})

onEveryEngine('a project deleted and created again never repeats an ETag', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const seen = new Set<string>()
  for (let life = 0; life < 3; life++) {
    const created = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, ...json }, payload: { id: 'p2', storage: { on_disk: engine.onDisk } } })
    t.equal(created.statusCode, 201)
    const key = bearer(created.json().data.new_api_key)
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ method: 'PUT', url: `/api/v1/projects/p2/store/k${i}`, headers: key, payload: 'same' })
      t.equal(res.statusCode, 200)
      const tag = res.headers.etag as string
      t.notOk(seen.has(tag), `life ${life}: ${tag} is new`)
      seen.add(tag)
    }
    const stale = await app.inject({ method: 'PUT', url: '/api/v1/projects/p2/store/k0', headers: { ...key, 'if-match': [...seen][0] }, payload: 'x' })
    t.equal(stale.statusCode, life === 0 ? 200 : 412, life === 0 ? 'the current tag of this life' : 'a tag of an earlier life never matches')
    if (stale.statusCode === 200) seen.add(stale.headers.etag as string)
    t.equal((await app.inject({ method: 'DELETE', url: '/api/v1/projects/p2', headers: sys })).statusCode, 200)
  }
})

onEveryEngine('HEAD on R8 and on the listing: 200 without a body', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await put(app, 'k', 'v')
  for (const url of [store, `${base}/keys`, `${base}/keys?limit=1`]) {
    const res = await app.inject({ method: 'HEAD', url, headers: proj })
    t.equal(res.statusCode, 200, `HEAD ${url}`)
    t.equal(res.body, '', 'no body')
    t.equal(res.headers['cache-control'], 'no-store')
  }
})

onEveryEngine('the revision never goes back: restarts, clear and switches of on_disk; ETags never repeat', async (t, engine) => {
  const first = await build(t, { config: engine.config() })
  const seen = new Set<string>()
  const write = async (app: FastifyInstance): Promise<void> => {
    const res = await put(app, 'k', 'same')
    t.equal(res.statusCode, 200)
    t.notOk(seen.has(res.headers.etag as string), 'a new ETag')
    seen.add(res.headers.etag as string)
  }
  for (let i = 0; i < 3; i++) await write(first.app)
  let last = await rev(first.app)
  t.equal(last, 3)
  t.equal((await first.app.inject({ method: 'DELETE', url: store, headers: proj })).statusCode, 200)
  t.equal(await rev(first.app), last + 1, 'clear is a revision and does not reset it')
  last += 1
  for (const next of [!engine.onDisk, engine.onDisk]) {
    const switched = await first.app.inject({ method: 'PUT', url: base, headers: { ...proj, ...json }, payload: { storage: { on_disk: next } } })
    t.equal(switched.statusCode, 200, `switch to on_disk ${String(next)}`)
    t.ok(await rev(first.app) >= last, 'a switch of on_disk keeps the revision')
    await write(first.app)
    t.ok(await rev(first.app) > last)
    last = await rev(first.app)
  }
  await first.app.close()
  const again = await build(t, { dir: first.dir })
  if (engine.persistent) t.ok(await rev(again.app) >= last, 'an on-disk project restarts at its revision or later')
  await write(again.app)
})
