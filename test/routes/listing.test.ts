import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { build, proj } from '../support/app.js'
import { onEveryEngine } from '../support/engines.js'

const base = '/api/v1/projects/p1'
const store = `${base}/store`
const keys = `${base}/keys`
const json = { 'content-type': 'application/json' }

/** Write `values` (key → JSON value) in transactions of at most 1,000 ops. */
async function fill (app: FastifyInstance, values: Record<string, unknown>): Promise<void> {
  const entries = Object.entries(values)
  for (let i = 0; i < entries.length; i += 1000) {
    const ops = entries.slice(i, i + 1000).map(([key, value]) => ({ op: 'set', key, value }))
    const res = await app.inject({ method: 'POST', url: `${base}/txn`, headers: { ...proj, ...json }, payload: { ops } })
    if (res.statusCode !== 200) throw new Error(res.body)
  }
}

async function list (app: FastifyInstance, query = '') {
  return await app.inject({ method: 'GET', url: `${keys}${query}`, headers: proj })
}

interface Page { items: Array<{ key: string, [name: string]: unknown }>, next_cursor: string | null, rev: number }

/** Walk the whole listing with `query`, following next_cursor; every page is checked for its Link header. */
async function walk (t: Test, app: FastifyInstance, query: string, between: () => Promise<void> = async () => {}): Promise<{ keys: string[], pages: Page[] }> {
  const pages: Page[] = []
  let cursor: string | null = null
  do {
    const sep = query === '' ? '?' : '&'
    const res = await list(app, cursor === null ? (query === '' ? '' : `?${query}`) : `?${query}${query === '' ? '' : sep}cursor=${encodeURIComponent(cursor)}`)
    if (res.statusCode !== 200) throw new Error(res.body)
    const page = res.json().data as Page
    if (page.next_cursor === null) {
      if (res.headers.link !== undefined) t.fail('a last page has no Link header')
    } else if (!String(res.headers.link).endsWith('; rel="next"') || !String(res.headers.link).includes(`cursor=${encodeURIComponent(page.next_cursor)}`)) {
      t.fail(`Link header ${String(res.headers.link)} does not carry the next cursor`)
    }
    pages.push(page)
    cursor = page.next_cursor
    await between()
  } while (cursor !== null)
  return { keys: pages.flatMap(p => p.items.map(i => i.key)), pages }
}

function utf8Order (list: string[]): string[] {
  return [...list].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
}

onEveryEngine('keys come in UTF-8 byte order, "\\uFFFF" before "\\u{10000}"', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const names = ['b', 'a', '\u{10000}', '\uFFFF', 'é', 'Z', 'a/b', 'ab', 'a b', '~', '\u007f', 'ü', '😀', '\uE000', 'A', '0']
  for (const name of names) {
    t.equal((await app.inject({ method: 'PUT', url: `${store}/${encodeURIComponent(name)}`, headers: proj, payload: 'v' })).statusCode, 200)
  }
  const { keys: walked } = await walk(t, app, 'limit=3')
  t.same(walked, utf8Order(names), 'code point order across pages')
  t.not(utf8Order(names).join(), [...names].sort().join(), 'which differs from JavaScript\'s UTF-16 sort')
  const all = (await list(app, '?limit=1000')).json().data.items.map((i: { key: string }) => i.key)
  t.same(all, utf8Order(names), 'in one page too')
  t.ok(all.indexOf('\uFFFF') < all.indexOf('\u{10000}'), '"\\uFFFF" < "\\u{10000}"')
})

onEveryEngine('prefix, limit (1 to 1000, default 100) and values', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const values: Record<string, unknown> = {}
  for (let i = 0; i < 1100; i++) values[`user/${String(i).padStart(4, '0')}`] = { n: i }
  values['user1/a'] = 'u1a'
  values['user10/a'] = 'u10a'
  values.other = [1, 2]
  await fill(app, values)

  const first = await list(app)
  t.equal(first.statusCode, 200)
  t.equal(first.json().message, "Keys of project 'p1'")
  t.equal(first.json().data.items.length, 100, 'default limit 100')
  t.notOk('value' in first.json().data.items[0], 'no values by default')
  t.equal((await list(app, '?limit=1')).json().data.items.length, 1)
  t.equal((await list(app, '?limit=1000')).json().data.items.length, 1000)
  for (const bad of ['0', '1001', '-1', 'x', '1.5', '0x2', '1e2', '', '%202']) {
    const res = await list(app, `?limit=${bad}`)
    t.equal(res.statusCode, 400, `limit=${bad}`)
    t.equal(res.json().status_code, 400)
  }
  t.equal((await list(app, '?values=maybe')).statusCode, 400, 'values must be a boolean')

  const u1 = (await list(app, '?prefix=user1')).json().data
  t.same(u1.items.map((i: { key: string }) => i.key), ['user1/a', 'user10/a'], 'a prefix compares bytes: user1 covers user10')
  t.equal(u1.next_cursor, null)
  t.same((await list(app, `?prefix=${encodeURIComponent('user1/')}&values=true`)).json().data.items.map((i: { key: string, value: unknown }) => [i.key, i.value]), [['user1/a', 'u1a']])
  t.same((await list(app, '?prefix=nothing')).json().data, { items: [], next_cursor: null, rev: first.json().data.rev }, 'an empty listing')

  const { keys: users, pages } = await walk(t, app, `prefix=${encodeURIComponent('user/')}&limit=250&values=true`)
  t.equal(users.length, 1100)
  t.same(pages.map(p => p.items.length), [250, 250, 250, 250, 100], 'pages of the limit, the last one shorter')
  t.same(pages[4].items[99].value, { n: 1099 }, 'values=true on every page')
  t.ok(pages.every(p => p.items.every(i => i.key.startsWith('user/'))))
})

