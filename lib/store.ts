import type { JsonValue, KvRecord } from './record.js'

/**
 * One project's key-value store. Reads are synchronous and served from memory;
 * writes resolve once the change is as durable as the engine promises, and
 * memory changes only after that.
 */
export interface StoreEngine {
  get: (key: string) => KvRecord | undefined
  set: (key: string, value: JsonValue) => Promise<KvRecord>
  delete: (key: string) => Promise<boolean>
  clear: () => Promise<void>
  list: () => IterableIterator<[string, KvRecord]>
  readonly size: number
  /** Bytes this store occupies on disk (0 for memory-only stores). */
  readonly bytesOnDisk: number
  /** Flush and release resources; the store is unusable afterwards. */
  close: () => Promise<void>
  /** Wait for writes in flight, then remove every file of the store. */
  destroy: () => Promise<void>
}
