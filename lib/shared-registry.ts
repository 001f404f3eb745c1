import type { ProjectConfig } from '../schemas/config.js'
import type { ProjectSettings } from '../schemas/project.js'
import { effectiveProject, mergeAuthentication, type ConfigStore, type EffectiveProject, type EffectiveSettings } from './config.js'
import { projectNotFound, StorageError } from './errors.js'
import { RedisConnection, redactUrl, type RedisDurability } from './engines/redis/connection.js'
import { RedisEngine } from './engines/redis/engine.js'
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
}

/** How often an instance reads the whole catalog, to count projects and look after the expiry of every store. */
const CATALOG_REFRESH_MS = 5000
/** A compare-and-swap of a catalog entry that lost a race is tried again this many times. */
const SWAP_ATTEMPTS = 20

function parseEntry (raw: string): CatalogEntry {
  return JSON.parse(raw) as CatalogEntry
}

/** One project, as of one version of its catalog entry. */
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
 * live in Redis, shared by every instance. A request reads its project's
 * catalog entry from Redis (one HGET) before anything else, so a project
 * created, changed, deleted or given a new key on another instance is in
 * force here at the next request; the key check of the entry seen is kept
 * (with its cache of the verified key) only while that entry is unchanged.
 * Changes are compare-and-swaps of one entry, so two instances changing the
 * same project never lose one another's change. The system key stays in this
 * instance's config.json.
 */
export class SharedRegistry implements Registry {
  readonly config: ConfigStore
  readonly startedAt = Date.now()
  readonly storage: StorageReport
  #systemAuth: ScopeAuth
  readonly #redis: RedisConnection
  readonly #catalog: string
  readonly #prefix: string
  /** The entry last seen for each project (raw, as stored) and the project made from it. */
  readonly #known = new Map<string, { raw: string, project: SharedProject }>()
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
      const first = await redis.call(async () => await redis.client.set(seededKey(registry.#prefix), new Date().toISOString(), 'NX'))
      if (first === 'OK') {
        for (const project of configured) generated.push(...await registry.#seed(project))
      } else if (configured.length > 0) {
        warnings.push(`config.json lists ${configured.length} project(s) (${configured.map(p => p.id).join(', ')}); with the Redis engine projects live in Redis, which holds its own list since it was first seeded, so the list in config.json is ignored`)
      }
      await registry.#refreshAll()
      await Promise.all([...registry.#known.values()].map(async ({ project }) => await project.store.revision()))
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

  async resolve (id: string): Promise<Project | undefined> {
    const raw = await this.#redis.call(async () => await this.#redis.client.hget(this.#catalog, id))
    return this.#adopt(id, raw)
  }

  projects (): Iterable<Project> {
    return [...this.#known.values()].map(k => k.project)
  }

  async listProjects (): Promise<Record<string, ProjectSettings>> {
    const all = await this.#refreshAll()
    return Object.fromEntries(all.map(p => [p.id, publicSettings(p.entry.config, false)]))
  }

  async projectDetails (id: string): Promise<ProjectSettings> {
    const project = await this.resolve(id) as SharedProject | undefined
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
    const entry: CatalogEntry = { config: project, epoch: newEpoch(), created: Date.now() }
    if (!await this.#create(entry)) throw projectExists(id)
    return key
  }

  async deleteProject (id: string): Promise<void> {
    const removed = await this.#change(id, () => null)
    await this.#redis.call(async () => await this.#redis.client.unlink(...scriptKeys(storeKeys(this.#prefix, id, removed.epoch))))
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

  async updateProject (id: string, body: unknown): Promise<void> {
    const patch = updateFromBody(body)
    await this.#change(id, entry => ({ ...entry, config: applyUpdate(entry.config, patch) }))
  }

  async close (): Promise<void> {
    this.#closed = true
    if (this.#refresh !== null) clearTimeout(this.#refresh)
    await Promise.all([...this.#known.values()].map(async k => { await k.project.store.close() }))
    this.#known.clear()
    await this.#redis.close()
  }

  /**
   * Compare-and-swap one catalog entry: `next` gets the current entry and
   * returns its replacement (null removes it). Returns the entry it replaced.
   */
  async #change (id: string, next: (entry: CatalogEntry) => CatalogEntry | null | Promise<CatalogEntry | null>): Promise<CatalogEntry> {
    for (let attempt = 0; attempt < SWAP_ATTEMPTS; attempt++) {
      const raw = await this.#redis.call(async () => await this.#redis.client.hget(this.#catalog, id))
      if (raw === null) {
        this.#adopt(id, null)
        throw projectNotFound(id)
      }
      const entry = parseEntry(raw)
      const replacement = await next(entry)
      const text = replacement === null ? '' : JSON.stringify(replacement)
      if (await this.#redis.catalog('skvCatalogSwap', this.#catalog, [id, raw, text]) === 1) {
        this.#adopt(id, replacement === null ? null : text)
        return entry
      }
    }
    throw new StorageError(`The settings of project '${id}' kept changing under ${SWAP_ATTEMPTS} attempts to change them`)
  }

  /** Make the project's store, then claim its id in the catalog; false (and the store removed) when the id was taken. */
  async #create (entry: CatalogEntry): Promise<boolean> {
    const keys = storeKeys(this.#prefix, entry.config.id, entry.epoch)
    await this.#redis.catalog('skvCreateStore', keys.meta, [entry.epoch, 0])
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
    return await this.#create({ config, epoch: newEpoch(), created: Date.now() }) ? generated : []
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

  /** The project for the entry `raw` just read (null: there is none), reusing what is unchanged. */
  #adopt (id: string, raw: string | null): SharedProject | undefined {
    const known = this.#known.get(id)
    if (raw === null) {
      if (known !== undefined) {
        this.#known.delete(id)
        void known.project.store.close()
      }
      return undefined
    }
    if (known !== undefined && known.raw === raw) return known.project
    const entry = parseEntry(raw)
    const sameAuth = known !== undefined && JSON.stringify(known.project.entry.config.authentication) === JSON.stringify(entry.config.authentication)
    const auth = sameAuth ? known.project.auth : new ScopeAuth(entry.config.authentication)
    let store: RedisEngine
    if (known !== undefined && known.project.store.epoch === entry.epoch) {
      store = known.project.store
    } else {
      if (known !== undefined) void known.project.store.close()
      store = new RedisEngine(this.#redis, id, entry.epoch, storeKeys(this.#prefix, id, entry.epoch), limitsOf(this.config.settings))
    }
    const project = new SharedProject(entry, auth, store)
    this.#known.set(id, { raw, project })
    return project
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
