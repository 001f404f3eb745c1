import t from 'tap'
import fc from 'fast-check'
import { compareKeys } from '../../../lib/engines/order.js'
import { memoryOnly } from '../../../lib/engines/local/changes.js'
import { LocalEngine } from '../../../lib/engines/local/engine.js'

function utf8Compare (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

t.test('keys compare in UTF-8 byte order, not UTF-16 code unit order', async t => {
  t.ok(compareKeys('\uFFFF', '\u{10000}') < 0, 'U+FFFF sorts before U+10000')
  t.ok('\uFFFF' > '\u{10000}', 'where plain JavaScript comparison says the opposite')
  t.ok(compareKeys('a', 'ab') < 0)
  t.equal(compareKeys('same', 'same'), 0)
  t.ok(compareKeys('\uE000', '\u{1F600}') < 0)
  t.ok(compareKeys('\u{1F600}', '\uD7FF') > 0)
  fc.assert(fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
    return Math.sign(compareKeys(a, b)) === Math.sign(utf8Compare(a, b))
  }), { numRuns: 2000 })
})

async function storeWith (keys: string[]): Promise<LocalEngine> {
  const store = new LocalEngine('p', new Map(), memoryOnly)
  for (const key of keys) await store.set(key, key.length)
  return store
}

async function walk (store: LocalEngine, prefix: string, limit: number): Promise<string[]> {
  const seen: string[] = []
  let after: string | undefined
  for (;;) {
    const page = await store.list({ prefix, after, limit })
    t.ok(page.entries.length <= limit, 'a page holds at most limit entries')
    seen.push(...page.entries.map(([k]) => k))
    if (!page.more) return seen
    after = page.entries[page.entries.length - 1][0]
  }
}

t.test('list pages through the keys in order, with prefix and limit', async t => {
  const keys = ['b', 'a', 'ab', 'a/1', 'a/2', 'a/10', '\u{10000}', '\uFFFF', 'z', '']
  const store = await storeWith(keys)
  const page = await store.list({ limit: 3 })
  t.same(page.entries.map(([k]) => k), ['', 'a', 'a/1'])
  t.equal(page.more, true)
  t.same(page.entries[1][1].value, 1, 'entries carry their records')
  t.same(await walk(store, '', 2), [...keys].sort(utf8Compare), 'every key once, in byte order')
  t.same(await walk(store, 'a/', 1), ['a/1', 'a/10', 'a/2'], 'only the prefix')
  t.strictSame(await store.list({ prefix: 'nothing', limit: 5 }), { entries: [], more: false, revision: await store.revision() }, 'an empty page still names the revision')
  t.same((await store.list({ limit: 1 })).revision, { epoch: (await store.revision()).epoch, rev: keys.length }, 'one revision per write')
  t.same((await store.list({ prefix: 'a', after: 'a/2', limit: 10 })).entries.map(([k]) => k), ['ab'], 'after a key inside the prefix')
  t.same((await store.list({ prefix: 'b', after: 'a', limit: 10 })).entries.map(([k]) => k), ['b'], 'after a key before the prefix starts at the prefix')
  t.same((await store.list({ after: 'zz', limit: 10 })).entries.map(([k]) => k), ['\uFFFF', '\u{10000}'], 'keys past ASCII sort last')
  t.same((await store.list({ after: '\u{10000}', limit: 10 })).entries, [], 'after the last key')
  const exact = await store.list({ prefix: 'a/', limit: 3 })
  t.equal(exact.more, false, 'a page that ends exactly at the last match says there is no more')
})

t.test('the order follows writes, deletes and clears made after the first listing', async t => {
  const store = await storeWith(['m', 'c'])
  t.same((await store.list({ limit: 10 })).entries.map(([k]) => k), ['c', 'm'])
  await store.set('a', 1)
  await store.delete('m')
  await store.set('c', 'again')
  t.same((await store.list({ limit: 10 })).entries.map(([k, r]) => [k, r.value]), [['a', 1], ['c', 'again']])
  await store.clear()
  t.strictSame(await store.list({ limit: 10 }), { entries: [], more: false, revision: { epoch: (await store.revision()).epoch, rev: 6 } }, 'the clear was the sixth revision')
  await store.set('x', 1)
  t.same((await store.list({ limit: 10 })).entries.map(([k]) => k), ['x'])
})

t.test('a listing walked while another client writes misses and repeats no key that existed throughout', async t => {
  const stable = Array.from({ length: 300 }, (_, i) => `k${String(i).padStart(4, '0')}`)
  const store = await storeWith(stable)
  const seen: string[] = []
  let after: string | undefined
  let round = 0
  for (;;) {
    const page = await store.list({ after, limit: 17 })
    seen.push(...page.entries.map(([k]) => k))
    // Between pages: new keys before and after the cursor, and churn of other keys.
    await store.set(`k${String(round).padStart(4, '0')}-new`, round)
    await store.set(`zz${round}`, round)
    if (round > 0) await store.delete(`zz${round - 1}`)
    round++
    if (!page.more) break
    after = page.entries[page.entries.length - 1][0]
  }
  const stableSeen = seen.filter(k => stable.includes(k))
  t.same(stableSeen, stable, 'every stable key exactly once, in order')
  t.equal(new Set(seen).size, seen.length, 'no key repeated')
})
