import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { StorageError } from '../../../lib/errors.js'
import { journalFileName, metaFileName, storeFileName } from '../../../lib/engines/local/files.js'
import { Journal, type JournalOptions } from '../../../lib/engines/local/journal.js'
import { readStoreFiles } from '../../../lib/engines/local/recovery.js'
import { snapshotText, writeSnapshotAtomic } from '../../../lib/engines/local/snapshot-file.js'
import { LocalEngine } from '../../../lib/engines/local/engine.js'
import type { JsonValue, KvRecord } from '../../../lib/record.js'
import { makeTempDir, tempDir } from '../../support/temp.js'

const ID = 'p'

async function openStore (dir: string, options: Partial<JournalOptions> = {}): Promise<{ store: LocalEngine, journal: Journal, warnings: string[] }> {
  const opened = await Journal.open(dir, ID, { durability: 'always', maxBytes: 1 << 20, ...options })
  return { store: new LocalEngine(ID, opened.data, opened.persistence, { revision: opened.revision }), journal: opened.persistence, warnings: opened.warnings }
}

/** What `<id>_store.meta` holds, parsed. */
function meta (dir: string): { epoch: string, rev: number } {
  return JSON.parse(readFileSync(metaFileName(dir, ID), 'utf8')) as { epoch: string, rev: number }
}

/** After a clean stop: the store file and the meta file, nothing else; the meta names the store's epoch and revision. */
async function stoppedFiles (t: Test, dir: string, store: LocalEngine, message = 'the store file and its meta file, nothing else'): Promise<void> {
  t.same(readdirSync(dir).sort(), [`${ID}_store.json`, `${ID}_store.meta`], message)
  t.same(meta(dir), await store.revision(), 'the meta file holds the epoch and the revision')
}

function values (store: LocalEngine): Record<string, JsonValue> {
  return Object.fromEntries([...store.view].map(([k, r]) => [k, r.value]))
}

function journalLines (dir: string): unknown[] {
  const file = journalFileName(dir, ID)
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n').filter(l => l !== '').map(l => JSON.parse(l) as unknown)
}

function line (change: unknown): string {
  return JSON.stringify(change) + '\n'
}

function rec (value: JsonValue, at = 1700000000): KvRecord {
  return { value, created_at: at, updated_at: at, size_bytes: Buffer.byteLength(JSON.stringify(value)), type: 'string' }
}

