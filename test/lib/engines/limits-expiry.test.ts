import t from 'tap'
import { memoryOnly } from '../../../lib/engines/local/changes.js'
import { LocalEngine } from '../../../lib/engines/local/engine.js'

// The clock the engine reads; its reclaim timer still waits in real time (10 s here), so expired keys stay unreclaimed during a test.
function engine (maxKeys: number): { store: LocalEngine, advance: (ms: number) => void } {
  let now = 1_000_000
  const store = new LocalEngine('p', new Map(), memoryOnly, { limits: { maxKeys, maxBytes: Infinity, maxValueBytes: Infinity }, now: () => now })
  t.teardown(async () => { await store.close() })
  return { store, advance: ms => { now += ms } }
}

t.test('rewriting expired keys that are not reclaimed yet never takes a project past max_keys', async t => {
  const { store, advance } = engine(2)
  await store.set('a', 1, { expiry: { kind: 'after', ms: 10_000 } })
  await store.set('b', 2, { expiry: { kind: 'after', ms: 10_000 } })
  advance(20_000)
  await store.set('x', 'new')
  await store.set('a', 'again')
  await t.rejects(store.set('b', 'again'), { name: 'LimitExceededError' }, 'a third live key is refused')
  t.same((await store.entries()).map(([k]) => k).sort(), ['a', 'x'])
})

t.test('a transaction that deletes an expired key and sets new ones counts it once', async t => {
  const { store, advance } = engine(2)
  await store.set('k', 1, { expiry: { kind: 'after', ms: 10_000 } })
  await store.set('live', 1)
  advance(20_000)
  await t.rejects(store.txn([], [{ op: 'delete', key: 'k' }, { op: 'set', key: 'new1', value: 1 }, { op: 'set', key: 'new2', value: 2 }]), { name: 'LimitExceededError' },
    'live + new1 + new2 would be three keys')
  const ok = await store.txn([], [{ op: 'delete', key: 'k' }, { op: 'set', key: 'new1', value: 1 }])
  t.equal(ok.results.length, 2, 'live + new1 fits')
  t.same((await store.entries()).map(([k]) => k).sort(), ['live', 'new1'])
})
