import { Mutex } from 'async-mutex'
import sortedBtree from 'sorted-btree'
import type { JsonValue, KvRecord } from '../../../schemas/record.js'
import {
  InvalidInputError, LimitExceededError, NotFoundError, PreconditionFailedError, projectNotFound, StorageUnavailableError, TxnConflictError
} from '../../errors.js'
import { etagOf, expiryMs, makeRecord } from '../../record.js'
import { compareKeys } from '../order.js'
import { preconditionsHold } from '../preconditions.js'
import { legacyTag, newEpoch, newTag } from '../revision.js'
import type {
  ExpiryChange, KvEngine, ListOptions, ListPage, Preconditions, Revision, SetOptions, StoreLimits, StoreUsage,
  TxnCheck, TxnOp, TxnOutcome, TxnResult
} from '../types.js'
import { applyChange, memoryOnly, type Change, type KeyChange, type Persistence } from './changes.js'

// sorted-btree is CommonJS; its class is the `default` member.
const BTree = sortedBtree.default
type KeyIndex = InstanceType<typeof BTree<string, undefined>>

/** Makes the persistence of a project that switches to on-disk (true) or memory-only (false). */
export type PersistenceFactory = (persistent: boolean) => Promise<Persistence>

const NO_LIMITS: StoreLimits = { maxValueBytes: Infinity, maxKeys: Infinity, maxBytes: Infinity }

/** Most keys one expiry round reclaims; the next round follows on the next turn of the event loop. */
const RECLAIM_SLICE = 1000

export interface LocalEngineOptions {
  limits?: StoreLimits
  /** Makes the persistence for a switch between memory-only and on-disk. */
  persistenceFor?: PersistenceFactory
  /** Where the store's files left its history; absent: a new epoch at revision 0. */
  revision?: Revision
  /** The clock, epoch ms (default Date.now). */
  now?: () => number
}

/** Throws PreconditionFailedError when If-Match or If-None-Match does not hold for `current`. */
function checkPreconditions (key: string, current: KvRecord | undefined, pre: Preconditions): void {
  const etag = current === undefined ? null : etagOf(current)
  if (!preconditionsHold(pre, etag)) throw new PreconditionFailedError(key, etag)
}

/** The changes to single keys a change holds (none for a clear). */
function keyChanges (change: Change): readonly KeyChange[] {
  switch (change.op) {
    case 'set': case 'delete': return [change]
    case 'txn': return change.changes
    case 'expire': return change.keys.map(key => ({ op: 'delete', key }))
    case 'clear': return []
  }
}

/** A key of the due-time index: the due time first, so the index is ordered by it. */
function dueKey (ms: number, key: string): string {
  return `${String(ms).padStart(16, '0')}\u0000${key}`
}

interface Pending {
  change: Change
  seq: number
  resolve: () => void
  reject: (err: unknown) => void
}

/** A change decided but not yet durable: what later writes must see. */
interface Overlay {
  record: KvRecord | undefined
  seq: number
}

/**
 * The default engine: a `Map` that serves every read, and a write pipeline in
 * front of a Persistence. A write is decided at once against the latest
 * state, queued, and handed to the Persistence together with every other write
 * queued meanwhile (group commit: one disk write and fsync for the batch).
 * Memory changes only when the batch is durable, in submission order, so
 * reads never see a change that could still be lost, and a failed disk write
 * leaves memory as it was.
 */
export class LocalEngine implements KvEngine {
  readonly projectId: string
  readonly #data: Map<string, KvRecord>
  #persistence: Persistence
  #closed = false
  /** Held by close, destroy and switching persistence; writes wait while it is. */
  readonly #mutex = new Mutex()
  #queue: Pending[] = []
  /** The newest pending change per key, so a queued write builds on the one before it. */
  readonly #overlay = new Map<string, Overlay>()
  /** Sequence number of a pending clear (0: none). */
  #clearSeq = 0
  #seq = 0
  #running: Promise<void> | null = null
  readonly #limits: StoreLimits
  readonly #persistenceFor: PersistenceFactory | null
  /** The keys in order, built on the first ordered listing and kept up to date after it. */
  #index: KeyIndex | null = null
  /** Keys and value bytes of the latest state (memory with pending changes), for the limits. */
  #keys = 0
  #bytes = 0
  readonly #epoch: string
  /** The revision of the latest decided write (it may still be on its way to disk). */
  #rev: number
  /** The revision of the latest write in memory (durable). */
  #appliedRev: number
  readonly #now: () => number
  /** Keys with an expiry in memory, ordered by due time (dueKey). */
  readonly #due = new BTree<string, undefined>()
  #reclaimTimer: NodeJS.Timeout | null = null
  #reclaimAt = Infinity
  #reclaiming = false

