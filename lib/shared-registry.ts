import type { ProjectConfig } from '../schemas/config.js'
import type { ProjectSettings } from '../schemas/project.js'
import { effectiveProject, mergeAuthentication, type ConfigStore, type EffectiveProject, type EffectiveSettings } from './config.js'
import { projectNotFound, StaleProjectError, StorageError } from './errors.js'
import { RedisConnection, redactUrl, type RedisDurability } from './engines/redis/connection.js'
import { ExpiryReclaimer, RedisEngine, type StoreState } from './engines/redis/engine.js'
import { catalogKey, scriptKeys, seededKey, storeKeys } from './engines/redis/layout.js'
import { newEpoch } from './engines/revision.js'
import type { StoreLimits } from './engines/types.js'
import { newKeyFields, ScopeAuth } from './keys.js'
import {
  applyUpdate, needsKey, projectExists, projectFromBody, projectIdFromBody, publicSettings, regenerateRefused, updateFromBody,
  type GeneratedKey, type OpenedRegistry, type Project, type Registry, type StorageReport
} from './registry.js'

/** A project as the catalog in Redis holds it: its settings and key hash, and the epoch of its store. */
export interface CatalogEntry {
  config: ProjectConfig
  /** The store's epoch, which also names its Redis keys. */
  epoch: string
  /** When it was created (epoch ms): the order projects are listed in. */
  created: number
  /**
   * Counts the entry's changes (absent: 0). The store keeps a copy (`cfg` in
   * its meta hash), raised after each change, so a script can refuse a request
   * checked against an older version: a changed key or setting is in force at
   * the next request on every instance, at the cost of no extra round trip.
   */
  v?: number
}

/** How often an instance reads the whole catalog, to count projects and look after the expiry of every store. */
const CATALOG_REFRESH_MS = 5000
/** A compare-and-swap of a catalog entry that lost a race is tried again this many times. */
const SWAP_ATTEMPTS = 20

/**
 * The second step of a change already made (raising cfg, removing a deleted
 * store's keys): tried a few times; if Redis stays away the change stands and
 * the step is left to the instances' catalog refresh and reads.
 */
async function settle (step: () => Promise<void>): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await step()
      return
    } catch {
      await new Promise(resolve => setTimeout(resolve, 100 * (attempt + 1)))
    }
  }
}

function parseCatalogEntry (raw: string): CatalogEntry {
  return JSON.parse(raw) as CatalogEntry
}

/** One project, as of one version of its catalog entry; its store refuses requests once the entry changed. */
class SharedProject implements Project {
  readonly id: string
  readonly settings: EffectiveProject
  readonly auth: ScopeAuth
  readonly store: RedisEngine
  readonly entry: CatalogEntry

  constructor (entry: CatalogEntry, auth: ScopeAuth, store: RedisEngine) {
    this.id = entry.config.id
    this.entry = entry
    this.settings = effectiveProject(entry.config)
    this.auth = auth
    this.store = store
  }
}

function limitsOf (settings: Readonly<EffectiveSettings>): StoreLimits {
  return { maxValueBytes: settings.maxValueBytes, maxKeys: settings.maxKeysPerProject, maxBytes: settings.maxBytesPerProject }
}

/**
 * The registry of the Redis engine: projects, their settings and key hashes
 * live in Redis, shared by every instance. An instance checks a request
 * against the project's entry as it last read it (with its cache of the
 * verified key), and the request's script refuses it ('stale') when the entry
 * changed since: the instance then reads the entry again, checks the request
 * again (a key regenerated elsewhere is refused, a deleted project is gone)
 * and runs it again. So a change made on any instance is in force at the next
 * request everywhere, and a request costs one round trip to Redis. A project
 * this instance has not seen yet is read from the catalog first. Changes are
 * compare-and-swaps of one entry, so two instances changing the same project
 * never lose one another's change. The system key stays in this instance's
 * config.json.
 */
