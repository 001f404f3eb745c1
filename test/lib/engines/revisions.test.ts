import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { LocalBackend } from '../../../lib/engines/local/backend.js'
import { memoryOnly, type Persistence } from '../../../lib/engines/local/changes.js'
import { LocalEngine } from '../../../lib/engines/local/engine.js'
import { journalFileName, metaFileName, storeFileName } from '../../../lib/engines/local/files.js'
import { Journal } from '../../../lib/engines/local/journal.js'
import { snapshotText } from '../../../lib/engines/local/snapshot-file.js'
import type { Revision, StoreLimits } from '../../../lib/engines/types.js'
import { etagOf, type KvRecord } from '../../../lib/record.js'

const ID = 'p'
const KINDS = ['memory', 'disk'] as const
type Kind = typeof KINDS[number]

interface OpenOptions {
  now?: () => number
  limits?: StoreLimits
  maxBytes?: number
}

const NO_LIMITS: StoreLimits = { maxValueBytes: Infinity, maxKeys: Infinity, maxBytes: Infinity }

/** A store of `kind`; on disk its files are in `dir` (opened again from them when they exist). */
async function openStore (kind: Kind, dir: string, options: OpenOptions = {}): Promise<LocalEngine> {
  const journalOptions = { durability: 'always' as const, maxBytes: options.maxBytes ?? 1 << 20 }
  const persistenceFor = async (onDisk: boolean): Promise<Persistence> => onDisk ? await Journal.create(dir, ID, journalOptions) : memoryOnly
  const base = { now: options.now, limits: options.limits ?? NO_LIMITS, persistenceFor }
  if (kind === 'memory') return new LocalEngine(ID, new Map(), memoryOnly, base)
  const opened = await Journal.open(dir, ID, journalOptions)
  return new LocalEngine(ID, opened.data, opened.persistence, { ...base, revision: opened.revision })
}

/** A fake clock, epoch ms, moved by hand. */
function fakeClock (start = 1_800_000_000_000): { now: () => number, set: (ms: number) => void, at: number } {
  const clock = {
    at: start,
    now: () => clock.at,
    set: (ms: number) => { clock.at = ms }
  }
  return clock
}

interface Line { op: string, key?: string, rev?: number, record?: KvRecord, keys?: string[], changes?: unknown[] }

function journalLines (dir: string): Line[] {
  const file = journalFileName(dir, ID)
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Line)
}

function meta (dir: string): Revision {
  return JSON.parse(readFileSync(metaFileName(dir, ID), 'utf8')) as Revision
}