  constructor (projectId: string, data: Map<string, KvRecord>, persistence: Persistence, options: LocalEngineOptions = {}) {
    this.projectId = projectId
    this.#data = data
    this.#persistence = persistence
    this.#limits = options.limits ?? NO_LIMITS
    this.#persistenceFor = options.persistenceFor ?? null
    this.#now = options.now ?? Date.now
    this.#epoch = options.revision?.epoch ?? newEpoch()
    let rev = options.revision?.rev ?? 0
    // Records from files written before revisions get version 0, no expiry, and the epoch's one legacy tag.
    for (const [key, record] of data) {
      record.version ??= 0
      record.expires_at ??= null
      record.tag ??= record.version === 0 ? legacyTag(this.#epoch) : newTag(this.#epoch, record.version)
      if (record.version > rev) rev = record.version
      const due = expiryMs(record)
      if (due !== null) this.#due.set(dueKey(due, key), undefined)
    }
    this.#rev = rev
    this.#appliedRev = rev
    persistence.attach(data, () => this.#filesRevision())
    this.#recount()
    this.#scheduleReclaim()
  }

  get persistent (): boolean {
    return this.#persistence !== memoryOnly
  }

  get persistence (): Persistence {
    return this.#persistence
  }

  usage (): StoreUsage {
    return { keys: this.#data.size, valueBytes: this.#bytes, bytesOnDisk: this.#persistence.bytesOnDisk }
  }

  /** The durable state, read-only: what the persistence compacts from, and what local tests inspect. */
  get view (): ReadonlyMap<string, KvRecord> {
    return this.#data
  }

  /** The durable record of a key, read synchronously and whether expired or not: for inspecting the store, not for serving reads. */
  peek (key: string): KvRecord | undefined {
    return this.#data.get(key)
  }

  async get (key: string): Promise<KvRecord | undefined> {
    const record = this.#data.get(key)
    return record !== undefined && this.#live(record, this.#now()) ? record : undefined
  }

  async entries (): Promise<Array<[string, KvRecord]>> {
    const now = this.#now()
    const out: Array<[string, KvRecord]> = []
    for (const entry of this.#data) if (this.#live(entry[1], now)) out.push(entry)
    return out
  }

  async list ({ prefix = '', after, limit }: ListOptions): Promise<ListPage> {
    const index = this.#orderedKeys()
    const revision = { epoch: this.#epoch, rev: this.#appliedRev }
    const start = after !== undefined && compareKeys(after, prefix) >= 0 ? index.nextHigherKey(after) : prefix
    const entries: Array<[string, KvRecord]> = []
    if (start === undefined) return { entries, more: false, revision }
    const now = this.#now()
    for (const [key] of index.entries(start)) {
      if (!key.startsWith(prefix)) break
      const record = this.#data.get(key) as KvRecord
      if (!this.#live(record, now)) continue
      if (entries.length === limit) return { entries, more: true, revision }
      entries.push([key, record])
    }
    return { entries, more: false, revision }
  }

  async revision (): Promise<Revision> {
    return { epoch: this.#epoch, rev: this.#appliedRev }
  }

  async setPersistent (persistent: boolean): Promise<void> {
    if (persistent === this.persistent) return
    if (this.#persistenceFor === null) throw new Error(`store of project '${this.projectId}' cannot change its persistence`)
    await this.setPersistence(await this.#persistenceFor(persistent))
  }

  async set (key: string, value: JsonValue, options: SetOptions = {}): Promise<KvRecord> {
    return await this.#write(() => {
      const now = this.#now()
      const previous = this.#visible(key, now)
      checkPreconditions(key, previous, options)
      const version = this.#rev + 1
      const record = makeRecord(value, previous, { version, expiresAt: this.#expiresAt(options.expiry, previous), tag: newTag(this.#epoch, version) })
      // An expired key not yet reclaimed counts as absent; #checkTotals takes it off the totals.
      this.#checkLimits(record, previous)
      this.#rev = version
      return this.#submit({ op: 'set', key, record }).then(() => record)
    })
  }

  async delete (key: string, options: Preconditions = {}): Promise<boolean> {
    return await this.#write(() => {
      const previous = this.#visible(key, this.#now())
      checkPreconditions(key, previous, options)
      if (previous === undefined) return Promise.resolve(false)
      return this.#submit({ op: 'delete', key, rev: ++this.#rev }).then(() => true)
    })
  }

  async setExpiry (key: string, expiry: ExpiryChange, options: Preconditions = {}): Promise<KvRecord> {
    return await this.#write(() => {
      const previous = this.#visible(key, this.#now())
      checkPreconditions(key, previous, options)
      if (previous === undefined) throw new NotFoundError(`Key '${key}' not found in project '${this.projectId}' store`)
      const version = this.#rev + 1
      const record: KvRecord = { ...previous, version, expires_at: this.#expiresAt(expiry, previous), tag: newTag(this.#epoch, version) }
      this.#rev = version
      return this.#submit({ op: 'set', key, record }).then(() => record)
    })
  }

  async clear (): Promise<void> {
    await this.#write(async () => { await this.#submit({ op: 'clear', rev: ++this.#rev }) })
  }

  async txn (checks: readonly TxnCheck[], ops: readonly TxnOp[]): Promise<TxnOutcome> {
    return await this.#write(() => {
      const writes = ops.some(op => op.op !== 'get')
      const now = this.#now()
      // Reads only: the durable state, as every other read; with writes, the latest, answered once durable.
      const current = (key: string): KvRecord | undefined => {
        const record = writes ? this.#latest(key) : this.#data.get(key)
        return record !== undefined && this.#live(record, now) ? record : undefined
      }
      const failed: Array<{ index: number, key: string, etag: string | null }> = []
      checks.forEach((check, index) => {
        const record = current(check.key)
        const etag = record === undefined ? null : etagOf(record)
        const holds = 'etag' in check ? etag === check.etag : (record !== undefined) === check.exists
        if (!holds) failed.push({ index, key: check.key, etag })
      })
      if (failed.length > 0) throw new TxnConflictError(failed)
      const version = writes ? this.#rev + 1 : this.#rev
      const mine = new Map<string, KvRecord | undefined>()
      const seen = (key: string): KvRecord | undefined => mine.has(key) ? mine.get(key) : current(key)
      const changes: KeyChange[] = []
      const results: TxnResult[] = []
      let keys = 0
      let bytes = 0
      for (const op of ops) {
        if (op.op !== 'get' && mine.has(op.key)) throw new InvalidInputError(`Key '${op.key}' is written twice in one transaction`)
        const previous = seen(op.key)
        if (op.op === 'get') {
          results.push({ key: op.key, etag: previous === undefined ? null : etagOf(previous), record: previous ?? null })
          continue
        }
        // As for a single set: an expired key counts as absent, and #checkTotals takes it off the totals.
        const latest = this.#latest(op.key)
        const raw = latest !== undefined && this.#live(latest, now) ? latest : undefined
        if (op.op === 'delete') {
          mine.set(op.key, undefined)
          if (previous !== undefined) changes.push({ op: 'delete', key: op.key })
          if (raw !== undefined) { keys--; bytes -= raw.size_bytes }
          results.push({ key: op.key, deleted: previous !== undefined })
          continue
        }
        const record = makeRecord(op.value, previous, { version, expiresAt: this.#expiresAt(op.expiry, previous), tag: newTag(this.#epoch, version) })
        if (record.size_bytes > this.#limits.maxValueBytes) throw new LimitExceededError(`Value of key '${op.key}' is larger than the maximum of ${this.#limits.maxValueBytes} bytes`)
        if (raw === undefined) keys++
        bytes += record.size_bytes - (raw?.size_bytes ?? 0)
        mine.set(op.key, record)
        changes.push({ op: 'set', key: op.key, record })
        results.push({ key: op.key, etag: etagOf(record) })
      }
      if (!writes) return Promise.resolve({ rev: this.#appliedRev, results })
      this.#checkTotals(keys, bytes)
      this.#rev = version
      return this.#submit({ op: 'txn', rev: version, changes }).then(() => ({ rev: version, results }))
    })
  }

  /** Switch between memory-only and on-disk, after the writes in flight and before any later one. */
  async setPersistence (next: Persistence): Promise<void> {
    await this.#exclusive(async () => {
      if (this.#closed) throw projectNotFound(this.projectId)
      if (next === this.#persistence) return
      try {
        next.attach(this.#data, () => this.#filesRevision())
        await next.writeAll()
      } catch (err) {
        await next.remove().catch(() => {})
        throw this.#unwritable(err)
      }
      const previous = this.#persistence
      this.#persistence = next
      // Files left behind by a failing disk are harmless: a later switch to disk rewrites them all.
      await previous.remove().catch(() => {})
    })
  }

  async close (): Promise<void> {
    this.#stopReclaim()
    await this.#exclusive(async () => {
      if (this.#closed) return
      this.#closed = true
      this.#stopReclaim()
      await this.#persistence.flush()
    })
  }

  async destroy (): Promise<void> {
    this.#stopReclaim()
    await this.#exclusive(async () => {
      this.#closed = true
      this.#stopReclaim()
      this.#data.clear()
      this.#due.clear()
      this.#index = null
      this.#recount()
      await this.#persistence.remove()
    })
  }

  #live (record: KvRecord, now: number): boolean {
    const due = expiryMs(record)
    return due === null || due > now
  }

  /** The latest state of a key as a write sees it: undefined when missing or expired. */
  #visible (key: string, now: number): KvRecord | undefined {
    const record = this.#latest(key)
    return record !== undefined && this.#live(record, now) ? record : undefined
  }

  /** The expires_at (epoch seconds or null) a write leaves on a key. */
  #expiresAt (expiry: ExpiryChange | undefined, previous: KvRecord | undefined): number | null {
    if (expiry === undefined || expiry.kind === 'clear') return null
    if (expiry.kind === 'keep') return previous?.expires_at ?? null
    return (expiry.kind === 'at' ? expiry.ms : this.#now() + expiry.ms) / 1000
  }

  /** The epoch and a revision at least that of every decided write, for the files that keep it. */
  #filesRevision (): Revision {
    return { epoch: this.#epoch, rev: this.#rev }
  }

  /** The state a new write builds on: memory with every pending change over it. */
  #latest (key: string): KvRecord | undefined {
    const pending = this.#overlay.get(key)
    if (pending !== undefined) return pending.record
    return this.#clearSeq !== 0 ? undefined : this.#data.get(key)
  }

  /**
   * Run `decide` as soon as no exclusive operation holds the store. It runs
   * synchronously after the check, so nothing can close the store in between.
   */
  async #write<R> (decide: () => Promise<R>): Promise<R> {
    while (this.#mutex.isLocked()) await this.#mutex.waitForUnlock()
    if (this.#closed) throw projectNotFound(this.projectId)
    return await decide()
  }

  #checkLimits (record: KvRecord, previous: KvRecord | undefined): void {
    const { maxValueBytes } = this.#limits
    if (record.size_bytes > maxValueBytes) throw new LimitExceededError(`Value is larger than the maximum of ${maxValueBytes} bytes`)
    this.#checkTotals(previous === undefined ? 1 : 0, record.size_bytes - (previous?.size_bytes ?? 0))
  }

  /**
   * Refuses a write that adds `keys` keys and `bytes` value bytes when the
   * store would pass its bounds. The running totals still hold keys that
   * expired but are not reclaimed yet; those do not count, so they are
   * taken off before refusing (a walk over the due keys, only then).
   */
  #checkTotals (keys: number, bytes: number): void {
    const { maxKeys, maxBytes } = this.#limits
    const over = (k: number, b: number): 'keys' | 'bytes' | null =>
      keys > 0 && k + keys > maxKeys ? 'keys' : bytes > 0 && b + bytes > maxBytes ? 'bytes' : null
    if (over(this.#keys, this.#bytes) === null) return
    const now = this.#now()
    let liveKeys = this.#keys
    let liveBytes = this.#bytes
    for (const [entry] of this.#due.entries()) {
      if (Number(entry.slice(0, 16)) > now) break
      const latest = this.#latest(entry.slice(17))
      if (latest === undefined || this.#live(latest, now)) continue
      liveKeys--
      liveBytes -= latest.size_bytes
    }
    const which = over(liveKeys, liveBytes)
    if (which === 'keys') throw new LimitExceededError(`Project '${this.projectId}' already holds the maximum of ${maxKeys} keys`)
    if (which === 'bytes') throw new LimitExceededError(`Project '${this.projectId}' would exceed its maximum of ${maxBytes} bytes of values`)
  }

  /** Recompute the totals from memory plus what is still pending. */
  #recount (): void {
    let keys = 0
    let bytes = 0
    for (const [key, record] of this.#data) {
      if (this.#clearSeq !== 0 || this.#overlay.has(key)) continue
      keys++
      bytes += record.size_bytes
    }
    for (const { record } of this.#overlay.values()) {
      if (record === undefined) continue
      keys++
      bytes += record.size_bytes
    }
    this.#keys = keys
    this.#bytes = bytes
  }

  #count (change: Change): void {
    switch (change.op) {
      case 'clear':
        this.#keys = 0
        this.#bytes = 0
        return
      case 'txn':
        for (const c of change.changes) this.#count(c)
        return
      case 'expire':
        for (const key of change.keys) this.#count({ op: 'delete', key })
        return
    }
    const previous = this.#latest(change.key)
    if (previous !== undefined) {
      this.#keys--
      this.#bytes -= previous.size_bytes
    }
    if (change.op === 'set') {
      this.#keys++
      this.#bytes += change.record.size_bytes
    }
  }

  #submit (change: Change): Promise<void> {
    this.#count(change)
    // Nothing to make durable and nothing queued ahead: apply at once, skipping the batch turn.
    if (this.#persistence === memoryOnly && this.#running === null) {
      this.#apply(change)
      return Promise.resolve()
    }
    const seq = ++this.#seq
    if (change.op === 'clear') {
      this.#overlay.clear()
      this.#clearSeq = seq
    } else {
      for (const c of keyChanges(change)) this.#overlay.set(c.key, { record: c.op === 'set' ? c.record : undefined, seq })
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ change, seq, resolve, reject })
      this.#running ??= this.#run()
    })
  }

  /** Hand queued writes to the persistence, a batch at a time, until none is left. */
  async #run (): Promise<void> {
    // Let the writes that arrive in this turn of the event loop join the first batch.
    await new Promise(resolve => setImmediate(resolve))
    while (this.#queue.length > 0) {
      const batch = this.#queue
      this.#queue = []
      try {
        await this.#persistence.append(batch.map(p => p.change))
      } catch (err) {
        // Writes queued behind the batch were decided on top of it: they fail with it.
        const failed = [...batch, ...this.#queue]
        this.#queue = []
        this.#overlay.clear()
        this.#clearSeq = 0
        this.#recount()
        // The failed writes are no revisions: the next write takes the number after the last durable one.
        this.#rev = this.#appliedRev
        const error = this.#unwritable(err)
        for (const p of failed) p.reject(error)
        continue
      }
      for (const p of batch) {
        this.#apply(p.change)
        if (p.change.op === 'clear') {
          if (this.#clearSeq === p.seq) this.#clearSeq = 0
          continue
        }
        for (const c of keyChanges(p.change)) {
          if (this.#overlay.get(c.key)?.seq === p.seq) this.#overlay.delete(c.key)
        }
      }
      this.#persistence.applied()
      for (const p of batch) p.resolve()
    }
    this.#running = null
  }

  /** A durable change reaches memory, the order index and the due-time index. */
  #apply (change: Change): void {
    if (change.op === 'clear') {
      this.#data.clear()
      this.#index?.clear()
      this.#due.clear()
    } else {
      for (const c of keyChanges(change)) {
        const before = this.#data.get(c.key)
        const due = before === undefined ? null : expiryMs(before)
        if (due !== null) this.#due.delete(dueKey(due, c.key))
        if (c.op === 'set') {
          const next = expiryMs(c.record)
          if (next !== null) this.#due.set(dueKey(next, c.key), undefined)
          if (before === undefined) this.#index?.set(c.key, undefined)
        } else {
          this.#index?.delete(c.key)
        }
        applyChange(this.#data, c)
      }
    }
    const rev = change.op === 'set' ? change.record.version : change.rev
    if (rev !== undefined && rev > this.#appliedRev) this.#appliedRev = rev
    this.#scheduleReclaim()
  }

  /** Arm the reclaim timer for the earliest due time, unless it is armed for that or earlier already. */
  #scheduleReclaim (): void {
    if (this.#closed || this.#reclaiming) return
    const first = this.#due.minKey()
    if (first === undefined) return
    const at = Number(first.slice(0, 16))
    if (at >= this.#reclaimAt) return
    if (this.#reclaimTimer !== null) clearTimeout(this.#reclaimTimer)
    this.#reclaimAt = at
    // A timer can wait at most 2^31-1 ms; a later due time is armed again when that one fires.
    this.#reclaimTimer = setTimeout(() => { void this.#reclaim() }, Math.min(Math.max(0, at - this.#now()), 2 ** 31 - 1))
    this.#reclaimTimer.unref()
  }

  #stopReclaim (): void {
    if (this.#reclaimTimer !== null) clearTimeout(this.#reclaimTimer)
    this.#reclaimTimer = null
    this.#reclaimAt = Infinity
  }

  /**
   * Reclaim due keys in rounds of at most RECLAIM_SLICE, each one revision
   * written like any other, yielding between rounds so a mass expiry never
   * holds up requests. A failed round (a failing disk) is tried again later.
   */
  async #reclaim (): Promise<void> {
    this.#reclaimTimer = null
    this.#reclaimAt = Infinity
    this.#reclaiming = true
    try {
      for (;;) {
        const more = await this.#write(() => {
          const now = this.#now()
          const keys: string[] = []
          let more = false
          for (const [entry] of this.#due.entries()) {
            if (Number(entry.slice(0, 16)) > now) break
            if (keys.length === RECLAIM_SLICE) {
              more = true
              break
            }
            const key = entry.slice(17)
            // Skip keys a pending write already changed; their own change updates the index.
            const latest = this.#latest(key)
            if (latest !== undefined && !this.#live(latest, now)) keys.push(key)
          }
          if (keys.length === 0) return Promise.resolve(false)
          return this.#submit({ op: 'expire', rev: ++this.#rev, keys }).then(() => more)
        })
        if (!more || this.#closed) break
        await new Promise(resolve => setImmediate(resolve))
      }
    } catch {
      // The keys stay invisible; a failing disk is reported on the writes that follow, and the round is retried.
      await new Promise(resolve => setTimeout(resolve, 1000).unref())
    } finally {
      this.#reclaiming = false
    }
    this.#scheduleReclaim()
  }

  #orderedKeys (): KeyIndex {
    if (this.#index === null) {
      const keys = [...this.#data.keys()].sort(compareKeys)
      this.#index = new BTree<string, undefined>(keys.map(k => [k, undefined]), compareKeys)
    }
    return this.#index
  }

  #unwritable (err: unknown): StorageUnavailableError {
    return new StorageUnavailableError(`Could not write the store of project '${this.projectId}' to disk`, err)
  }

  async #exclusive (fn: () => Promise<void>): Promise<void> {
    await this.#mutex.runExclusive(async () => {
      while (this.#running !== null) await this.#running
      await fn()
    })
  }
}