export class SharedRegistry implements Registry {
  readonly shared = true
  readonly config: ConfigStore
  readonly startedAt = Date.now()
  readonly storage: StorageReport
  #systemAuth: ScopeAuth
  readonly #redis: RedisConnection
  readonly #catalog: string
  readonly #prefix: string
  /** The entry last seen for each project (raw, as stored) and the project made from it. */
  readonly #known = new Map<string, { raw: string, project: SharedProject }>()
  /** Per project, its store as this instance looks after it (its epoch, usage and expiry). */
  readonly #stores = new Map<string, { epoch: string, state: StoreState, reclaimer: ExpiryReclaimer }>()
  #refresh: NodeJS.Timeout | null = null
  #closed = false

  private constructor (config: ConfigStore, redis: RedisConnection, durability: RedisDurability) {
    this.config = config
    this.#redis = redis
    this.#prefix = config.settings.redis.keyPrefix
    this.#catalog = catalogKey(this.#prefix)
    this.#systemAuth = new ScopeAuth(config.config.system?.authentication)
    const where = `${redactUrl(config.settings.redis.url)}${config.settings.redis.cluster ? ' (cluster)' : ''}, key prefix ${this.#prefix}`
    this.storage = { engine: 'redis', durability: durability.level, summary: `${where}; ${durability.summary}` }
  }

