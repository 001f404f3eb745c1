import type { KvRecord } from '../../../schemas/record.js'
import type { Revision } from '../types.js'

/** A change to one key; inside a transaction it carries no revision of its own. */
export type KeyChange =
  | { op: 'set', key: string, record: KvRecord }
  | { op: 'delete', key: string }

/**
 * One revision of a store, as the store applies it and the journal keeps it
 * (one line each). A set's revision is its record's version; the others carry
 * `rev`. Lines written before revisions existed have none.
 */
export type Change =
  | KeyChange & { rev?: number }
  | { op: 'clear', rev?: number }
  | { op: 'txn', rev: number, changes: KeyChange[] }
  | { op: 'expire', rev: number, keys: string[] }

export function applyChange (data: Map<string, KvRecord>, change: Change): void {
  switch (change.op) {
    case 'set': data.set(change.key, change.record); break
    case 'delete': data.delete(change.key); break
    case 'clear': data.clear(); break
    case 'txn': for (const c of change.changes) applyChange(data, c); break
    case 'expire': for (const key of change.keys) data.delete(key); break
  }
}

/** The revision a change made, when it says. */
export function revisionOf (change: Change): number | undefined {
  return change.op === 'set' ? change.rev ?? change.record.version : change.rev
}

/** The records a persistence may read when it writes a whole store; the store alone changes them. */
export type StoreView = ReadonlyMap<string, KvRecord>

/** The store's revision at this moment, for the files that must remember it. */
export type RevisionSource = () => Revision

/** How a store's changes reach the disk (or not). */
export interface Persistence {
  readonly bytesOnDisk: number
  /**
   * Called once by the store that takes this persistence, before anything
   * else: the records it holds, which the persistence reads (never changes)
   * whenever it writes the whole store.
   */
  attach: (view: StoreView, revision: RevisionSource) => void
  /**
   * Make a batch of changes durable, in order, as the durability policy
   * promises; the view still holds the state before the batch. All or
   * nothing: when it throws, none of the changes counts.
   */
  append: (changes: readonly Change[]) => Promise<void>
  /** Told after a batch reached the view; a chance to compact. */
  applied: () => void
  /** Take over the whole view (a project switching to this persistence). */
  writeAll: () => Promise<void>
  /** Clean close: leave the view on disk in its final form. */
  flush: () => Promise<void>
  /** Remove every file this persistence keeps. */
  remove: () => Promise<void>
}

export const memoryOnly: Persistence = {
  bytesOnDisk: 0,
  attach: () => {},
  append: async () => {},
  applied: () => {},
  writeAll: async () => {},
  flush: async () => {},
  remove: async () => {}
}
