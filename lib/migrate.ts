import { writeFileAtomic } from './fsutil.js'
import { effectiveProject, type ConfigStore, type ProjectConfig } from './config.js'
import { newKeyFields } from './keys.js'
import { needsKey, type GeneratedKey } from './registry.js'
import type { CatalogEntry } from './shared-registry.js'
import type { KvRecord } from './record.js'
import type { RedisConnection } from './engines/redis/connection.js'
import { RedisEngine } from './engines/redis/engine.js'
import { catalogKey, scriptKeys, seededKey, storeKeys, type StoreKeys } from './engines/redis/layout.js'
import { LocalEngine } from './engines/local/engine.js'
import { metaFileName, removeProjectFiles, storeFileName } from './engines/local/files.js'
import { Journal } from './engines/local/journal.js'
import { readMeta } from './engines/local/recovery.js'
import { writeSnapshotAtomic } from './engines/local/snapshot-file.js'
import { newEpoch } from './engines/revision.js'
import type { Revision, StoreLimits } from './engines/types.js'

/** A migration that cannot be done or did not verify; nothing of the project it names was published. */
export class MigrationError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'MigrationError'
  }
}

/** Records per skvLoad call: big enough to be quick, small enough not to hold Redis for long. */
export const LOAD_BATCH = 500
/** Reading a store from Redis is tried this many times when it changes while being read. */
const READ_ATTEMPTS = 3
/** A compare-and-swap of a catalog entry that lost a race is tried again this many times. */
const SWAP_ATTEMPTS = 20

/** The migration builds a store here, beside the real one (same hash tag); '~' never occurs in an epoch. */
function stagingKeys (prefix: string, id: string, epoch: string): StoreKeys {
  return storeKeys(prefix, id, `${epoch}~migrating`)
}

const NO_LIMITS: StoreLimits = { maxValueBytes: Infinity, maxKeys: Infinity, maxBytes: Infinity }

/**
 * KEYS: a staging store's four keys, then the real store's four. Moves the
 * staging store in place of the real one in one step (one hash tag, one slot),
 * so an instance serving the project sees the old store or the new one, never
 * a mix. When the real store existed (the same epoch), the new revision passes
 * its revision, so a revision in this epoch never goes back. Reply: the revision.
 */
const SWAP_IN = `
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev'))
local old = redis.call('HGET', KEYS[5], 'rev')
if old and tonumber(old) >= rev then
  rev = tonumber(old) + 1
  redis.call('HSET', KEYS[1], 'rev', rev)
end
for i = 1, 4 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 4])
  else
    redis.call('DEL', KEYS[i + 4])
  end
end
return rev
`

/** One project's store as read: its epoch, revision and live records. */
export interface StoreCopy {
  revision: Revision
  entries: Array<[string, KvRecord]>
}

/** What was done for one project. */
export interface ProjectReport {
  id: string
  /** Live keys copied (and found again on the other side). */
  keys: number
  epoch: string
  rev: number
  /** False for a memory-only project: its settings were copied, no records. */
  onDisk: boolean
  /** An existing project of the same id was replaced (--overwrite). */
  replaced: boolean
}

export interface MigrationResult {
  projects: ProjectReport[]
  /** Keys made for projects that had authentication on but no key yet (shown once). */
  generated: GeneratedKey[]
  warnings: string[]
}

export interface MigrationOptions {
  /** The local side: config.json and the folder its storage settings name. */
  config: ConfigStore
  redis: RedisConnection
  prefix: string
  /** Only these projects (default: every project of the source). */
  only?: readonly string[]
  /** Replace projects that exist on the target side. */
  overwrite: boolean
}

