/**
 * Where Simple KV's data lives in Redis (docs/storage.md has the whole layout).
 * Every key starts with the configured prefix. A project's store keys share
 * the hash tag `{<project id>}`, so one script can touch them all, on one
 * Redis or one Redis Cluster slot; its epoch is part of the names, so a
 * project deleted and created again never sees the old store's keys.
 */
export interface StoreKeys {
  /** Hash: epoch, rev, keys, bytes. Its absence means the store was deleted. */
  meta: string
  /** Hash: store key → entry (header line, then the value's JSON). */
  data: string
  /** Sorted set, every score 0: the keys in byte order, for ZRANGE BYLEX. */
  index: string
  /** Sorted set: keys with an expiry, scored by their due time in ms. */
  due: string
}

export function storeKeys (prefix: string, projectId: string, epoch: string): StoreKeys {
  const base = `${prefix}:{${projectId}}:${epoch}`
  return { meta: `${base}:m`, data: `${base}:d`, index: `${base}:i`, due: `${base}:x` }
}

/** The four keys in the order every store script takes them. */
export function scriptKeys (keys: StoreKeys): string[] {
  return [keys.meta, keys.data, keys.index, keys.due]
}

/** Hash: project id → the project's catalog entry (JSON: settings, key hash, store epoch). */
export function catalogKey (prefix: string): string {
  return `${prefix}:catalog`
}

/** Set once the projects of a config file have been copied in: after that, Redis is the truth. */
export function seededKey (prefix: string): string {
  return `${prefix}:seeded`
}
