import t from 'tap'
import { memoryOnly, type Change, type Persistence, type StoreView } from '../../../lib/engines/local/changes.js'
import { LocalEngine } from '../../../lib/engines/local/engine.js'
import type { KvRecord } from '../../../lib/record.js'

/**
 * A persistence that records batches and holds each one until the test lets
 * it go (or fails it): the store's pipeline is what is under test here; the
 * journal tests cover the disk.
 */
class GatedPersistence implements Persistence {
  bytesOnDisk = 0
  batches: Change[][] = []
  wrote: Array<ReadonlyMap<string, KvRecord>> = []
  removed = 0
  flushed = 0
  #gates: Array<{ resolve: () => void, reject: (e: Error) => void }> = []
  #view: StoreView = new Map()

  attach (view: StoreView): void { this.#view = view }

  async append (changes: readonly Change[]): Promise<void> {
    this.batches.push([...changes])
    await new Promise<void>((resolve, reject) => { this.#gates.push({ resolve, reject }) })
  }

  applied (): void {}

  async writeAll (): Promise<void> {
    this.wrote.push(new Map(this.#view))
  }

  async flush (): Promise<void> { this.flushed++ }
  async remove (): Promise<void> { this.removed++ }

  /** Wait until a batch is waiting on the disk. */
  async waiting (): Promise<void> {
    while (this.#gates.length === 0) await new Promise(resolve => setImmediate(resolve))
  }

  async pass (): Promise<void> {
    await this.waiting()
    this.#gates.shift()?.resolve()
  }

  async fail (): Promise<void> {
    await this.waiting()
    this.#gates.shift()?.reject(new Error('disk on fire'))
  }
}

async function outcome (p: Promise<unknown>): Promise<unknown> {
  return await p.then(v => ({ ok: v }), (e: { kind?: string }) => ({ failure: e.kind }))
}

t.test('writes queued behind a batch build on it, and reach memory only when their own batch is durable', async t => {
  const disk = new GatedPersistence()
  const store = new LocalEngine('p', new Map(), disk)
  const first = store.set('k', 1)
  await disk.waiting()
  const second = store.set('k', 2)
  const gone = store.delete('k')
  const third = store.set('k', 3)
  t.equal(store.peek('k'), undefined, 'nothing is visible before the disk answered')
  await disk.pass()
  const r1 = await first
  t.equal(store.peek('k')?.value, 1)
  t.same(disk.batches[1].map(c => c.op), ['set', 'delete', 'set'], 'the three queued writes went as one batch')
  await disk.pass()
  t.equal(await gone, true, 'the delete saw the key a queued write had set')
  const r2 = await second
  const r3 = await third
  t.equal(r2.created_at, r1.created_at, 'created_at carried across queued writes')
  t.equal(r3.value, 3)
  t.equal(store.peek('k')?.value, 3)
})

t.test('a failed batch fails every write queued behind it; memory stays; the store goes on', async t => {
  const disk = new GatedPersistence()
  const store = new LocalEngine('p', new Map([['a', { value: 'A', created_at: 1, updated_at: 1, size_bytes: 1, type: 'string' }]]), disk)
  const doomed = outcome(store.set('b', 1))
  await disk.waiting()
  const behind = [outcome(store.delete('a')), outcome(store.clear()), outcome(store.set('c', 1))]
  await disk.fail()
  t.same(await doomed, { failure: 'storage_unavailable' })
  t.same(await Promise.all(behind), [{ failure: 'storage_unavailable' }, { failure: 'storage_unavailable' }, { failure: 'storage_unavailable' }])
  t.same([...store.view].map(([k]) => k), ['a'], 'memory as before')
  t.equal(disk.batches.length, 1, 'the writes behind the failed batch never reached the disk')
  const next = store.delete('a')
  await disk.pass()
  t.equal(await next, true, 'later writes decide on memory again')
  t.equal(store.usage().keys, 0)
})

t.test('clear then set in one batch leaves only the set', async t => {
  const disk = new GatedPersistence()
  const store = new LocalEngine('p', new Map(), disk)
  const set = store.set('a', 1)
  const clear = store.clear()
  const setB = store.set('b', 2)
  const deleteA = store.delete('a')
  await disk.pass()
  await Promise.all([set, clear, setB])
  t.equal(await deleteA, false, 'a was cleared before the delete was decided')
  t.same(disk.batches[0].map(c => c.op), ['set', 'clear', 'set'])
  t.same([...store.view].map(([k, r]) => [k, r.value]), [['b', 2]])
})

t.test('switching persistence waits for writes in flight; writes during the switch go to the new one', async t => {
  const before = new GatedPersistence()
  const after = new GatedPersistence()
  const store = new LocalEngine('p', new Map(), before)
  const inFlight = store.set('a', 1)
  await before.waiting()
  const switching = store.setPersistence(after)
  const during = store.set('b', 2)
  await before.pass()
  await inFlight
  await switching
  t.same([...after.wrote[0].keys()], ['a'], 'the new persistence took over the store with the write in flight')
  t.equal(before.removed, 1, 'the old persistence removed its files')
  await after.pass()
  await during
  t.same(after.batches, [[{ op: 'set', key: 'b', record: store.peek('b') }]])
  t.equal(store.persistent, true)
  await store.setPersistence(memoryOnly)
  t.equal(store.persistent, false)
  t.equal(after.removed, 1)
  await store.set('c', 3)
  t.equal(store.peek('c')?.value, 3)
  t.equal(store.usage().bytesOnDisk, 0)
})

t.test('a persistence that cannot take the store over: 507, the store keeps the old one', async t => {
  const store = new LocalEngine('p', new Map(), memoryOnly)
  const broken: Persistence = { ...memoryOnly, writeAll: async () => { throw new Error('read-only') } }
  await t.rejects(store.setPersistence(broken), { name: 'StorageUnavailableError', kind: 'storage_unavailable' })
  t.equal(store.persistence, memoryOnly)
})

t.test('close and destroy wait for writes in flight; later writes find no project', async t => {
  const disk = new GatedPersistence()
  const store = new LocalEngine('p', new Map(), disk)
  const write = store.set('a', 1)
  await disk.waiting()
  const closing = store.close()
  const late = outcome(store.set('b', 2))
  await disk.pass()
  await write
  await closing
  t.equal(disk.flushed, 1)
  t.same(await late, { failure: 'not_found' })
  await store.close()
  t.equal(disk.flushed, 1, 'closing twice flushes once')
  await t.rejects(store.setPersistence(memoryOnly), { name: 'NotFoundError', kind: 'not_found' })
  await store.destroy()
  t.equal(disk.removed, 1)
  t.equal(store.usage().keys, 0)
})