onEveryEngine('items carry the record fields and the ETag of R10', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await app.inject({ method: 'PUT', url: `${store}/k?ttl=100`, headers: { ...proj, ...json }, payload: { a: 'é' } })
  await app.inject({ method: 'PUT', url: `${store}/s`, headers: proj, payload: 'text' })
  const items = (await list(app, '?values=true')).json().data.items
  for (const item of items) {
    const get = await app.inject({ method: 'GET', url: `${store}/${item.key as string}`, headers: proj })
    const rec = get.json().data
    t.same(item, {
      key: item.key,
      etag: get.headers.etag,
      version: rec.version,
      created_at: rec.created_at,
      updated_at: rec.updated_at,
      size_bytes: rec.size_bytes,
      type: rec.type,
      expires_at: rec.expires_at,
      value: rec.value
    }, `item ${item.key as string}`)
  }
  t.type(items[0].expires_at, 'number')
  t.equal(items[1].expires_at, null)
  t.same(Object.keys((await list(app)).json().data.items[0]), ['key', 'etag', 'version', 'created_at', 'updated_at', 'size_bytes', 'type', 'expires_at'])
})

onEveryEngine('next_cursor is null only at the end; Link names the next page; rev is the first page\'s', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await fill(app, { a: 1, b: 2, c: 3, d: 4 })
  const first = await list(app, '?limit=2')
  const page1 = first.json().data
  t.same(page1.items.map((i: { key: string }) => i.key), ['a', 'b'])
  t.type(page1.next_cursor, 'string')
  t.equal(first.headers.link, `<${keys}?limit=2&cursor=${encodeURIComponent(page1.next_cursor)}>; rel="next"`)
  const startRev = page1.rev

  await app.inject({ method: 'PUT', url: `${store}/e`, headers: proj, payload: 'new' })
  const link = /^<([^>]+)>/.exec(first.headers.link as string)![1]
  const second = await app.inject({ method: 'GET', url: link, headers: proj })
  const page2 = second.json().data
  t.same(page2.items.map((i: { key: string }) => i.key), ['c', 'd'], 'following the Link header')
  t.equal(page2.rev, startRev, 'rev stays the first page\'s for the whole walk')
  t.type(page2.next_cursor, 'string', 'e was added: more to come')
  const third = await list(app, `?limit=2&cursor=${encodeURIComponent(page2.next_cursor)}`)
  t.same(third.json().data, { items: [third.json().data.items[0]], next_cursor: null, rev: startRev })
  t.equal(third.json().data.items[0].key, 'e')
  t.equal(third.headers.link, undefined, 'no Link on the last page')
  t.equal((await list(app)).json().data.rev, startRev + 1, 'a new walk starts at the current revision')

  const { pages } = await walk(t, app, 'limit=5')
  t.same(pages.map(p => [p.items.length, p.next_cursor === null]), [[5, true]], 'a listing that fits one page is complete at once')
  const exact = await walk(t, app, 'limit=1')
  t.equal(exact.keys.length, 5)
  t.ok(exact.pages.slice(0, -1).every(p => p.items.length === 1), 'only the last page may be empty')
})

onEveryEngine('malformed cursors and cursors of another prefix are 400', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  await fill(app, { a1: 1, a2: 2, a3: 3, b1: 4 })
  const cursor = (await list(app, '?prefix=a&limit=1')).json().data.next_cursor as string
  t.equal((await list(app, `?prefix=a&limit=1&cursor=${cursor}`)).statusCode, 200)
  const forged = Buffer.from(JSON.stringify({ x: 1 })).toString('base64url')
  for (const [query, why] of [
    [`?prefix=b&cursor=${cursor}`, 'another prefix'],
    [`?cursor=${cursor}`, 'no prefix'],
    ['?cursor=not%20a%20cursor', 'not base64url'],
    ['?cursor=abc', 'not JSON'],
    [`?cursor=${forged}`, 'JSON without the fields'],
    [`?cursor=${'A'.repeat(200_000)}`, 'far too long'],
    ['?cursor=', 'empty']
  ]) {
    const res = await list(app, query)
    t.equal(res.statusCode, 400, why)
    t.equal(res.json().status_code, 400, `${why}: ${res.json().message as string}`)
  }
})

