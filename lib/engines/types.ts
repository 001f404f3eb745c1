import type { JsonValue, KvRecord } from '../../schemas/record.js'

/** One page of an ordered listing. */
export interface ListOptions {
  /** Only keys that start with this. */
  prefix?: string
  /** Start after this key (exclusive): the last key of the previous page. */
  after?: string
  /** Most entries in the page. */
  limit: number
  /** Whether the caller needs the values (default true); without, an engine may leave `value` null. */
  values?: boolean
}

export interface ListPage {
  /** Keys in UTF-8 byte order (code point order), with their records; expired keys are skipped. */
  entries: Array<[string, KvRecord]>
  /** True when more keys follow the last one of this page. */
  more: boolean
  /** The store's revision when the page was read. */
  revision: Revision
}

/**
 * Where a store is in its history. `epoch` is random, made with the store (a
 * new project, a memory-only project that restarted, a folder without one);
 * `rev` counts the store's revisions in that epoch and never goes back.
 */
export interface Revision {
  epoch: string
  rev: number
}

/** An entity-tag list as sent in If-Match / If-None-Match: `*` or the tags, quotes included. */
export type EntityTags = '*' | readonly string[]

/** HTTP preconditions on one key (RFC 9110 section 13), checked in the same atomic step as the write. */
export interface Preconditions {
  ifMatch?: EntityTags
  ifNoneMatch?: EntityTags
}

/**
 * What a write does to the key's expiry: clear it (the default, as Redis SET),
 * keep it, set it to an instant (epoch ms) or to a time from now by the
 * engine's own clock (ms).
 */
export type ExpiryChange = { kind: 'clear' } | { kind: 'keep' } | { kind: 'at', ms: number } | { kind: 'after', ms: number }

export interface SetOptions extends Preconditions {
  expiry?: ExpiryChange
}

/** A transaction check, against the state before the transaction. */
export type TxnCheck =
  | { key: string, etag: string }
  | { key: string, exists: boolean }

export type TxnOp =
  | { op: 'set', key: string, value: JsonValue, expiry?: ExpiryChange }
  | { op: 'delete', key: string }
  | { op: 'get', key: string }

export type TxnResult =
  | { key: string, etag: string }
  | { key: string, deleted: boolean }
  | { key: string, etag: string | null, record: KvRecord | null }

export interface TxnOutcome {
  /** The revision the transaction made (or the current one, for reads only). */
  rev: number
  results: TxnResult[]
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
  /** The record with its version, expiry and ETag; undefined when the key is missing or expired. */
  get: (key: string) => Promise<KvRecord | undefined>
  /** PreconditionFailedError when a precondition does not hold; nothing changes then. */
  set: (key: string, value: JsonValue, options?: SetOptions) => Promise<KvRecord>
  /** False when the key did not exist (no revision then). */
  delete: (key: string, options?: Preconditions) => Promise<boolean>
  /** Change only the expiry of an existing key (NotFoundError when it has none). */
  setExpiry: (key: string, expiry: ExpiryChange, options?: Preconditions) => Promise<KvRecord>
  clear: () => Promise<void>
  /**
   * Checks against the state before, then the ops in order as one revision,
   * all or nothing; TxnConflictError naming the failed checks when one fails.
   */
  txn: (checks: readonly TxnCheck[], ops: readonly TxnOp[]) => Promise<TxnOutcome>
  revision: () => Promise<Revision>
  /** A page of keys in order; O(log n + page). */
  list: (options: ListOptions) => Promise<ListPage>
  /** Every live record, in the order the engine keeps them (insertion order for the local engine). */
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
  /**
   * Open a project's store (creating it when it has no data yet); `warnings` lists what recovery
   * dropped, to log. `fresh`: a new project, which starts empty even when an earlier project of
   * the same id left data behind (a crash between its delete and the removal of its files).
   */
  open: (projectId: string, options: { persistent: boolean, fresh?: boolean }) => Promise<{ engine: KvEngine, warnings: string[] }>
  /** Release what the backend holds (after every engine closed). */
  close: () => Promise<void>
}

/** What a backend reports as it runs, for the host to log. */
export interface StorageEvents {
  /** A background compaction of a project failed (`failures` in a row); its journals keep every change. */
  onCompactionError?: (projectId: string, err: unknown, failures: number) => void
}
