import { Mutex } from 'async-mutex'
import { KvError } from '../errors.js'
import { makeRecord, type JsonValue, type KvRecord } from '../record.js'
import type { StoreEngine } from '../store.js'

export type Change =
  | { op: 'set', key: string, record: KvRecord }
  | { op: 'delete', key: string }
  | { op: 'clear' }

/** How a store's changes reach the disk (or not). */
export interface Persistence {
  readonly bytesOnDisk: number
  /** Make `change` durable; `data` is the state before it. Throws when it could not. */
  persist: (change: Change, data: ReadonlyMap<string, KvRecord>) => Promise<void>
  /** Take over a whole store (a project switching to this persistence). */
  writeAll: (data: ReadonlyMap<string, KvRecord>) => Promise<void>
  flush: (data: ReadonlyMap<string, KvRecord>) => Promise<void>
  /** Remove every file this persistence keeps. */
  remove: () => Promise<void>
}

export const memoryOnly: Persistence = {
  bytesOnDisk: 0,
  persist: async () => {},
  writeAll: async () => {},
  flush: async () => {},
  remove: async () => {}
}

/**
 * The default engine: a `Map` that serves every read, with writes serialized by
 * a mutex and handed to a Persistence before memory changes, so a failed disk
 * write leaves memory and disk agreeing.
 */
export class ProjectStore implements StoreEngine {
  readonly projectId: string
  readonly #data: Map<string, KvRecord>
  readonly #mutex = new Mutex()
  #persistence: Persistence
  #closed = false

  constructor (projectId: string, data: Map<string, KvRecord>, persistence: Persistence) {
    this.projectId = projectId
    this.#data = data
    this.#persistence = persistence
  }

  get size (): number {
    return this.#data.size
  }

  get bytesOnDisk (): number {
    return this.#persistence.bytesOnDisk
  }

  get onDisk (): boolean {
    return this.#persistence !== memoryOnly
  }

  get (key: string): KvRecord | undefined {
    return this.#data.get(key)
  }

  list (): IterableIterator<[string, KvRecord]> {
    return this.#data.entries()
  }

  async set (key: string, value: JsonValue): Promise<KvRecord> {
    return await this.#write(async () => {
      const record = makeRecord(value, this.#data.get(key))
      await this.#persist({ op: 'set', key, record })
      this.#data.set(key, record)
      return record
    })
  }

  async delete (key: string): Promise<boolean> {
    return await this.#write(async () => {
      if (!this.#data.has(key)) return false
      await this.#persist({ op: 'delete', key })
      this.#data.delete(key)
      return true
    })
  }

  async clear (): Promise<void> {
    await this.#write(async () => {
      await this.#persist({ op: 'clear' })
      this.#data.clear()
    })
  }

  /** Switch between memory-only and on-disk without losing or racing a write. */
  async setPersistence (next: Persistence): Promise<void> {
    await this.#write(async () => {
      if (next === this.#persistence) return
      await next.writeAll(this.#data)
      const previous = this.#persistence
      this.#persistence = next
      await previous.remove()
    })
  }

  async close (): Promise<void> {
    await this.#mutex.runExclusive(async () => {
      if (this.#closed) return
      this.#closed = true
      await this.#persistence.flush(this.#data)
    })
  }

  async destroy (): Promise<void> {
    await this.#mutex.runExclusive(async () => {
      this.#closed = true
      this.#data.clear()
      await this.#persistence.remove()
    })
  }

  async #persist (change: Change): Promise<void> {
    try {
      await this.#persistence.persist(change, this.#data)
    } catch (err) {
      throw new KvError(507, `Could not write the store of project '${this.projectId}' to disk`, undefined, err)
    }
  }

  async #write<R> (fn: () => Promise<R>): Promise<R> {
    return await this.#mutex.runExclusive(async () => {
      if (this.#closed) throw new KvError(404, `Project with id '${this.projectId}' not found`)
      return await fn()
    })
  }
}