/** Wait until `done` holds, polling; fails the test after `ms` (a bound against hanging, not a speed check). */
async function until (t: Test, what: string, done: () => boolean, ms = 30_000): Promise<void> {
  const start = Date.now()
  while (!done()) {
    if (Date.now() - start > ms) {
      t.fail(`${what}: not within ${ms} ms`)
      return
    }
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

async function rev (store: LocalEngine): Promise<number> {
  return (await store.revision()).rev
}

for (const kind of KINDS) {
  t.test(`${kind}: the revision grows by one per write, not for a delete of a missing key, a failed precondition or a read-only transaction`, async t => {
    const dir = t.testdir()
    const store = await openStore(kind, dir)
    const { epoch } = await store.revision()
    t.match(epoch, /^[A-Za-z0-9_-]{12}$/, 'a random epoch')
    t.equal(await rev(store), 0, 'a new store is at revision 0')
    const a1 = await store.set('a', 1)
    t.equal(a1.version, 1)
    t.equal(await rev(store), 1)
    const a2 = await store.set('a', 1)
    t.equal(a2.version, 2, 'an identical write is a revision too')
    t.not(etagOf(a2), etagOf(a1), 'and a new ETag')
    t.equal(await store.delete('missing'), false)
    t.equal(await rev(store), 2, 'deleting a missing key is no revision')
    await t.rejects(store.set('a', 3, { ifMatch: [etagOf(a1)] }), { name: 'PreconditionFailedError' })
    await t.rejects(store.setExpiry('missing', { kind: 'clear' }), { name: 'NotFoundError' })
    await t.rejects(store.txn([{ key: 'a', exists: false }], [{ op: 'set', key: 'z', value: 1 }]), { name: 'TxnConflictError' })
    t.equal(await rev(store), 2, 'failed writes are no revision')
    t.equal(await store.delete('a'), true)
    t.equal(await rev(store), 3)
    await store.set('b', 'B')
    const b = await store.setExpiry('b', { kind: 'at', ms: Date.now() + 3_600_000 })
    t.equal(b.version, 5, 'a change of expiry is a revision')
    const read = await store.txn([], [{ op: 'get', key: 'b' }, { op: 'get', key: 'nothing' }])
    t.equal(read.rev, 5, 'a read-only transaction answers the current revision')
    t.equal(await rev(store), 5, 'and makes none')
    const written = await store.txn([], [{ op: 'set', key: 'c', value: 'C' }, { op: 'delete', key: 'b' }, { op: 'set', key: 'd', value: 'D' }])
    t.equal(written.rev, 6, 'a transaction is one revision, however many ops')
    t.equal(await rev(store), 6)
    const c = await store.get('c') as KvRecord
    const d = await store.get('d') as KvRecord
    t.same([c.version, d.version], [6, 6], 'every record of the transaction has its revision as version')
    await store.clear()
    t.equal(await rev(store), 7, 'a clear is one revision')
    await store.set('e', 'E', { expiry: { kind: 'at', ms: Date.now() + 30 } })
    t.equal(await rev(store), 8)
    await until(t, 'the expired key reclaimed', () => store.view.size === 0)
    t.equal(await rev(store), 9, 'one round of expiry reclaim is one revision')
    t.same((await store.list({ limit: 10 })).revision, { epoch, rev: 9 }, 'a listing names the same revision')
    t.same(await store.revision(), { epoch, rev: 9 }, 'the epoch never changed')

    if (kind === 'disk') {
      const lines = journalLines(dir)
      t.same(lines.map(l => [l.op, l.op === 'set' ? l.record?.version : l.rev]), [
        ['set', 1], ['set', 2], ['delete', 3], ['set', 4], ['set', 5], ['txn', 6], ['clear', 7], ['set', 8], ['expire', 9]
      ], 'one journal line per revision, each naming it')
      t.same(lines[5], { op: 'txn', rev: 6, changes: [{ op: 'set', key: 'c', record: c }, { op: 'delete', key: 'b' }, { op: 'set', key: 'd', record: d }] })
      t.same(lines[8].keys, ['e'])
    }
    await store.close()
  })

  t.test(`${kind}: ETags differ for every state of a key; If-Match and If-None-Match follow the contract's table`, async t => {
    const dir = t.testdir()
    const clock = fakeClock()
    const store = await openStore(kind, dir, { now: clock.now })
    const failed = (etag: string | null): Error & { kind: string, details: unknown } => ({ name: 'PreconditionFailedError', kind: 'precondition_failed', message: "Precondition failed for key 'k'", details: { etag } })

    // A missing key: If-Match fails (with * too), If-None-Match holds.
    await t.rejects(store.set('k', 0, { ifMatch: '*' }), failed(null), 'If-Match: * on a missing key')
    await t.rejects(store.set('k', 0, { ifMatch: ['"a.1.xxxx"'] }), failed(null))
    await t.rejects(store.delete('k', { ifMatch: '*' }), failed(null), 'a DELETE too')
    await t.rejects(store.setExpiry('k', { kind: 'clear' }, { ifMatch: '*' }), failed(null), 'a change of expiry too')
    const v1 = await store.set('k', 1, { ifNoneMatch: '*' })
    const e1 = etagOf(v1)
    t.match(e1, /^"[A-Za-z0-9._-]+"$/, 'a strong ETag: the tag in double quotes')
    await t.rejects(store.set('k', 9, { ifNoneMatch: '*' }), failed(e1), 'If-None-Match: * is create-only')
    await t.rejects(store.set('k', 9, { ifNoneMatch: ['"other"', e1] }), failed(e1), 'If-None-Match with the current ETag listed')
    await t.rejects(store.set('k', 9, { ifMatch: [`W/${e1}`] }), failed(e1), 'a weak tag never matches')
    await t.rejects(store.set('k', 9, { ifMatch: [e1.slice(1, -1)] }), failed(e1), 'nor the tag without its quotes')
    t.equal((await store.get('k'))?.value, 1, 'a failed precondition changes nothing')

    const v2 = await store.set('k', 2, { ifMatch: [e1] })
    const e2 = etagOf(v2)
    await t.rejects(store.set('k', 9, { ifMatch: [e1] }), failed(e2), 'the 412 carries the current ETag, so a compare-and-set loop needs no read')
    const v3 = await store.set('k', 3, { ifMatch: ['"other"', e2] })
    const v4 = await store.set('k', 3, { ifMatch: '*' })
    const v5 = await store.set('k', 3, { ifNoneMatch: [e2, e1] })
    const v6 = await store.setExpiry('k', { kind: 'at', ms: clock.at + 10_000 }, { ifMatch: [etagOf(v5)] })
    await t.rejects(store.delete('k', { ifMatch: [etagOf(v5)] }), failed(etagOf(v6)))
    await t.rejects(store.delete('k', { ifNoneMatch: '*' }), failed(etagOf(v6)))
    t.equal(await store.delete('k', { ifMatch: [etagOf(v6)] }), true)
    const v7 = await store.set('k', 1)
    const tags = [v1, v2, v3, v4, v5, v6, v7].map(etagOf)
    t.equal(new Set(tags).size, tags.length, 'seven states, seven ETags (the same value written again included)')
    t.equal(etagOf(await store.get('k') as KvRecord), etagOf(v7), 'a read gives the ETag of the last write')

    // An expired key is a missing key for the preconditions too.
    await store.set('k', 'short', { expiry: { kind: 'at', ms: clock.at + 100 } })
    clock.set(clock.at + 100)
    await t.rejects(store.set('k', 9, { ifMatch: '*' }), failed(null), 'If-Match: * on an expired key')
    const fresh = await store.set('k', 'new', { ifNoneMatch: '*' })
    t.equal(fresh.created_at, fresh.updated_at, 'the expired key is not the previous state of the new one')
    await store.close()
  })

  t.test(`${kind}: two concurrent writes with the same If-Match: exactly one succeeds`, async t => {
    const dir = t.testdir()
    const store = await openStore(kind, dir)
    let current = await store.set('counter', 0)
    for (let round = 0; round < 5; round++) {
      const etag = etagOf(current)
      const outcomes = await Promise.allSettled(Array.from({ length: 2 + round * 5 }, async (_, i) => await store.set('counter', i + 1, { ifMatch: [etag] })))
      const won = outcomes.filter(o => o.status === 'fulfilled')
      const lost = outcomes.filter(o => o.status === 'rejected')
      t.equal(won.length, 1, `round ${round}: exactly one write succeeds`)
      current = (won[0] as PromiseFulfilledResult<KvRecord>).value
      for (const o of lost) t.match(o.reason, { name: 'PreconditionFailedError', details: { etag: etagOf(current) } })
      t.same(await store.get('counter'), current)
    }
    t.equal(await rev(store), 6, 'one revision per round')
    // Deletes race the same way.
    const etag = etagOf(current)
    const deletes = await Promise.allSettled([store.delete('counter', { ifMatch: [etag] }), store.set('counter', 'x', { ifMatch: [etag] })])
    t.equal(deletes.filter(o => o.status === 'fulfilled').length, 1, 'a delete and a write with the same If-Match: one wins')
    await store.close()
  })

  t.test(`${kind}: expiry: invisible from expires_at on; clear, keep and set semantics`, async t => {
    const dir = t.testdir()
    const clock = fakeClock()
    const store = await openStore(kind, dir, { now: clock.now })
    const due = clock.at + 1234
    const k = await store.set('k', 'v', { expiry: { kind: 'at', ms: due } })
    t.equal(k.expires_at, due / 1000, 'expires_at in epoch seconds, fractional for milliseconds')
    await store.set('stays', 1)
    clock.set(due - 1)
    t.equal((await store.get('k'))?.value, 'v', '1 ms before expires_at: served')
    clock.set(due)
    t.equal(await store.get('k'), undefined, 'at expires_at: gone')
    clock.set(due + 1)
    t.equal(await store.get('k'), undefined, '1 ms after: gone')
    t.same((await store.entries()).map(([key]) => key), ['stays'], 'not in the entries')
    t.same((await store.list({ limit: 10 })).entries.map(([key]) => key), ['stays'], 'not in a listing')
    const checked = await store.txn([{ key: 'k', exists: false }], [{ op: 'get', key: 'k' }])
    t.same(checked.results, [{ key: 'k', etag: null, record: null }], 'a transaction neither checks nor reads it')
    await t.rejects(store.setExpiry('k', { kind: 'clear' }), { name: 'NotFoundError' })
    t.equal(await store.delete('k'), false, 'deleting it deletes nothing')

    // A write without expiry clears it (as Redis SET); keep keeps it; setExpiry changes only the expiry.
    const later = clock.at + 60_000
    const s1 = await store.set('s', 1, { expiry: { kind: 'at', ms: later } })
    const s2 = await store.set('s', 2)
    t.equal(s2.expires_at, null, 'a write without an expiry clears it')
    await store.set('s', 3, { expiry: { kind: 'at', ms: later } })
    const s4 = await store.set('s', 4, { expiry: { kind: 'keep' } })
    t.equal(s4.expires_at, later / 1000, 'keep keeps it')
    t.equal(s4.created_at, s1.created_at)
    const s5 = await store.setExpiry('s', { kind: 'clear' })
    t.same([s5.value, s5.expires_at, s5.updated_at], [4, null, s4.updated_at], 'setExpiry clears only the expiry')
    const s6 = await store.set('s', 6, { expiry: { kind: 'keep' } })
    t.equal(s6.expires_at, null, 'keep of no expiry is no expiry')
    const n = await store.set('n', 'new', { expiry: { kind: 'keep' } })
    t.equal(n.expires_at, null, 'keep on a new key')
    await store.close()
  })

  t.test(`${kind}: an expired key does not count against the limits, also before it is reclaimed`, async t => {
    const outcome = async (write: () => Promise<unknown>): Promise<string> => await write().then(() => 'written', (err: Error) => `${err.name}: ${err.message}`)
    for (const limit of ['keys', 'bytes'] as const) {
      const dir = t.testdir()
      const clock = fakeClock()
      const limits = limit === 'keys' ? { ...NO_LIMITS, maxKeys: 2 } : { ...NO_LIMITS, maxBytes: 100 }
      const store = await openStore(kind, dir, { now: clock.now, limits })
      await store.set('stays', 'x'.repeat(10))
      await store.set('k', 'y'.repeat(80), { expiry: { kind: 'at', ms: clock.at + 60_000 } })
      clock.set(clock.at + 60_000)
      t.equal(await store.get('k'), undefined, `${limit}: expired (the reclaim timer, armed on the real clock, has not fired yet)`)
      t.ok(store.view.has('k'), `${limit}: not reclaimed yet`)
      t.equal(await outcome(async () => await store.set('other', 'z'.repeat(50))), 'written', `${limit}: the limit counts only live records`)
      await store.delete('other')
      t.equal(await outcome(async () => await store.txn([], [{ op: 'set', key: 't', value: 'w'.repeat(50) }])), 'written', `${limit}: in a transaction too`)
      t.same((await store.entries()).map(([key]) => key).sort(), ['stays', 't'])
      await store.close()
    }
  })

  t.test(`${kind}: expired keys are reclaimed in rounds, each an expire revision; a reopened store shows none of them`, async t => {
    const dir = t.testdir()
    const store = await openStore(kind, dir, { maxBytes: 1 << 30 })
    const at = Date.now() + 150
    await Promise.all(Array.from({ length: 2500 }, async (_, i) => await store.set(`x${i}`, i, { expiry: { kind: 'at', ms: at } })))
    await store.set('keep', 'me')
    const before = await rev(store)
    await until(t, '2500 keys reclaimed', () => store.view.size === 1)
    t.same([...store.view.keys()], ['keep'])
    t.equal(await rev(store), before + 3, '2500 keys: three rounds of at most 1000, one revision each')
    t.same(store.usage().keys, 1)
    if (kind === 'disk') {
      const rounds = journalLines(dir).filter(l => l.op === 'expire')
      t.same(rounds.map(l => [l.rev, l.keys?.length]), [[before + 1, 1000], [before + 2, 1000], [before + 3, 500]], 'each round is one journal line')
      t.equal(new Set(rounds.flatMap(l => l.keys)).size, 2500)
      // A crash now: the files alone, opened beside the live store.
      const crashed = await openStore('disk', dir)
      t.same([...crashed.view.keys()], ['keep'], 'the files alone hold none of them')
      t.same(await crashed.revision(), await store.revision())
      await store.close()
      const again = await openStore('disk', dir)
      t.same([...again.view.keys()], ['keep'], 'nor after a clean close')
      t.same(await again.revision(), await store.revision())
      await again.close()
    } else {
      await store.close()
    }
  })

  t.test(`${kind}: 10,000 keys expiring at once are all reclaimed, while reads go on`, async t => {
    const dir = t.testdir()
    const store = await openStore(kind, dir, { maxBytes: 1 << 30 })
    const at = Date.now() + 300
    await Promise.all(Array.from({ length: 10_000 }, async (_, i) => await store.set(`m${i}`, 'x'.repeat(20), { expiry: { kind: 'at', ms: at } })))
    await store.set('live', 1)
    const before = await rev(store)
    let reads = 0
    let wrong = 0
    const started = Date.now()
    while (store.view.size > 1 && Date.now() - started < 60_000) {
      if ((await store.get('live'))?.value !== 1) wrong++
      if (Date.now() >= at && await store.get(`m${reads % 10_000}`) !== undefined) wrong++
      reads++
      await new Promise(resolve => setImmediate(resolve))
    }
    t.equal(store.view.size, 1, `all reclaimed (in ${Date.now() - at} ms after they expired)`)
    t.equal(wrong, 0, `${reads} reads meanwhile: the live key always served, no expired key ever`)
    t.equal(await rev(store), before + 10, 'ten rounds of 1000')
    if (kind === 'disk') {
      await store.close()
      const again = await openStore('disk', dir)
      t.same([...again.view.keys()], ['live'], 'a restart resurrects none of them')
      await again.close()
    } else {
      await store.close()
    }
  })

  t.test(`${kind}: a transaction checks the state before, applies its ops in order as one revision, all or nothing`, async t => {
    const dir = t.testdir()
    const store = await openStore(kind, dir, { limits: { maxValueBytes: 100, maxKeys: 4, maxBytes: 150 } })
    const a = await store.set('a', 'from')
    await store.set('c', 'C')
    const linesBefore = journalLines(dir).length
    const outcome = await store.txn(
      [{ key: 'a', etag: etagOf(a) }, { key: 'b', exists: false }],
      [
        { op: 'get', key: 'a' },
        { op: 'set', key: 'b', value: 'moved' },
        { op: 'delete', key: 'a' },
        { op: 'get', key: 'a' },
        { op: 'get', key: 'b' },
        { op: 'delete', key: 'nothing' },
        { op: 'set', key: 'c', value: 'C2', expiry: { kind: 'at', ms: Date.now() + 3_600_000 } }
      ])
    t.equal(outcome.rev, 3, 'one revision')
    const b = await store.get('b') as KvRecord
    const c = await store.get('c') as KvRecord
    t.same(outcome.results, [
      { key: 'a', etag: etagOf(a), record: a },
      { key: 'b', etag: etagOf(b) },
      { key: 'a', deleted: true },
      { key: 'a', etag: null, record: null },
      { key: 'b', etag: etagOf(b), record: b },
      { key: 'nothing', deleted: false },
      { key: 'c', etag: etagOf(c) }
    ], 'a get sees the earlier ops of the same transaction')
    t.same([b.version, c.version], [3, 3])
    t.equal(await store.get('a'), undefined)
    if (kind === 'disk') {
      const lines = journalLines(dir).slice(linesBefore)
      t.equal(lines.length, 1, 'one journal line')
      t.same(lines[0], { op: 'txn', rev: 3, changes: [{ op: 'set', key: 'b', record: b }, { op: 'delete', key: 'a' }, { op: 'set', key: 'c', record: c }] })
    }

    // Checks are against the state before the ops, not after.
    const before = await store.txn([{ key: 'b', exists: true }], [{ op: 'delete', key: 'b' }, { op: 'set', key: 'b2', value: 1 }])
    t.equal(before.rev, 4)

    const state = async (): Promise<unknown> => [await store.revision(), await store.entries(), journalLines(dir).length]
    const unchanged = await state()
    // A failed check: nothing applied, the failed checks named with the current ETags.
    await t.rejects(store.txn(
      [{ key: 'c', etag: etagOf(c) }, { key: 'b2', etag: '"stale"' }, { key: 'c', exists: false }, { key: 'gone', exists: true }],
      [{ op: 'set', key: 'new', value: 1 }]),
    {
      name: 'TxnConflictError',
      kind: 'conflict',
      message: 'Transaction checks failed',
      details: {
        failed: [
          { index: 1, key: 'b2', etag: etagOf(await store.get('b2') as KvRecord) },
          { index: 2, key: 'c', etag: etagOf(c) },
          { index: 3, key: 'gone', etag: null }
        ]
      }
    })
    t.same(await state(), unchanged, 'nothing applied')
    // A key written twice: invalid, nothing applied.
    await t.rejects(store.txn([], [{ op: 'set', key: 'n1', value: 1 }, { op: 'delete', key: 'n1' }]), { name: 'InvalidInputError', message: /n1/ })
    await t.rejects(store.txn([], [{ op: 'set', key: 'n1', value: 1 }, { op: 'set', key: 'n1', value: 2 }]), { name: 'InvalidInputError' })
    t.same(await state(), unchanged, 'nothing applied')
    // Limits: checked over the whole transaction, nothing applied.
    await t.rejects(store.txn([], [{ op: 'set', key: 'n1', value: 1 }, { op: 'set', key: 'n2', value: 'x'.repeat(101) }]), { name: 'LimitExceededError' })
    await t.rejects(store.txn([], [{ op: 'set', key: 'n1', value: 1 }, { op: 'set', key: 'n2', value: 2 }, { op: 'set', key: 'n3', value: 3 }]), { name: 'LimitExceededError', message: /4 keys/ })
    await t.rejects(store.txn([], [{ op: 'set', key: 'n1', value: 'y'.repeat(75) }, { op: 'set', key: 'n2', value: 'z'.repeat(75) }]), { name: 'LimitExceededError', message: /150 bytes/ })
    t.same(await state(), unchanged, 'nothing applied')
    // Within the limits once a delete in the same transaction makes room.
    const room = await store.txn([], [{ op: 'delete', key: 'c' }, { op: 'set', key: 'n1', value: 1 }, { op: 'set', key: 'n2', value: 2 }, { op: 'set', key: 'n3', value: 3 }])
    t.equal(room.rev, 5)
    t.equal(store.usage().keys, 4)
    await store.close()
  })
}

t.test('the revision never goes back: close and reopen, compaction, clear, a crash after a compaction', async t => {
  const dir = t.testdir()
  let store = await openStore('disk', dir, { maxBytes: 512 })
  const { epoch } = await store.revision()
  for (let i = 0; i < 40; i++) await store.set(`k${i % 7}`, `value ${i} `.repeat(3))
  for (let i = 0; i < 7; i++) await store.delete(`k${i}`)
  t.equal(await rev(store), 47)
  while (store.persistence instanceof Journal && store.persistence.compacting) await new Promise(resolve => setTimeout(resolve, 5))
  t.ok(existsSync(storeFileName(dir, ID)), 'compactions ran')
  // The latest revisions were deletes: no record holds them, only the journal or the meta file.
  const crashed = await openStore('disk', dir)
  t.same(await crashed.revision(), { epoch, rev: 47 }, 'the files alone, as after a crash, know every revision')
  t.equal(crashed.view.size, 0)
  await store.close()
  store = await openStore('disk', dir, { maxBytes: 512 })
  t.same(await store.revision(), { epoch, rev: 47 }, 'after a clean close too')
  await store.set('x', 1)
  await store.clear()
  await store.close()
  store = await openStore('disk', dir, { maxBytes: 512 })
  t.same(await store.revision(), { epoch, rev: 49 }, 'a clear of the whole store is remembered')
  t.same(meta(dir), { epoch, rev: 49 })
  await store.close()
})

t.test('the revision and the epoch survive a switch between memory and disk, both ways', async t => {
  const dir = t.testdir()
  const store = await openStore('memory', dir)
  const { epoch } = await store.revision()
  await store.set('a', 1)
  await store.setPersistent(true)
  t.same(meta(dir), { epoch, rev: 1 }, 'to disk: the meta file holds the memory store\'s epoch and revision')
  await store.delete('a')
  await store.setPersistent(false)
  t.notOk(existsSync(metaFileName(dir, ID)), 'to memory: the files are gone')
  await store.clear()
  t.same(await store.revision(), { epoch, rev: 3 })
  await store.setPersistent(true)
  t.same(meta(dir), { epoch, rev: 3 }, 'back to disk: nothing went back')
  await store.close()
  const again = await openStore('disk', dir)
  t.same(await again.revision(), { epoch, rev: 3 })
  const b = await again.set('b', 2)
  t.equal(b.version, 4)
  await again.close()
})

t.test('epochs: a folder without a meta file starts one and writes it; a memory-only store reopened and a project created again get new ones', async t => {
  const dir = t.testdir()
  // A 1.0 (or Simple-PyKV) folder: records without versions.
  writeFileSync(storeFileName(dir, ID), snapshotText([['old', { value: 'O', created_at: 1, updated_at: 2, size_bytes: 1, type: 'string' }]]))
  const first = await openStore('disk', dir)
  const { epoch } = await first.revision()
  t.same(meta(dir), { epoch, rev: 0 }, 'the meta file is written at once')
  t.same(await first.get('old'), { value: 'O', created_at: 1, updated_at: 2, size_bytes: 1, type: 'string', version: 0, expires_at: null, tag: `${epoch}.0` })
  const tags = new Set([etagOf(await first.get('old') as KvRecord)])
  tags.add(etagOf(await first.set('k', 1)))
  await first.close()
  const second = await openStore('disk', dir)
  t.equal((await second.revision()).epoch, epoch, 'the epoch is kept from then on')
  t.equal(etagOf(await second.get('old') as KvRecord), `"${epoch}.0"`, 'so is the ETag of a record loaded without one')
  await second.destroy()
  t.notOk(existsSync(metaFileName(dir, ID)), 'a destroyed store leaves no meta file')

  // The project created again: a new epoch, and the same writes give other ETags.
  const third = await openStore('disk', dir)
  const recreated = await third.revision()
  t.not(recreated.epoch, epoch, 'a project created again starts a new epoch')
  t.equal(recreated.rev, 0)
  tags.add(etagOf(await third.set('k', 1)))
  t.equal(tags.size, 3, 'no ETag repeats across the deletion')
  await third.close()

  // A memory-only project, through the backend: a new epoch each time it is opened.
  const backend = await LocalBackend.open({ dir: t.testdir(), durability: 'always', journalMaxBytes: 1 << 20, limits: NO_LIMITS })
  const epochs = new Set<string>()
  const memoryTags = new Set<string>()
  for (let i = 0; i < 3; i++) {
    const { engine } = await backend.open('m', { persistent: false })
    epochs.add((await engine.revision()).epoch)
    const record = await engine.set('k', 'same')
    t.equal(record.version, 1)
    memoryTags.add(etagOf(record))
    await engine.close()
  }
  t.equal(epochs.size, 3, 'a memory-only store reopened gets a new epoch')
  t.equal(memoryTags.size, 3, 'so the same first write never repeats an ETag')
  // An on-disk project through the backend keeps its epoch.
  const disk1 = (await backend.open('d', { persistent: true })).engine
  await disk1.set('k', 1)
  const kept = await disk1.revision()
  await disk1.close()
  const disk2 = (await backend.open('d', { persistent: true })).engine
  t.same(await disk2.revision(), kept, 'an on-disk project reopened keeps its epoch and revision')
  await disk2.close()
  await backend.close()
})