/** Why a record read back differs from the one copied, or null when it is the same. */
function difference (expected: KvRecord | undefined, actual: KvRecord): string | null {
  if (expected === undefined) return 'not copied'
  if (JSON.stringify(expected.value) !== JSON.stringify(actual.value)) return 'value differs'
  if ((expected.version ?? 0) !== (actual.version ?? 0)) return `version ${String(actual.version)} instead of ${String(expected.version)}`
  if ((expected.tag ?? '') !== (actual.tag ?? '')) return `tag ${String(actual.tag)} instead of ${String(expected.tag)}`
  const ms = (r: KvRecord): number | null => typeof r.expires_at === 'number' ? Math.round(r.expires_at * 1000) : null
  if (ms(expected) !== ms(actual)) return `expires_at ${String(actual.expires_at)} instead of ${String(expected.expires_at)}`
  if (expected.created_at !== actual.created_at || expected.updated_at !== actual.updated_at) return 'timestamps differ'
  if (expected.type !== actual.type || expected.size_bytes !== actual.size_bytes) return 'type or size differs'
  return null
}

/** A record due this close to the check may be gone on one side and not yet on the other (two clocks). */
const EXPIRY_MARGIN_MS = 5000

/**
 * Compare what the target holds now with what was copied, key by key and by
 * count: every key found must be one copied, identical; every key copied must
 * be found, unless it has expired (or is about to) since it was read.
 */
export function verifyCopy (id: string, copied: ReadonlyArray<[string, KvRecord]>, found: ReadonlyArray<[string, KvRecord]>, nowMs = Date.now()): void {
  const expected = new Map(copied)
  for (const [key, record] of found) {
    const why = difference(expected.get(key), record)
    if (why !== null) throw new MigrationError(`project '${id}': verification failed for key ${JSON.stringify(key)} (${why})`)
  }
  if (found.length === expected.size) return
  const there = new Set(found.map(([key]) => key))
  for (const [key, record] of copied) {
    if (there.has(key)) continue
    if (typeof record.expires_at === 'number' && record.expires_at * 1000 <= nowMs + EXPIRY_MARGIN_MS) continue
    throw new MigrationError(`project '${id}': verification failed: key ${JSON.stringify(key)} is missing (${found.length} keys found, ${expected.size} copied)`)
  }
}

/** Read an on-disk project's store from its files, as start-up does (the folder's lock must be held by the caller). */
export async function readLocalStore (config: ConfigStore, id: string): Promise<StoreCopy & { warnings: string[] }> {
  const { storageDir, durability, journalMaxBytes } = config.settings
  const opened = await Journal.open(storageDir, id, { durability, maxBytes: journalMaxBytes })
  const engine = new LocalEngine(id, opened.data, opened.persistence, { revision: opened.revision })
  try {
    return { revision: await engine.revision(), entries: await engine.entries(), warnings: opened.warnings }
  } finally {
    await engine.close()
  }
}

/** Read a store in Redis; a store that changes while it is read (another instance writing) is read again. */
export async function readRedisStore (redis: RedisConnection, prefix: string, id: string, epoch: string): Promise<StoreCopy> {
  const engine = new RedisEngine(redis, id, epoch, storeKeys(prefix, id, epoch), NO_LIMITS)
  try {
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const before = await engine.revision()
      const entries = await engine.entries()
      const after = await engine.revision()
      if (before.rev === after.rev) return { revision: after, entries }
    }
  } finally {
    await engine.close()
  }
  throw new MigrationError(`project '${id}' kept changing while it was read from Redis; stop writing to it (stop the instances) and try again`)
}

/** The catalog: project id → its entry (raw as stored, and parsed). */
async function readCatalog (redis: RedisConnection, prefix: string): Promise<Map<string, { raw: string, entry: CatalogEntry }>> {
  const all = await redis.call(async () => await redis.client.hgetall(catalogKey(prefix)))
  const out = new Map<string, { raw: string, entry: CatalogEntry }>()
  const ordered = Object.entries(all).map(([id, raw]) => ({ id, raw, entry: JSON.parse(raw) as CatalogEntry }))
  ordered.sort((a, b) => a.entry.created - b.entry.created || (a.id < b.id ? -1 : 1))
  for (const { id, raw, entry } of ordered) out.set(id, { raw, entry })
  return out
}

/** The ids to copy: `only` (each must exist in `available`), else all of them. */
function chosen (available: readonly string[], only: readonly string[] | undefined, where: string): string[] {
  if (only === undefined || only.length === 0) return [...available]
  const missing = only.filter(id => !available.includes(id))
  if (missing.length > 0) throw new MigrationError(`no project ${missing.map(id => `'${id}'`).join(', ')} in ${where}`)
  return [...new Set(only)]
}

