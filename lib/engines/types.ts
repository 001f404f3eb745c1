import type { JsonValue, KvRecord } from '../../schemas/record.js'

/** One page of an ordered listing. */
export interface ListOptions {
  /** Only keys that start with this. */
  prefix?: string
  /** Start after this key (exclusive): the last key of the previous page. */
  after?: string
  /** Most entries in the page. */
  limit: number
}

export interface ListPage {
  /** Keys in UTF-8 byte order (code point order), with their records. */
  entries: Array<[string, KvRecord]>
  /** True when more keys follow the last one of this page. */
  more: boolean
}

/** What a store holds, as last known; cheap to read on every system response. */
export interface StoreUsage {
  keys: number
  /** Sum of the records' size_bytes. */
  valueBytes: number
  /** Bytes the store occupies in files (0 when it has none). */
  bytesOnDisk: number
}

/**
 * One project's key-value store: the seam every caller goes through. Every
 * operation is async so that a remote engine can implement it; a write
 * resolves once the change is as durable as the engine promises, and a read
 * never sees a change that could still be lost.
 *
 * Failures are domain errors (lib/errors.ts): LimitExceededError for a write
 * past a configured bound, StorageUnavailableError when the change could not
 * be made durable (nothing changed), NotFoundError once the store is closed.
 */
export interface KvEngine {
  readonly projectId: string
  /** Whether the data outlives this process (on disk, or in a server). */
  readonly persistent: boolean
  get: (key: string) => Promise<KvRecord | undefined>
  set: (key: string, value: JsonValue) => Promise<KvRecord>
  /** False when the key did not exist. */
  delete: (key: string) => Promise<boolean>
  clear: () => Promise<void>
  /** A page of keys in order; O(log n + page). */
  list: (options: ListOptions) => Promise<ListPage>
  /** Every record, in the order the engine keeps them (insertion order for the local engine). */
  entries: () => Promise<Array<[string, KvRecord]>>
  usage: () => StoreUsage
  /** Keep the data beyond this process or not, after the writes in flight and before any later one. */
  setPersistent: (persistent: boolean) => Promise<void>
  /** Flush and release resources; the store is unusable afterwards. */
  close: () => Promise<void>
  /** Wait for writes in flight, then remove everything the store keeps. */
  destroy: () => Promise<void>
}

/** Bounds on what one store may hold; a write past one is refused and changes nothing. */
export interface StoreLimits {
  /** Largest value of one record, counted as size_bytes. */
  maxValueBytes: number
  maxKeys: number
  /** Sum of size_bytes over the store. */
  maxBytes: number
}

/** The storage a registry works with: it opens one engine per project. */
export interface StorageBackend {
  /** Names the backend for the banner and logs, e.g. 'local'. */
  readonly name: string
  /** Open a project's store (creating it when it has no data yet); `warnings` lists what recovery dropped, to log. */
  open: (projectId: string, options: { persistent: boolean }) => Promise<{ engine: KvEngine, warnings: string[] }>
  /** Release what the backend holds (after every engine closed). */
  close: () => Promise<void>
}

/** What a backend reports as it runs, for the host to log. */
export interface StorageEvents {
  /** A background compaction of a project failed (`failures` in a row); its journals keep every change. */
  onCompactionError?: (projectId: string, err: unknown, failures: number) => void
}
