import { Mutex } from 'async-mutex'
import sortedBtree from 'sorted-btree'
import type { JsonValue, KvRecord } from '../../../schemas/record.js'
import { LimitExceededError, projectNotFound, StorageUnavailableError } from '../../errors.js'
import { makeRecord } from '../../record.js'
import { applyChange, memoryOnly, type Change, type Persistence } from './changes.js'
import { compareKeys } from '../order.js'
import type { KvEngine, ListOptions, ListPage, StoreLimits, StoreUsage } from '../types.js'

// sorted-btree is CommonJS; its class is the `default` member.
const BTree = sortedBtree.default
type KeyIndex = InstanceType<typeof BTree<string, undefined>>

/** Makes the persistence of a project that switches to on-disk (true) or memory-only (false). */
export type PersistenceFactory = (persistent: boolean) => Promise<Persistence>

const NO_LIMITS: StoreLimits = { maxValueBytes: Infinity, maxKeys: Infinity, maxBytes: Infinity }

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

  constructor (projectId: string, data: Map<string, KvRecord>, persistence: Persistence, limits: StoreLimits = NO_LIMITS, persistenceFor: PersistenceFactory | null = null) {
    this.projectId = projectId
    this.#data = data
    this.#persistence = persistence
    this.#limits = limits
    this.#persistenceFor = persistenceFor
    persistence.attach(data)
    this.#recount()
  }

  /** Value bytes held, summed over the records' size_bytes. */
  get valueBytes (): number {
    return this.#bytes
  }

  get size (): number {
    return this.#data.size
  }

  get bytesOnDisk (): number {
    return this.#persistence.bytesOnDisk
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

  /** Synchronous read for the local fast path; the seam's `get` wraps it. */
  peek (key: string): KvRecord | undefined {
    return this.#data.get(key)
  }

  async get (key: string): Promise<KvRecord | undefined> {
    return this.#data.get(key)
  }

  async entries (): Promise<Array<[string, KvRecord]>> {
    return [...this.#data.entries()]
  }

  async list ({ prefix = '', after, limit }: ListOptions): Promise<ListPage> {
    const index = this.#orderedKeys()
    const start = after !== undefined && compareKeys(after, prefix) >= 0 ? index.nextHigherKey(after) : prefix
    const entries: Array<[string, KvRecord]> = []
    if (start === undefined) return { entries, more: false }
    for (const [key] of index.entries(start)) {
      if (!key.startsWith(prefix)) break
      if (entries.length === limit) return { entries, more: true }
      entries.push([key, this.#data.get(key) as KvRecord])
    }
    return { entries, more: false }
  }

  async setPersistent (persistent: boolean): Promise<void> {
    if (persistent === this.persistent) return
    if (this.#persistenceFor === null) throw new Error(`store of project '${this.projectId}' cannot change its persistence`)
    await this.setPersistence(await this.#persistenceFor(persistent))
  }

  async set (key: string, value: JsonValue): Promise<KvRecord> {
    return await this.#write(() => {
      const previous = this.#latest(key)
      const record = makeRecord(value, previous)
      this.#checkLimits(record, previous)
      return this.#submit({ op: 'set', key, record }).then(() => record)
    })
  }

  async delete (key: string): Promise<boolean> {
    return await this.#write(() => {
      if (this.#latest(key) === undefined) return Promise.resolve(false)
      return this.#submit({ op: 'delete', key }).then(() => true)
    })
  }

  async clear (): Promise<void> {
    await this.#write(async () => { await this.#submit({ op: 'clear' }) })
  }

  /** Switch between memory-only and on-disk, after the writes in flight and before any later one. */
  async setPersistence (next: Persistence): Promise<void> {
    await this.#exclusive(async () => {
      if (this.#closed) throw projectNotFound(this.projectId)
      if (next === this.#persistence) return
      try {
        next.attach(this.#data)
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
    await this.#exclusive(async () => {
      if (this.#closed) return
      this.#closed = true
      await this.#persistence.flush()
    })
  }

  async destroy (): Promise<void> {
    await this.#exclusive(async () => {
      this.#closed = true
      this.#data.clear()
      this.#index = null
      this.#recount()
      await this.#persistence.remove()
    })
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
    const { maxValueBytes, maxKeys, maxBytes } = this.#limits
    if (record.size_bytes > maxValueBytes) throw new LimitExceededError(`Value is larger than the maximum of ${maxValueBytes} bytes`)
    if (previous === undefined && this.#keys >= maxKeys) throw new LimitExceededError(`Project '${this.projectId}' already holds the maximum of ${maxKeys} keys`)
    if (this.#bytes - (previous?.size_bytes ?? 0) + record.size_bytes > maxBytes) {
      throw new LimitExceededError(`Project '${this.projectId}' would exceed its maximum of ${maxBytes} bytes of values`)
    }
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
    if (change.op === 'clear') {
      this.#keys = 0
      this.#bytes = 0
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
      this.#overlay.set(change.key, { record: change.op === 'set' ? change.record : undefined, seq })
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
        const error = this.#unwritable(err)
        for (const p of failed) p.reject(error)
        continue
      }
      for (const p of batch) {
        this.#apply(p.change)
        if (p.change.op === 'clear') {
          if (this.#clearSeq === p.seq) this.#clearSeq = 0
        } else if (this.#overlay.get(p.change.key)?.seq === p.seq) {
          this.#overlay.delete(p.change.key)
        }
      }
      this.#persistence.applied()
      for (const p of batch) p.resolve()
    }
    this.#running = null
  }

  #apply (change: Change): void {
    applyChange(this.#data, change)
    const index = this.#index
    if (index === null) return
    if (change.op === 'set') index.set(change.key, undefined)
    else if (change.op === 'delete') index.delete(change.key)
    else index.clear()
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