async function unlinkStore (redis: RedisConnection, keys: StoreKeys): Promise<void> {
  await redis.call(async () => await redis.client.unlink(...scriptKeys(keys)))
}

/**
 * Copy projects of the local folder (config.json and its store files) into
 * Redis. Each project's store is built under staging keys, verified record by
 * record, moved into place in one step, and only then written to the catalog,
 * so no instance ever serves a half-copied project. A project already in the
 * catalog is refused unless `overwrite`; an overwritten project keeps its
 * place in the listing and its old store (another epoch) is removed once the
 * catalog names the new one. The caller holds the folder's lock.
 */
export async function migrateToRedis (opts: MigrationOptions): Promise<MigrationResult> {
  const { config, redis, prefix, overwrite } = opts
  const projects = config.config.projects ?? []
  const ids = chosen(projects.map(p => p.id), opts.only, config.file ?? 'the config')
  const catalog = catalogKey(prefix)
  const existing = await readCatalog(redis, prefix)
  const taken = ids.filter(id => existing.has(id))
  if (taken.length > 0 && !overwrite) {
    throw new MigrationError(`project ${taken.map(id => `'${id}'`).join(', ')} already exists in Redis (key prefix ${prefix}); nothing was copied. Pass --overwrite to replace it`)
  }
  const result: MigrationResult = { projects: [], generated: [], warnings: [] }
  for (const id of ids) {
    const project = structuredClone(projects.find(p => p.id === id) as ProjectConfig)
    const onDisk = effectiveProject(project).storage.on_disk
    let copy: StoreCopy
    if (onDisk) {
      const read = await readLocalStore(config, id)
      result.warnings.push(...read.warnings.map(w => `project '${id}': ${w}`))
      copy = read
    } else {
      // Nothing of a memory-only store outlives its server: only the settings move, with a new store.
      copy = { revision: { epoch: newEpoch(), rev: 0 }, entries: [] }
    }
    if (needsKey(project.authentication)) {
      const { key, fields } = await newKeyFields(project.authentication)
      project.authentication = { ...project.authentication, ...fields }
      result.generated.push({ scope: 'project', id, key })
    }
    const { epoch } = copy.revision
    const staging = stagingKeys(prefix, id, epoch)
    const target = storeKeys(prefix, id, epoch)
    // Staging keys left by an interrupted migration hold nothing anyone reads.
    await unlinkStore(redis, staging)
    const before = existing.get(id)
    // The entry's version counts on from the one it replaces, and the store carries it from the start:
    // instances that hold the old entry find their requests refused and read the new one.
    const version = (before?.entry.v ?? 0) + 1
    await redis.catalog('skvCreateStore', staging.meta, [epoch, copy.revision.rev, version])
    const store = new RedisEngine(redis, id, epoch, staging, NO_LIMITS)
    try {
      for (let i = 0; i < copy.entries.length; i += LOAD_BATCH) await store.load(copy.revision.rev, copy.entries.slice(i, i + LOAD_BATCH))
      verifyCopy(id, copy.entries, await store.entries())
    } catch (err) {
      await unlinkStore(redis, staging).catch(() => {})
      throw err
    } finally {
      await store.close()
    }
    const rev = Number(await redis.call(async () => await redis.client.eval(SWAP_IN, 8, ...scriptKeys(staging), ...scriptKeys(target))))
    const entry: CatalogEntry = { config: project, epoch, created: before?.entry.created ?? Date.now(), v: version }
    const replaced = await publish(redis, catalog, id, before?.raw ?? null, JSON.stringify(entry), overwrite)
    if (replaced === false) {
      await unlinkStore(redis, target)
      throw new MigrationError(`project '${id}' was created in Redis by someone else while it was being copied; its copy was removed`)
    }
    if (replaced !== null && replaced.epoch !== epoch) await unlinkStore(redis, storeKeys(prefix, id, replaced.epoch))
    const published = await readRedisStore(redis, prefix, id, epoch)
    verifyCopy(id, copy.entries, published.entries)
    result.projects.push({ id, keys: published.entries.length, epoch, rev, onDisk, replaced: replaced !== null })
  }
  // Redis now holds the projects: a first start on it must not seed them again from a config file.
  await redis.call(async () => await redis.client.set(seededKey(prefix), new Date().toISOString(), 'NX'))
  return result
}