function errno (code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected by the test`), { code })
}

/**
 * Opens the real journal file, and can make the next writes fail the way a
 * full disk does: half of the bytes really written, then ENOSPC; or the
 * fsync failing with EIO.
 */
function faultyDisk (): { openJournal: (path: string) => Promise<FileHandle>, fault: { write: boolean, sync: boolean }, counts: { writes: number, syncs: number } } {
  const fault = { write: false, sync: false }
  const counts = { writes: 0, syncs: 0 }
  const openJournal = async (path: string): Promise<FileHandle> => {
    const handle = await open(path, 'a', 0o600)
    return new Proxy(handle, {
      get (target, prop) {
        if (prop === 'write') {
          return async (buffer: Buffer, offset = 0) => {
            counts.writes++
            if (fault.write) {
              await target.write(buffer, offset, Math.max(1, Math.floor((buffer.length - offset) / 2)))
              throw errno('ENOSPC')
            }
            return await target.write(buffer, offset)
          }
        }
        if (prop === 'datasync') {
          return async () => {
            counts.syncs++
            if (fault.sync) throw errno('EIO')
            await target.datasync()
          }
        }
        const value = Reflect.get(target, prop, target) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      }
    })
  }
  return { openJournal, fault, counts }
}

t.test('each change is one JSON line in the journal; a clean close folds them into <id>_store.json', async t => {
  const dir = tempDir(t)
  const { store, journal } = await openStore(dir)
  await store.set('a', 'one')
  await store.set('b', { n: 1 })
  t.equal(await store.delete('a'), true)
  t.equal(await store.delete('missing'), false, 'deleting a missing key writes nothing')
  await store.set('a/b', [1, 2])
  t.notOk(existsSync(storeFileName(dir, ID)), 'no snapshot yet: writes only append')
  const lines = journalLines(dir) as Array<{ op: string, key?: string, record?: KvRecord, rev?: number }>
  t.same(lines.map(l => [l.op, l.key, l.op === 'set' ? l.record?.version : l.rev]), [['set', 'a', 1], ['set', 'b', 2], ['delete', 'a', 3], ['set', 'a/b', 4]],
    'a set carries its revision as the record\'s version, a delete as rev')
  t.strictSame(lines[1], { op: 'set', key: 'b', record: store.peek('b') }, 'the whole record, version, expiry and tag included')
  t.same(Object.keys(lines[1].record ?? {}), ['value', 'created_at', 'updated_at', 'size_bytes', 'type', 'version', 'expires_at', 'tag'])
  t.strictSame(lines[2], { op: 'delete', key: 'a', rev: 3 })
  t.equal(journal.bytesOnDisk, statSync(journalFileName(dir, ID)).size)

  await store.clear()
  t.strictSame(journalLines(dir).at(-1), { op: 'clear', rev: 5 })
  await store.set('z', 'last')
  await store.close()
  t.notOk(existsSync(journalFileName(dir, ID)), 'the journal is gone after a clean close')
  const text = readFileSync(storeFileName(dir, ID), 'utf8')
  t.equal(text, snapshotText([['z', store.peek('z') as KvRecord]]), 'the store file is in Simple-PyKV format')
  t.same(Object.keys(JSON.parse(text)), ['z'])
  await t.rejects(store.set('x', 1), { name: 'NotFoundError', kind: 'not_found' }, 'a closed store takes no writes')

  const again = await openStore(dir)
  t.same(values(again.store), { z: 'last' })
  t.strictSame(again.store.peek('z'), store.peek('z'), 'the record as written: version, expiry and tag kept')
  t.same(await again.store.revision(), await store.revision(), 'the same epoch and revision after a restart')
  t.same(again.warnings, [])
  await again.store.close()
  await stoppedFiles(t, dir, again.store, 'after a stop the store file and its meta file hold the store')
})

t.test('writes that arrive together share one write and one fsync (group commit)', async t => {
  const dir = tempDir(t)
  const disk = faultyDisk()
  const { store } = await openStore(dir, { openJournal: disk.openJournal })
  await Promise.all(Array.from({ length: 200 }, async (_, i) => await store.set(`k${i}`, `v${i}`)))
  t.equal(disk.counts.writes, 1, 'one write for 200 changes')
  t.equal(disk.counts.syncs, 1, 'one fsync for 200 changes')
  t.equal(journalLines(dir).length, 200)

  // While one batch is on its way to the disk, the next writes queue and go together.
  const first = store.set('x', 0)
  await new Promise(resolve => setImmediate(resolve))
  const rest = Array.from({ length: 50 }, async (_, i) => await store.set('x', i + 1))
  await Promise.all([first, ...rest])
  t.equal(disk.counts.syncs, 3, 'the 50 writes queued behind the first shared one fsync')
  t.equal(store.peek('x')?.value, 50, 'the last submitted write to a key wins')
  await store.close()
  const again = await openStore(dir)
  t.equal(again.store.usage().keys, 201)
  t.equal(again.store.peek('x')?.value, 50)
  await again.store.close()
})

t.test('memory changes only once the batch is durable', async t => {
  const dir = tempDir(t)
  const { store } = await openStore(dir)
  await store.set('k', 'old')
  const write = store.set('k', 'new')
  t.equal(store.peek('k')?.value, 'old', 'a read before the fsync sees the old value')
  const record = await write
  t.equal(store.peek('k')?.value, 'new')
  t.equal(record.created_at, store.peek('k')?.created_at)
  await store.close()
})

t.test('a torn last journal line is dropped with a warning, cut off, and later writes follow it', async t => {
  const dir = tempDir(t)
  const file = journalFileName(dir, ID)
  const good = line({ op: 'set', key: 'a', record: rec('A') }) + line({ op: 'set', key: 'b', record: rec('B') })
  writeFileSync(file, good + '{"op":"set","key":"c","rec')
  const { store, warnings } = await openStore(dir)
  t.same(values(store), { a: 'A', b: 'B' })
  t.equal(warnings.length, 1)
  t.match(warnings[0], file)
  t.match(warnings[0], /line 3: dropped a torn last line \(\d+ bytes\)/)
  t.equal(readFileSync(file, 'utf8'), good, 'the fragment is cut so the next line cannot be glued to it')
  await store.set('c', 'C')
  const check = await readStoreFiles(dir, ID)
  t.same(check.warnings, [])
  t.same(Object.fromEntries([...check.data].map(([k, r]) => [k, r.value])), { a: 'A', b: 'B', c: 'C' })
  await store.close()
})

t.test('a torn multi-byte character in the last line is a torn line too', async t => {
  const dir = tempDir(t)
  const file = journalFileName(dir, ID)
  const full = Buffer.from(line({ op: 'set', key: 'é', record: rec('€') }))
  writeFileSync(file, Buffer.concat([Buffer.from(line({ op: 'set', key: 'a', record: rec('A') })), full.subarray(0, full.indexOf(0xe2) + 1)]))
  const { store, warnings } = await openStore(dir)
  t.same(values(store), { a: 'A' })
  t.equal(warnings.length, 1)
  await store.close()
})

t.test('a corrupt line in the middle of the journal stops start-up, naming file and line; nothing is changed', async t => {
  const dir = tempDir(t)
  const file = journalFileName(dir, ID)
  const snapshot = snapshotText([['s', rec('S')]])
  writeFileSync(storeFileName(dir, ID), snapshot)
  const bad = [
    line({ op: 'set', key: 'a', record: rec('A') }) + '{"op":"set","key":"b",,}\n' + line({ op: 'delete', key: 'a' }),
    line({ op: 'set', key: 'a', record: rec('A') }) + line({ op: 'rename', key: 'a' }),
    line({ op: 'set', key: 'a', record: { nothing: 1 } }) + line({ op: 'clear' }),
    '[1,2]\n',
    line({ op: 'delete', key: 5 })
  ]
  const reasons = [/line 2 is not valid JSON/, /line 2 is unknown op "rename"/, /line 1 is a "set" whose "record" has no "value"/, /line 1 is not a JSON object/, /line 1 is op "delete" without a string "key"/]
  for (const [i, text] of bad.entries()) {
    writeFileSync(file, text)
    const err = await openStore(dir).then(() => null, (e: unknown) => e)
    t.type(err, StorageError)
    t.match((err as Error).message, file)
    t.match((err as Error).message, reasons[i])
    t.match((err as Error).message, /start-up stopped and the file was left untouched/)
    t.equal(readFileSync(file, 'utf8'), text, 'the journal is untouched')
    t.equal(readFileSync(storeFileName(dir, ID), 'utf8'), snapshot, 'the snapshot is untouched')
  }
})

t.test('invalid UTF-8 in a journal line stops start-up', async t => {
  const dir = tempDir(t)
  const file = journalFileName(dir, ID)
  const text = Buffer.concat([Buffer.from('{"op":"set","key":"a","record":{"value":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}\n'), Buffer.from(line({ op: 'clear' }))])
  writeFileSync(file, text)
  await t.rejects(openStore(dir), { name: 'StorageError', message: /line 1 is not valid UTF-8/ })
  t.same(readFileSync(file), text)
})

t.test('a corrupt snapshot stops start-up naming the file; snapshot and journal are left untouched', async t => {
  const dir = tempDir(t)
  const snapshot = storeFileName(dir, ID)
  const journal = journalFileName(dir, ID)
  const journalText = line({ op: 'set', key: 'a', record: rec('A') })
  writeFileSync(journal, journalText)
  for (const [text, reason] of [['{"a": {"value": 1}, ', /is not valid JSON/], ['[1]', /does not hold a JSON object/], ['{"a": 5}', /entry "a" is not a record/], ['', /is not valid JSON/]] as const) {
    writeFileSync(snapshot, text)
    const err = await openStore(dir).then(() => null, (e: unknown) => e)
    t.type(err, StorageError)
    t.match((err as Error).message, snapshot)
    t.match((err as Error).message, reason)
    t.equal(readFileSync(snapshot, 'utf8'), text)
    t.equal(readFileSync(journal, 'utf8'), journalText)
  }
})

t.test('a partial write then ENOSPC fails the batch: memory and file as before, and the next write works', async t => {
  const dir = tempDir(t)
  const disk = faultyDisk()
  const { store } = await openStore(dir, { openJournal: disk.openJournal })
  await store.set('k', 'v1')
  const before = readFileSync(journalFileName(dir, ID), 'utf8')
  disk.fault.write = true
  const results = await Promise.allSettled([store.set('k', 'v2'), store.set('n', 'new'), store.delete('k')])
  for (const r of results) t.match(r, { status: 'rejected', reason: { name: 'StorageUnavailableError', kind: 'storage_unavailable', message: "Could not write the store of project 'p' to disk" } })
  t.equal(store.peek('k')?.value, 'v1', 'memory unchanged')
  t.equal(store.peek('n'), undefined)
  t.equal(readFileSync(journalFileName(dir, ID), 'utf8'), before, 'the half-written batch was cut off')
  disk.fault.write = false
  await store.set('k', 'v3')
  t.equal(store.peek('k')?.value, 'v3')
  const check = await readStoreFiles(dir, ID)
  t.same(check.warnings, [])
  t.same(Object.fromEntries([...check.data].map(([k, r]) => [k, r.value])), { k: 'v3' })
  await store.close()
})

t.test('a failed fsync fails the batch and its lines are cut off', async t => {
  const dir = tempDir(t)
  const disk = faultyDisk()
  const { store } = await openStore(dir, { openJournal: disk.openJournal })
  await store.set('a', 1)
  disk.fault.sync = true
  await t.rejects(store.set('b', 2), { name: 'StorageUnavailableError', kind: 'storage_unavailable' })
  t.equal(store.peek('b'), undefined)
  t.equal(journalLines(dir).length, 1)
  disk.fault.sync = false
  await store.set('c', 3)
  t.same(values(store), { a: 1, c: 3 })
  await store.close()
  t.same(values((await openStore(dir)).store), { a: 1, c: 3 })
})

t.test('a real ENOSPC from the kernel: the journal is /dev/full', { skip: existsSync('/dev/full') ? false : 'no /dev/full here' }, async t => {
  const dir = tempDir(t)
  const { store } = await openStore(dir)
  symlinkSync('/dev/full', journalFileName(dir, ID))
  await t.rejects(store.set('a', 1), { name: 'StorageUnavailableError', kind: 'storage_unavailable' })
  t.equal(store.usage().keys, 0)
  unlinkSync(journalFileName(dir, ID))
  await store.set('a', 2)
  await store.close()
  t.same(values((await openStore(dir)).store), { a: 2 })
})

t.test('the journal path is a directory: 507, reads keep working, and writes work again once it is gone', async t => {
  const dir = tempDir(t)
  const first = await openStore(dir)
  await first.store.set('keep', 'me')
  await first.store.close()
  const { store } = await openStore(dir)
  mkdirSync(journalFileName(dir, ID))
  await t.rejects(store.set('new', 1), { name: 'StorageUnavailableError', kind: 'storage_unavailable' })
  await t.rejects(store.clear(), { name: 'StorageUnavailableError', kind: 'storage_unavailable' })
  t.same(values(store), { keep: 'me' }, 'reads keep working, memory unchanged')
  rmSync(journalFileName(dir, ID), { recursive: true })
  await store.set('new', 2)
  await store.close()
  t.same(values((await openStore(dir)).store), { keep: 'me', new: 2 })
})

t.test('the storage folder replaced by a file, then by an empty folder: the engine rewrites its files from memory', async t => {
  const root = tempDir(t)
  const dir = join(root, 'storage')
  const { store } = await openStore(dir)
  await store.set('a', 'A')
  await store.set('b', 'B')
  await store.close()
  const again = await openStore(dir)
  rmSync(dir, { recursive: true })
  writeFileSync(dir, 'not a folder')
  await t.rejects(again.store.set('c', 'C'), { name: 'StorageUnavailableError', kind: 'storage_unavailable' })
  t.same(values(again.store), { a: 'A', b: 'B' })
  unlinkSync(dir)
  mkdirSync(dir)
  await again.store.set('c', 'C')
  t.ok(existsSync(storeFileName(dir, ID)), 'the snapshot was rewritten from memory')
  const check = await readStoreFiles(dir, ID)
  t.same(Object.fromEntries([...check.data].map(([k, r]) => [k, r.value])), { a: 'A', b: 'B', c: 'C' })
  await again.store.close()
})

/** Whether this process may mount a tmpfs (root with mount rights, as in a privileged container). */
function canMount (): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false
  const probe = makeTempDir('simple-kv-mount-')
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', probe], { stdio: 'ignore' })
    execFileSync('umount', [probe], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    rmSync(probe, { recursive: true })
  }
}

const MOUNT = canMount()
const IS_ROOT = process.getuid?.() === 0

/** A folder with a small tmpfs mounted on it; unmounted and removed when the test ends. */
function mountedDir (t: Test): string {
  const dir = makeTempDir('simple-kv-mount-')
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', dir], { stdio: 'ignore' })
  t.teardown(() => {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' })
    rmSync(dir, { recursive: true })
  })
  return dir
}

t.test('a read-only folder: writes get 507, reads keep working, and writes work again once it is writable', {
  skip: MOUNT || !IS_ROOT ? false : 'root without mount rights: file modes do not stop root'
}, async t => {
  const mounted = MOUNT
  const dir = mounted ? mountedDir(t) : join(tempDir(t), 'storage')
  const seed = await openStore(dir)
  await seed.store.set('a', 'A')
  await seed.store.close()
  const makeReadOnly = (readOnly: boolean): void => {
    // A read-only mount fails writes with EROFS even for root; without mount rights, file modes do it.
    if (mounted) execFileSync('mount', ['-o', `remount,${readOnly ? 'ro' : 'rw'}`, dir], { stdio: 'ignore' })
    else chmodSync(dir, readOnly ? 0o500 : 0o700)
  }
  makeReadOnly(true)
  const { store } = await openStore(dir)
  t.same(values(store), { a: 'A' }, 'a read-only folder can still be loaded')
  await t.rejects(store.set('b', 'B'), { name: 'StorageUnavailableError', kind: 'storage_unavailable' })
  t.same(values(store), { a: 'A' })
  makeReadOnly(false)
  await store.set('b', 'B')
  await store.close()
  t.same(values((await openStore(dir)).store), { a: 'A', b: 'B' })
})

t.test('a 1.0 folder (no meta file) that is read-only still loads; its epoch is written with the first write once it is writable', {
  skip: MOUNT || !IS_ROOT ? false : 'root without mount rights: file modes do not stop root'
}, async t => {
  const mounted = MOUNT
  const dir = mounted ? mountedDir(t) : join(t.testdir(), 'storage')
  mkdirSync(dir, { recursive: true })
  writeFileSync(storeFileName(dir, ID), snapshotText([['a', rec('A')]]))
  const makeReadOnly = (readOnly: boolean): void => {
    if (mounted) execFileSync('mount', ['-o', `remount,${readOnly ? 'ro' : 'rw'}`, dir], { stdio: 'ignore' })
    else chmodSync(dir, readOnly ? 0o500 : 0o700)
  }
  makeReadOnly(true)
  const { store } = await openStore(dir)
  t.same(values(store), { a: 'A' }, 'a read-only 1.0 folder can still be loaded, as in 1.0')
  const { epoch } = await store.revision()
  t.notOk(existsSync(metaFileName(dir, ID)))
  await t.rejects(store.set('b', 'B'), { name: 'StorageUnavailableError', kind: 'storage_unavailable' })
  makeReadOnly(false)
  const b = await store.set('b', 'B')
  t.same(meta(dir).epoch, epoch, 'the epoch the store has been using is the one written')
  await store.close()
  const again = await openStore(dir)
  t.same(await again.store.revision(), { epoch, rev: b.version }, 'and it is kept after a restart')
  await again.store.close()
})

t.test('a full disk (a small real file system): 507, nothing half-written, recovery once space is freed', {
  skip: MOUNT ? false : 'needs root with mount rights'
}, async t => {
  const dir = mountedDir(t)
  const { store } = await openStore(dir, { maxBytes: 1 << 30 })
  const filler = join(dir, 'filler')
  writeFileSync(filler, Buffer.alloc(200 * 1024))
  let failed = 0
  for (let i = 0; i < 200 && failed === 0; i++) {
    await store.set(`k${i}`, 'x'.repeat(1000)).catch(() => { failed = i })
  }
  t.ok(failed > 0, 'the disk filled up')
  t.equal(store.usage().keys, failed, 'memory holds exactly the acknowledged writes')
  const check = await readStoreFiles(dir, ID)
  t.same(check.warnings, [], 'no torn line left behind')
  t.equal(check.data.size, failed)
  unlinkSync(filler)
  await store.set('after', 1)
  await store.close()
  t.equal((await openStore(dir)).store.usage().keys, failed + 1)
})

t.test('compaction under concurrent writes loses nothing, keeps the journal bounded and reads answered', async t => {
  const dir = tempDir(t)
  const { store, journal } = await openStore(dir, { maxBytes: 2048 })
  const expected = new Map<string, JsonValue>()
  let compactions = 0
  let reads = 0
  for (let wave = 0; wave < 40; wave++) {
    const writes: Array<Promise<unknown>> = []
    for (let i = 0; i < 25; i++) {
      const key = `k${(wave * 7 + i) % 60}`
      if (i % 9 === 8) {
        expected.delete(key)
        writes.push(store.delete(key))
      } else {
        const value = `w${wave}-${i}`
        expected.set(key, value)
        writes.push(store.set(key, value))
      }
    }
    await Promise.all(writes)
    if (journal.compacting) compactions++
    // Reads are served from memory while the snapshot is written.
    for (const [key, value] of expected) {
      reads++
      if (store.peek(key)?.value !== value) t.fail(`read of ${key} during compaction`)
    }
  }
  t.ok(compactions > 0, `compaction ran while writes went on (${compactions} waves saw it)`)
  t.ok(reads > 0)
  t.equal(journal.lastCompactionError, null)
  t.same(values(store), Object.fromEntries(expected))
  // Wait for the last compaction, then check what the files alone hold.
  while (journal.compacting) await new Promise(resolve => setTimeout(resolve, 5))
  t.ok(existsSync(storeFileName(dir, ID)), 'a snapshot was written')
  t.same(readdirSync(dir).filter(n => n.includes('.journal.')), [], 'every set-aside journal is gone once the compaction settles')
  // The bound is the larger of journal_max_bytes and the snapshot, so compaction costs O(1) per write.
  const bound = Math.max(2048, statSync(storeFileName(dir, ID)).size)
  // The journal grows while a compaction runs (by as much as the disk is slow), but never stays past
  // its bound: the next write after the compaction starts another one, which sets the journal aside.
  await store.set('k0', 'last')
  expected.set('k0', 'last')
  while (journal.compacting) await new Promise(resolve => setTimeout(resolve, 5))
  const journalBytes = existsSync(journalFileName(dir, ID)) ? statSync(journalFileName(dir, ID)).size : 0
  t.ok(journalBytes < bound, `the journal is under its bound once a write follows a settled compaction (${journalBytes} < ${bound})`)
  const check = await readStoreFiles(dir, ID)
  t.same(Object.fromEntries([...check.data].map(([k, r]) => [k, r.value])), Object.fromEntries(expected))
  const revision = await store.revision()
  t.equal(check.epoch, revision.epoch, 'the files name the store\'s epoch')
  t.ok(check.rev <= revision.rev, 'and no revision past the store\'s')
  await store.close()
  await stoppedFiles(t, dir, store)
})

t.test('a failed compaction is reported, paused before its retry, and loses nothing; the retry folds everything in', async t => {
  const dir = tempDir(t)
  let failing = true
  let attempts = 0
  let clock = 1_000_000
  const reports: Array<[string, number]> = []
  const { store, journal } = await openStore(dir, {
    maxBytes: 1024,
    now: () => clock,
    writeSnapshot: async (file, entries) => {
      attempts++
      if (failing) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
      return await writeSnapshotAtomic(file, entries)
    },
    onCompactionError: (err, failures) => { reports.push([(err as Error).message, failures]) }
  })
  const settled = async (): Promise<void> => { while (journal.compacting) await new Promise(resolve => setTimeout(resolve, 5)) }
  const expected: Record<string, string> = {}
  const put = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      expected[`k${i}`] = `value ${i} `.repeat(8)
      await store.set(`k${i}`, expected[`k${i}`] as string)
    }
  }
  await put(0, 40)
  await settled()
  t.equal(attempts, 1, 'the journal passed its bound: one compaction tried')
  t.same(reports, [['ENOSPC: no space left on device, write', 1]], 'the failure is reported with its count')
  t.match(journal.lastCompactionError, { code: 'ENOSPC' })
  clock += 999
  await put(40, 80)
  await settled()
  t.equal(attempts, 1, 'writes within the pause do not retry it')
  t.same(values(store), expected, 'every write is still served')

  failing = false
  clock += 2
  await put(80, 90)
  await settled()
  t.equal(attempts, 2, 'after the pause the next write starts a compaction again')
  t.equal(reports.length, 1, 'and it succeeded')
  t.equal(journal.lastCompactionError, null)
  t.same(readdirSync(dir).filter(n => n.includes('.journal.')), [], 'the set-aside journals of both attempts are gone')
  const onDisk = await readStoreFiles(dir, ID)
  t.same(Object.fromEntries([...onDisk.data].map(([k, r]) => [k, r.value])), expected, 'the files alone hold every write')
  await store.close()
})

t.test('the pause doubles with each failure in a row, up to a minute', async t => {
  const dir = tempDir(t)
  let clock = 0
  const failures: number[] = []
  const { store, journal } = await openStore(dir, {
    maxBytes: 1024,
    now: () => clock,
    writeSnapshot: async () => { throw new Error('disk full') },
    onCompactionError: (_err, n) => { failures.push(n) }
  })
  let i = 0
  // Each failed attempt has already set its journal aside, so the fresh one must pass the bound again.
  const pastTheBound = async (): Promise<void> => {
    for (let n = 0; n < 6; n++) await store.set(`k${i++}`, 'x'.repeat(200))
    while (journal.compacting) await new Promise(resolve => setTimeout(resolve, 5))
  }
  await pastTheBound()
  t.same(failures, [1])
  for (const pause of [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]) {
    const before = failures.length
    clock += pause - 1
    await pastTheBound()
    t.equal(failures.length, before, `no retry ${pause - 1} ms after failure ${before}`)
    clock += 1
    await pastTheBound()
    t.equal(failures.length, before + 1, `a retry ${pause} ms after it`)
  }
  t.same(failures, [1, 2, 3, 4, 5, 6, 7, 8, 9], 'each report counts the failures in a row')
  t.equal(store.usage().keys, i, 'every write is served')
  await store.close()
})

t.test('a reporter that throws does not take the process down', async t => {
  const dir = tempDir(t)
  const { store, journal } = await openStore(dir, {
    maxBytes: 1024,
    writeSnapshot: async () => { throw new Error('disk gone') },
    onCompactionError: () => { throw new Error('logger broken') }
  })
  for (let i = 0; i < 30; i++) await store.set(`k${i}`, 'x'.repeat(60))
  while (journal.compacting) await new Promise(resolve => setTimeout(resolve, 5))
  t.match(journal.lastCompactionError, { message: 'disk gone' })
  t.equal(store.usage().keys, 30)
  await store.close()
})

t.test('a crash in the middle of a compaction loses nothing: rotated journals are replayed, oldest first', async t => {
  const dir = tempDir(t)
  const snapshot = storeFileName(dir, ID)
  const journal = journalFileName(dir, ID)
  const r1 = line({ op: 'set', key: 'a', record: rec('A1') }) + line({ op: 'set', key: 'b', record: rec('B') })
  const r2 = line({ op: 'set', key: 'a', record: rec('A2') }) + line({ op: 'delete', key: 'old' })
  const active = line({ op: 'set', key: 'c', record: rec('C') })
  const want = { a: 'A2', b: 'B', c: 'C' }

  // Crash after the rotation, before the new snapshot: old snapshot + rotated journals + journal.
  writeFileSync(snapshot, snapshotText([['old', rec('O')]]))
  writeFileSync(`${journal}.1`, r1)
  writeFileSync(`${journal}.2`, r2)
  writeFileSync(journal, active)
  writeFileSync(join(dir, `.${ID}_store.json.0123456789ab.tmp`), '{"half": ')
  writeFileSync(join(dir, `.${ID}_store.meta.ba9876543210.tmp`), '{"epoch":')
  let opened = await openStore(dir)
  t.same(values(opened.store), want)
  t.notOk(existsSync(join(dir, `.${ID}_store.json.0123456789ab.tmp`)), 'the half-written temporary snapshot is removed')
  t.notOk(existsSync(join(dir, `.${ID}_store.meta.ba9876543210.tmp`)), 'and so is a half-written meta file')
  t.ok(existsSync(`${journal}.1`), 'rotated journals stay until a snapshot covers them')
  await opened.store.set('d', 'D')
  await opened.store.close()
  await stoppedFiles(t, dir, opened.store)

  // Crash after the new snapshot, before the rotated journal was removed: replaying it again changes nothing.
  writeFileSync(snapshot, snapshotText([['a', rec('A2')], ['b', rec('B')]]))
  writeFileSync(`${journal}.2`, r2)
  writeFileSync(journal, active)
  opened = await openStore(dir)
  t.same(values(opened.store), want)
  await opened.store.close()
})

t.test('destroy while writes and a compaction are in flight leaves no files', async t => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'other_store.json'), '{}\n')
  const { store, journal } = await openStore(dir, { maxBytes: 1024 })
  for (let i = 0; i < 20; i++) await store.set(`k${i}`, 'x'.repeat(100))
  const writes = Array.from({ length: 100 }, async (_, i) => await store.set(`n${i}`, i).then(() => 'ok', (e: { kind?: string }) => e.kind))
  const destroyed = store.destroy()
  const late = store.set('late', 1).then(() => 'ok', (e: { kind?: string }) => e.kind)
  await destroyed
  const outcomes = await Promise.all(writes)
  t.ok(outcomes.every(o => o === 'ok'), 'writes already submitted finish before the files go')
  t.equal(await late, 'not_found', 'a write after the delete finds no project')
  t.equal(journal.compacting, false)
  t.same(readdirSync(dir), ['other_store.json'], 'only another project\'s file remains')
  const fresh = await openStore(dir)
  t.equal(fresh.store.usage().keys, 0, 'a new store with the same id starts empty')
  await fresh.store.close()
})

t.test('everysec writes before the reply and fsyncs within a second; no leaves fsync to the system', async t => {
  for (const durability of ['everysec', 'no'] as const) {
    const dir = tempDir(t)
    const disk = faultyDisk()
    const { store } = await openStore(dir, { durability, openJournal: disk.openJournal })
    await store.set('a', 1)
    await store.set('b', 2)
    t.equal(journalLines(dir).length, 2, `${durability}: in the journal before the reply`)
    t.equal(disk.counts.syncs, 0, `${durability}: no fsync per write`)
    await new Promise(resolve => setTimeout(resolve, 1300))
    t.equal(disk.counts.syncs, durability === 'everysec' ? 1 : 0)
    await store.close()
    t.same(values((await openStore(dir)).store), { a: 1, b: 2 })
  }
})

t.test('everysec: a failed background fsync makes the next write rewrite the files from memory', async t => {
  const dir = tempDir(t)
  const disk = faultyDisk()
  const { store } = await openStore(dir, { durability: 'everysec', openJournal: disk.openJournal })
  await store.set('a', 1)
  disk.fault.sync = true
  await new Promise(resolve => setTimeout(resolve, 1300))
  disk.fault.sync = false
  await store.set('b', 2)
  t.ok(existsSync(storeFileName(dir, ID)), 'the snapshot now holds what the failed fsync may have lost')
  t.same(JSON.parse(readFileSync(storeFileName(dir, ID), 'utf8')).a.value, 1)
  await store.close()
  t.same(values((await openStore(dir)).store), { a: 1, b: 2 })
})

t.test('a journal longer than one read: every line applied, and problems named by their line across reads', async t => {
  const dir = tempDir(t)
  const file = journalFileName(dir, ID)
  const lines: string[] = []
  for (let i = 0; i < 20000; i++) lines.push(line({ op: 'set', key: `k${i % 5000}`, record: rec(`v${i} ${'x'.repeat(100)}`) }))
  lines.push(line({ op: 'delete', key: 'k1' }))
  const text = lines.join('')
  t.ok(text.length > 2 << 20, 'more than two reads of the file')
  writeFileSync(file, text + '{"op":"set","key":"torn","rec')
  const { store, warnings } = await openStore(dir)
  t.equal(store.usage().keys, 4999)
  t.equal(store.peek('k4999')?.value, `v19999 ${'x'.repeat(100)}`)
  t.equal(store.peek('k1'), undefined)
  t.match(warnings, [/line 20002: dropped a torn last line \(29 bytes\)/])
  await store.close()

  const bad = [...lines]
  bad[15000] = '{"op":"set","key":"a",\n'
  writeFileSync(file, bad.join(''))
  await t.rejects(openStore(dir), { name: 'StorageError', message: /line 15001 is not valid JSON/ })
  const utf = Buffer.concat([Buffer.from(lines.slice(0, 18000).join('')), Buffer.from([0xc3, 0x28, 0x0a]), Buffer.from(lines.slice(18000).join(''))])
  writeFileSync(file, utf)
  await t.rejects(openStore(dir), { name: 'StorageError', message: /line 18001 is not valid UTF-8/ })
  t.same(readFileSync(file), utf, 'the file is left untouched')
})

t.test('a store file in another layout (Simple-PyKV\'s indented file) is rewritten in ours at a clean close; ours is left as it is', async t => {
  const dir = tempDir(t)
  const snapshot = storeFileName(dir, ID)
  const py = { greeting: { value: 'hello', created_at: 1764992680, updated_at: 1765075342, size_bytes: 5 }, n: { value: 7, created_at: 1, updated_at: 2, size_bytes: 1 } }
  writeFileSync(snapshot, JSON.stringify(py, null, 2))
  const first = await openStore(dir)
  t.equal(first.store.peek('greeting')?.value, 'hello')
  await first.store.close()
  const text = readFileSync(snapshot, 'utf8')
  t.equal(text, snapshotText([['greeting', first.store.peek('greeting') as KvRecord], ['n', first.store.peek('n') as KvRecord]]), 'now one record per line')
  const { ino } = statSync(snapshot)
  const second = await openStore(dir)
  t.same(values(second.store), { greeting: 'hello', n: 7 })
  t.equal(second.store.peek('greeting')?.type, 'string')
  await second.store.close()
  t.equal(statSync(snapshot).ino, ino, 'a file already in our layout is not rewritten by a close without writes')
  t.equal(readFileSync(snapshot, 'utf8'), text)
})

t.test('records carrying version, expires_at and tag keep them through replay, a compaction and a clean close; records without get them once', async t => {
  const dir = t.testdir()
  const at = 1700000000
  const base = { created_at: at, updated_at: at, size_bytes: 1, type: 'string' as const }
  const a: KvRecord = { value: 'A', ...base, version: 7, expires_at: 4102444800.5 }
  const b: KvRecord = { value: 'B', ...base, version: 3, expires_at: null, tag: 'someEpoch.3.abcd' }
  const d: KvRecord = { value: 'D', ...base }
  writeFileSync(storeFileName(dir, ID), snapshotText([['a', a], ['d', d]]))
  // A newer writer may put the fields in another order: the record is the same.
  writeFileSync(journalFileName(dir, ID), line({ op: 'set', key: 'b', record: b }) +
    line({ op: 'set', key: 'c', record: { expires_at: 4102444801, version: 1, value: 'C', created_at: at, updated_at: at } }))
  const { store, journal } = await openStore(dir, { maxBytes: 256 })
  const { epoch, rev } = await store.revision()
  t.equal(rev, 7, 'the revision starts at the highest version the files hold')
  t.same(meta(dir), { epoch, rev: 3 }, 'a folder without a meta file gets one at once, with a new epoch')
  // A record without a tag gets one made from the new epoch: version 0 (a 1.0 record) the epoch's one legacy tag.
  const tagOf = (key: string): string => store.peek(key)?.tag ?? ''
  t.match(tagOf('a'), new RegExp(`^${epoch}\\.7\\.[A-Za-z0-9_-]{4}$`))
  t.match(tagOf('c'), new RegExp(`^${epoch}\\.1\\.[A-Za-z0-9_-]{4}$`))
  const want = {
    a: { ...a, tag: tagOf('a') },
    b,
    c: { value: 'C', ...base, version: 1, expires_at: 4102444801, tag: tagOf('c') },
    d: { ...d, version: 0, expires_at: null, tag: `${epoch}.0` }
  }
  const held = (get: (key: string) => KvRecord | undefined): unknown[] => ['a', 'b', 'c', 'd'].map(get)
  t.strictSame(held(k => store.peek(k)), Object.values(want), 'from the snapshot and the journal, fields in any order')

  // Enough writes to pass the bound: a background compaction writes the snapshot from memory.
  for (let i = 0; i < 20; i++) await store.set(`k${i}`, `value ${i} `.repeat(4))
  while (journal.compacting) await new Promise(resolve => setTimeout(resolve, 5))
  t.equal(journal.lastCompactionError, null)
  const compacted = JSON.parse(readFileSync(storeFileName(dir, ID), 'utf8')) as Record<string, KvRecord>
  t.strictSame(held(k => compacted[k]), Object.values(want), 'the compacted snapshot holds them')
  const written = Object.keys(compacted).filter(k => k.startsWith('k'))
  t.ok(written.length > 0)
  t.strictSame(written.map(k => compacted[k]), written.map(k => store.peek(k)), 'and the new records whole')
  t.equal(meta(dir).epoch, epoch)
  t.ok(meta(dir).rev >= Math.max(...written.map(k => compacted[k].version ?? 0)), 'the meta file, written with the compaction, is not behind the snapshot')
  const check = await readStoreFiles(dir, ID)
  t.strictSame(held(k => check.data.get(k)), Object.values(want), 'the files alone hold them')

  await store.close()
  const again = await openStore(dir)
  t.strictSame(held(k => again.store.peek(k)), Object.values(want), 'after a clean close and a restart: the same tags, so the same ETags')
  t.same(await again.store.revision(), { epoch, rev: 27 })
  t.equal(again.store.usage().keys, 24)
  await again.store.close()
})

t.test('a journal with no store attached refuses to write a whole store rather than write an empty one', async t => {
  const dir = t.testdir()
  writeFileSync(storeFileName(dir, ID), snapshotText([['a', rec('A')]]))
  writeFileSync(journalFileName(dir, ID), line({ op: 'set', key: 'b', record: rec('B') }))
  const opened = await Journal.open(dir, ID, { durability: 'always', maxBytes: 1 << 20 })
  const before = readFileSync(storeFileName(dir, ID), 'utf8')
  await t.rejects(opened.persistence.writeAll(), { message: `The journal of project '${ID}' has no store attached` })
  await t.rejects(opened.persistence.flush(), { message: `The journal of project '${ID}' has no store attached` })
  t.equal(readFileSync(storeFileName(dir, ID), 'utf8'), before, 'the snapshot is untouched')
  t.ok(existsSync(journalFileName(dir, ID)), 'and so is the journal')
  opened.persistence.applied()
  t.equal(opened.persistence.compacting, false, 'and starts no compaction')
})
