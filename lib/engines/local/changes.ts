import type { KvRecord } from '../../../schemas/record.js'

/** One accepted write, as the store applies it and the journal keeps it. */
export type Change =
  | { op: 'set', key: string, record: KvRecord }
  | { op: 'delete', key: string }
  | { op: 'clear' }

export function applyChange (data: Map<string, KvRecord>, change: Change): void {
  if (change.op === 'set') data.set(change.key, change.record)
  else if (change.op === 'delete') data.delete(change.key)
  else data.clear()
}

/** The records a persistence may read when it writes a whole store; the store alone changes them. */
export type StoreView = ReadonlyMap<string, KvRecord>

/** How a store's changes reach the disk (or not). */
export interface Persistence {
  readonly bytesOnDisk: number
  /**
   * Called once by the store that takes this persistence, before anything
   * else: the records it holds, which the persistence reads (never changes)
   * whenever it writes the whole store.
   */
  attach: (view: StoreView) => void
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