/**
 * Write a catalog entry: the project's first, or (overwrite) in place of
 * whatever entry it has now. Returns the entry replaced (null: there was
 * none), or false when the id was taken meanwhile and overwriting is off.
 */
async function publish (redis: RedisConnection, catalog: string, id: string, expected: string | null, text: string, overwrite: boolean): Promise<CatalogEntry | null | false> {
  let current = expected
  for (let attempt = 0; attempt < SWAP_ATTEMPTS; attempt++) {
    if (await redis.catalog('skvCatalogSwap', catalog, [id, current ?? '', text]) === 1) return current === null ? null : JSON.parse(current) as CatalogEntry
    if (!overwrite) return false
    current = await redis.call(async () => await redis.client.hget(catalog, id))
  }
  throw new MigrationError(`the catalog entry of project '${id}' kept changing under ${SWAP_ATTEMPTS} attempts to replace it`)
}

/**
 * Copy projects of Redis into the local folder: each store's files written
 * as compaction writes them (meta with the epoch and revision, then the
 * snapshot), the project added to config.json (its key hash included), then
 * the store opened again from its files and compared. A project config.json
 * lists is refused unless `overwrite`. The caller holds the folder's lock.
 */
export async function migrateToLocal (opts: MigrationOptions): Promise<MigrationResult> {
  const { config, redis, prefix, overwrite } = opts
  const catalog = await readCatalog(redis, prefix)
  const ids = chosen([...catalog.keys()], opts.only, `Redis (key prefix ${prefix})`)
  const listed = ids.filter(id => config.project(id) !== undefined)
  if (listed.length > 0 && !overwrite) {
    throw new MigrationError(`project ${listed.map(id => `'${id}'`).join(', ')} already exists in ${config.file ?? 'the config'}; nothing was copied. Pass --overwrite to replace it`)
  }
  const dir = config.settings.storageDir
  const result: MigrationResult = { projects: [], generated: [], warnings: [] }
  for (const id of ids) {
    const { entry } = catalog.get(id) as { entry: CatalogEntry }
    const project = structuredClone(entry.config)
    const onDisk = effectiveProject(project).storage.on_disk
    const copy = await readRedisStore(redis, prefix, id, entry.epoch)
    const replaced = config.project(id) !== undefined
    let rev = copy.revision.rev
    if (onDisk) {
      // Files of the same epoch already here: the copy's revision passes theirs.
      const old = await readMeta(metaFileName(dir, id))
      if (old !== null && old.epoch === copy.revision.epoch && old.rev >= rev) rev = old.rev + 1
      await removeProjectFiles(dir, id)
      await writeFileAtomic(metaFileName(dir, id), JSON.stringify({ epoch: copy.revision.epoch, rev }) + '\n')
      await writeSnapshotAtomic(storeFileName(dir, id), copy.entries)
    } else if (copy.entries.length > 0) {
      result.warnings.push(`project '${id}' is memory-only (storage.on_disk false): its settings were copied, its ${copy.entries.length} keys were not (a local memory-only store starts empty)`)
    }
    let keys = 0
    if (onDisk) {
      const back = await readLocalStore(config, id)
      if (back.revision.epoch !== copy.revision.epoch || back.revision.rev < rev) {
        throw new MigrationError(`project '${id}': verification failed: the files hold epoch ${back.revision.epoch} revision ${back.revision.rev}, not ${copy.revision.epoch} revision ${rev}`)
      }
      verifyCopy(id, copy.entries, back.entries)
      keys = back.entries.length
    }
    // Listed last: a project whose files did not verify is not served.
    await config.update(draft => {
      draft.projects ??= []
      const at = draft.projects.findIndex(p => p.id === id)
      if (at >= 0) draft.projects[at] = project
      else draft.projects.push(project)
    })
    result.projects.push({ id, keys, epoch: copy.revision.epoch, rev, onDisk, replaced })
  }
  return result
}