onEveryEngine('403 when keys_and_values_discoverable is false, before any malformed query', async (t, engine) => {
  const { app } = await build(t, {
    config: engine.config(c => { c.projects![0].security = { keys_and_values_discoverable: false } })
  })
  await app.inject({ method: 'PUT', url: `${store}/k`, headers: proj, payload: 'v' })
  for (const query of ['', '?limit=5', '?limit=0', '?cursor=bad', '?values=maybe']) {
    const res = await list(app, query)
    t.equal(res.statusCode, 403, `GET keys${query}`)
    t.equal(res.json().message, 'Listing the keys of this project is disabled')
  }
  t.equal((await app.inject({ method: 'GET', url: keys, headers: { authorization: 'Bearer wrong' } })).statusCode, 401, 'a wrong key is 401 first')
})

onEveryEngine('a walk while others write and delete: keys that exist throughout appear exactly once', async (t, engine) => {
  const { app } = await build(t, { config: engine.config() })
  const stable: Record<string, unknown> = {}
  const doomed: Record<string, unknown> = {}
  for (let i = 0; i < 400; i++) stable[`k${String(i).padStart(4, '0')}`] = i
  for (let i = 0; i < 400; i++) doomed[`k${String(i).padStart(4, '0')}x`] = i
  await fill(app, { ...stable, ...doomed })

  const control = { stop: false }
  let writes = 0
  const doomedKeys = Object.keys(doomed)
  const writer = (async () => {
    for (let i = 0; !control.stop; i++) {
      const n = String((i * 37) % 400).padStart(4, '0')
      const ops: Array<Promise<unknown>> = [
        app.inject({ method: 'PUT', url: `${store}/k${n}a${i}`, headers: proj, payload: 'new' }),
        app.inject({ method: 'PUT', url: `${store}/k${n}`, headers: proj, payload: `rewritten ${i}` })
      ]
      if (i < doomedKeys.length) ops.push(app.inject({ method: 'DELETE', url: `${store}/${doomedKeys[(i * 7) % doomedKeys.length]}`, headers: proj }))
      await Promise.all(ops)
      writes += ops.length
    }
  })()
  // Besides the writer running alongside, each page is followed by a write before and after
  // the walk's position and a delete, so every page boundary sees the store change.
  let page = 0
  const between = async (): Promise<void> => {
    page++
    const n = String(Math.min(399, page * 7)).padStart(4, '0')
    await Promise.all([
      app.inject({ method: 'PUT', url: `${store}/k${n}b`, headers: proj, payload: 'between' }),
      app.inject({ method: 'PUT', url: `${store}/a${page}`, headers: proj, payload: 'before' }),
      app.inject({ method: 'DELETE', url: `${store}/${doomedKeys[(page * 13) % doomedKeys.length]}`, headers: proj })
    ])
    writes += 3
  }
  const { keys: walked, pages } = await walk(t, app, 'limit=7', between)
  control.stop = true
  await writer
  t.ok(writes > 0, `${writes} writes ran during a walk of ${pages.length} pages`)
  t.equal(new Set(walked).size, walked.length, 'no key appears twice')
  const seen = new Set(walked)
  t.same(Object.keys(stable).filter(k => !seen.has(k)), [], 'no key that existed throughout is missed')
  t.same(walked, utf8Order(walked), 'in order across pages')
  t.ok(pages.every(p => p.rev === pages[0].rev), 'one rev for the whole walk')
})

onEveryEngine('a cursor outlives a clear and an on-disk restart; a memory-only restart is another epoch (400)', async (t, engine) => {
  const first = await build(t, { config: engine.config() })
  await fill(first.app, { a: 1, b: 2, c: 3 })
  const page = (await list(first.app, '?limit=1')).json().data
  t.equal((await first.app.inject({ method: 'DELETE', url: store, headers: proj })).statusCode, 200)
  await fill(first.app, { a: 1, b: 2, c: 3 })
  const afterClear = await list(first.app, `?limit=1&cursor=${encodeURIComponent(page.next_cursor)}`)
  t.equal(afterClear.statusCode, 200, 'clear keeps the epoch')
  t.same(afterClear.json().data.items.map((i: { key: string }) => i.key), ['b'])
  t.equal(afterClear.json().data.rev, page.rev)
  await first.app.close()
  const again = await build(t, { dir: first.dir })
  if (engine.persistent) {
    const res = await list(again.app, `?limit=1&cursor=${encodeURIComponent(page.next_cursor)}`)
    t.equal(res.statusCode, 200, 'the epoch survives an on-disk restart')
    t.same(res.json().data.items.map((i: { key: string }) => i.key), ['b'])
  } else {
    const res = await list(again.app, `?limit=1&cursor=${encodeURIComponent(page.next_cursor)}`)
    t.equal(res.statusCode, 400, 'a cursor of the epoch before the restart is history that is gone')
    t.equal(res.json().status_code, 400)
  }
})