  /**
   * Connect, check that Redis keeps data (refusing one that may evict keys),
   * seed Redis from config.json's projects once, and open every project.
   */
  static async open (config: ConfigStore): Promise<OpenedRegistry> {
    const redis = await RedisConnection.open(config.settings.redis)
    try {
      const durability = await redis.durability()
      const registry = new SharedRegistry(config, redis, durability)
      const warnings = [...durability.warnings]
      const generated = await registry.#systemKey()
      const configured = config.config.projects ?? []
      // Marked seeded only once every project is in: a start that died half-way is finished by the
      // next one. Each project is created by compare-and-swap, so instances seeding at once create it
      // once, and only the one that created it shows its new key.
      const seeded = await redis.call(async () => await redis.client.get(seededKey(registry.#prefix)))
      if (seeded === null) {
        for (const project of configured) generated.push(...await registry.#seed(project))
        await redis.call(async () => await redis.client.set(seededKey(registry.#prefix), new Date().toISOString(), 'NX'))
      } else if (configured.length > 0) {
        warnings.push(`config.json lists ${configured.length} project(s) (${configured.map(p => p.id).join(', ')}); with the Redis engine projects live in Redis, which holds its own list since it was first seeded, so the list in config.json is ignored`)
      }
      await registry.#refreshAll()
      await Promise.all([...registry.#known.values()].map(async ({ project }) => {
        await registry.#raiseCfg(project.entry)
        await project.store.revision()
      }))
      registry.#scheduleRefresh()
      return { registry, generated, warnings }
    } catch (err) {
      await redis.close()
      throw err
    }
  }

  get systemAuth (): ScopeAuth {
    return this.#systemAuth
  }

  get projectDiscoverable (): boolean {
    return this.config.settings.projectDiscoverable
  }

  get projectCount (): number {
    return this.#known.size
  }

  /** The project as last seen (its store refuses requests once it changed), or read from Redis. */
  resolve (id: string): Project | undefined | Promise<Project | undefined> {
    return this.#known.get(id)?.project ?? this.reload(id)
  }

  /**
   * The project as Redis holds it now. With `repair` (a store refused a request
   * as stale) it also raises the store's copy of the entry's version, in case
   * the instance that changed the entry could not.
   */
  async reload (id: string, repair = false): Promise<Project | undefined> {
    const raw = await this.#redis.call(async () => await this.#redis.client.hget(this.#catalog, id))
    const project = this.#adopt(id, raw)
    if (project !== undefined && repair) await this.#raiseCfg(project.entry)
    return project
  }

  projects (): Iterable<Project> {
    return [...this.#known.values()].map(k => k.project)
  }

  async listProjects (): Promise<Record<string, ProjectSettings>> {
    const all = await this.#refreshAll()
    return Object.fromEntries(all.map(p => [p.id, publicSettings(p.entry.config, false)]))
  }

  async projectDetails (id: string, seen?: Project): Promise<ProjectSettings> {
    const raw = await this.#redis.call(async () => await this.#redis.client.hget(this.#catalog, id))
    const project = this.#adopt(id, raw)
    if (seen !== undefined && project !== seen) throw new StaleProjectError(id)
    if (project === undefined) throw projectNotFound(id)
    return publicSettings(project.entry.config, true)
  }

  async createProject (body: unknown): Promise<string | null> {
    const id = projectIdFromBody(body)
    if (await this.#redis.call(async () => await this.#redis.client.hexists(this.#catalog, id)) === 1) throw projectExists(id)
    const project = projectFromBody(body as Record<string, unknown>, id)
    let key: string | null = null
    if (project.authentication?.enabled === true) {
      const fresh = await newKeyFields(project.authentication)
      key = fresh.key
      Object.assign(project.authentication, fresh.fields)
    }
    const entry: CatalogEntry = { config: project, epoch: newEpoch(), created: Date.now(), v: 1 }
    if (!await this.#create(entry)) throw projectExists(id)
    return key
  }

  async deleteProject (id: string): Promise<void> {
    const removed = await this.#change(id, () => null)
    // The project is deleted once its entry is gone; its store's keys go now (retried, see settle).
    await settle(async () => { await this.#redis.call(async () => await this.#redis.client.unlink(...scriptKeys(storeKeys(this.#prefix, id, removed.epoch)))) })
    this.#adopt(id, null)
  }

  async regenerateKey (id: string): Promise<string> {
    let key = ''
    await this.#change(id, async entry => {
      if (!effectiveProject(entry.config).authentication.enabled) throw regenerateRefused(id)
      const fresh = await newKeyFields(entry.config.authentication)
      key = fresh.key
      return { ...entry, config: { ...entry.config, authentication: { ...entry.config.authentication, ...fresh.fields } } }
    })
    return key
  }

  async updateProject (id: string, body: unknown, seen?: Project): Promise<void> {
    const patch = updateFromBody(body)
    await this.#change(id, entry => ({ ...entry, config: applyUpdate(entry.config, patch) }), seen)
  }

  async close (): Promise<void> {
    this.#closed = true
    if (this.#refresh !== null) clearTimeout(this.#refresh)
    for (const { reclaimer } of this.#stores.values()) reclaimer.stop()
    this.#stores.clear()
    this.#known.clear()
    await this.#redis.close()
  }

  /**
   * Compare-and-swap one catalog entry: `next` gets the current entry and
   * returns its replacement (null removes it), whose version then counts one
   * more and is raised in the store. Returns the entry it replaced. With
   * `seen`: StaleProjectError unless the entry is still the one the request
   * was checked against.
   */
  async #change (id: string, next: (entry: CatalogEntry) => CatalogEntry | null | Promise<CatalogEntry | null>, seen?: Project): Promise<CatalogEntry> {
    for (let attempt = 0; attempt < SWAP_ATTEMPTS; attempt++) {
      const raw = await this.#redis.call(async () => await this.#redis.client.hget(this.#catalog, id))
      const current = this.#adopt(id, raw)
      if (seen !== undefined && current !== seen) throw new StaleProjectError(id)
      if (raw === null) throw projectNotFound(id)
      const entry = parseCatalogEntry(raw)
      const replacement = await next(entry)
      if (replacement !== null) replacement.v = (entry.v ?? 0) + 1
      const text = replacement === null ? '' : JSON.stringify(replacement)
      if (await this.#redis.catalog('skvCatalogSwap', this.#catalog, [id, raw, text]) === 1) {
        this.#adopt(id, replacement === null ? null : text)
        // The change is made: the client gets its answer (its new key) even if Redis fails now; an
        // instance that reads the entry raises cfg too, and every instance reads it within CATALOG_REFRESH_MS.
        if (replacement !== null) await settle(async () => { await this.#raiseCfg(replacement) })
        return entry
      }
    }
    throw new StorageError(`The settings of project '${id}' kept changing under ${SWAP_ATTEMPTS} attempts to change them`)
  }

  /** Make the project's store, then claim its id in the catalog; false (and the store removed) when the id was taken. */
  async #create (entry: CatalogEntry): Promise<boolean> {
    const keys = storeKeys(this.#prefix, entry.config.id, entry.epoch)
    await this.#redis.catalog('skvCreateStore', keys.meta, [entry.epoch, 0, entry.v ?? 0])
    const text = JSON.stringify(entry)
    if (await this.#redis.catalog('skvCatalogSwap', this.#catalog, [entry.config.id, '', text]) !== 1) {
      await this.#redis.call(async () => await this.#redis.client.unlink(...scriptKeys(keys)))
      return false
    }
    this.#adopt(entry.config.id, text)
    return true
  }

  /** A project of config.json copied into a Redis never seeded before; its key is made here when it has none. */
  async #seed (project: ProjectConfig): Promise<GeneratedKey[]> {
    const config = structuredClone(project)
    const generated: GeneratedKey[] = []
    if (needsKey(config.authentication)) {
      const { key, fields } = await newKeyFields(config.authentication)
      config.authentication = { ...config.authentication, ...fields }
      generated.push({ scope: 'project', id: config.id, key })
    }
    return await this.#create({ config, epoch: newEpoch(), created: Date.now(), v: 1 }) ? generated : []
  }

  /** The system scope is this instance's own: its key lives in config.json, as with the local engine. */
  async #systemKey (): Promise<GeneratedKey[]> {
    const auth = this.config.config.system?.authentication
    if (!needsKey(auth)) return []
    const { key, fields } = await newKeyFields(auth)
    await this.config.update(c => { mergeAuthentication(c, null, fields) })
    this.#systemAuth = new ScopeAuth(this.config.config.system?.authentication)
    return [{ scope: 'system', id: 'system', key }]
  }

  /** The store's copy of the entry's version, raised to it (never lowered). */
  async #raiseCfg (entry: CatalogEntry): Promise<void> {
    await this.#redis.catalog('skvRaiseCfg', storeKeys(this.#prefix, entry.config.id, entry.epoch).meta, [entry.v ?? 0])
  }

  /** The project for the entry `raw` just read (null: there is none), reusing what is unchanged. */
  #adopt (id: string, raw: string | null): SharedProject | undefined {
    const known = this.#known.get(id)
    if (raw === null) {
      this.#known.delete(id)
      this.#forgetStore(id)
      return undefined
    }
    if (known !== undefined && known.raw === raw) return known.project
    const entry = parseCatalogEntry(raw)
    const sameAuth = known !== undefined && JSON.stringify(known.project.entry.config.authentication) === JSON.stringify(entry.config.authentication)
    const auth = sameAuth ? known.project.auth : new ScopeAuth(entry.config.authentication)
    const keys = storeKeys(this.#prefix, id, entry.epoch)
    let store = this.#stores.get(id)
    if (store?.epoch !== entry.epoch) {
      this.#forgetStore(id)
      const state: StoreState = { usage: { keys: 0, valueBytes: 0, bytesOnDisk: 0 } }
      store = { epoch: entry.epoch, state, reclaimer: new ExpiryReclaimer(this.#redis, keys, state) }
      this.#stores.set(id, store)
    }
    const engine = new RedisEngine(this.#redis, id, entry.epoch, keys, limitsOf(this.config.settings), { guard: String(entry.v ?? 0), state: store.state })
    const project = new SharedProject(entry, auth, engine)
    this.#known.set(id, { raw, project })
    return project
  }

  #forgetStore (id: string): void {
    this.#stores.get(id)?.reclaimer.stop()
    this.#stores.delete(id)
  }

  /** Read the whole catalog: every project, in the order they were created. */
  async #refreshAll (): Promise<SharedProject[]> {
    const all = await this.#redis.call(async () => await this.#redis.client.hgetall(this.#catalog))
    for (const id of [...this.#known.keys()]) if (!Object.hasOwn(all, id)) this.#adopt(id, null)
    const projects = Object.entries(all).map(([id, raw]) => this.#adopt(id, raw) as SharedProject)
    return projects.sort((a, b) => a.entry.created - b.entry.created || (a.id < b.id ? -1 : 1))
  }

  #scheduleRefresh (): void {
    if (this.#closed) return
    this.#refresh = setTimeout(() => {
      this.#refreshAll().catch(() => {}).finally(() => { this.#scheduleRefresh() })
    }, CATALOG_REFRESH_MS)
    this.#refresh.unref()
  }
}
