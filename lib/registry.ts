import { Mutex } from 'async-mutex'
import { Type } from '@sinclair/typebox'
import {
  AuthenticationSchema, ProjectSecuritySchema, ProjectStorageSchema, PROJECT_ID_RULE,
  defaultProject, isValidProjectId, mergeAuthentication, type AuthenticationConfig, type ConfigStore, type ProjectConfig
} from './config.js'
import { KvError } from './errors.js'
import { memoryOnly, type Persistence } from './engines/local/changes.js'
import { Journal, type JournalOptions } from './engines/local/journal.js'
import { ProjectStore, type StoreLimits } from './engines/project-store.js'
import { newKeyFields, ScopeAuth } from './keys.js'
import { DirLock } from './lock.js'
import type { SystemInfo } from './sysinfo.js'
import { firstError } from './validation.js'
import { VERSION } from './version.js'

export const BODY_NOT_JSON = 'Request body must be valid JSON (Content-Type: application/json)'

export const CreateProjectSchema = Type.Object({
  id: Type.String({ description: 'New project id: 1 to 64 of A-Z a-z 0-9 _ -.', examples: ['my_app'] }),
  storage: Type.Optional(ProjectStorageSchema),
  authentication: Type.Optional(Type.Omit(AuthenticationSchema, ['api_key', 'api_key_hash'], { additionalProperties: false })),
  security: Type.Optional(ProjectSecuritySchema)
}, { additionalProperties: false, description: 'Settings of the new project; omitted settings take the defaults.' })

export const UpdateProjectSchema = Type.Object({
  storage: Type.Optional(ProjectStorageSchema),
  security: Type.Optional(ProjectSecuritySchema)
}, { additionalProperties: false, description: 'Settings to merge into the project config.' })

/** A generated key, to show once. */
export interface GeneratedKey {
  scope: 'system' | 'project'
  id: string
  key: string
}

export interface Project {
  readonly id: string
  readonly config: ProjectConfig
  readonly auth: ScopeAuth
  readonly store: ProjectStore
  readonly discoverable: boolean
}

/** The registry's record of one project; handed out as a read-only Project. */
class ProjectEntry implements Project {
  readonly id: string
  auth: ScopeAuth
  readonly store: ProjectStore
  readonly #config: ConfigStore

  constructor (id: string, auth: ScopeAuth, store: ProjectStore, config: ConfigStore) {
    this.id = id
    this.auth = auth
    this.store = store
    this.#config = config
  }

  /** The project's settings; bare (all defaults) in the instant between a delete's config write and its removal here. */
  get config (): ProjectConfig {
    return this.#config.project(this.id) ?? { id: this.id }
  }

  get discoverable (): boolean {
    return this.config.security?.keys_and_values_discoverable ?? true
  }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** A project's settings as the API shows them: defaults filled in, no key or hash. */
export interface PublicProjectSettings {
  id?: string
  storage: { on_disk: boolean, cache_in_memory?: boolean }
  authentication: { enabled: boolean, save_api_key_to_config: boolean }
  security: { keys_and_values_discoverable: boolean }
}

export function publicSettings (project: ProjectConfig, withId: boolean): PublicProjectSettings {
  const storage: PublicProjectSettings['storage'] = { on_disk: project.storage?.on_disk ?? true }
  if (project.storage?.cache_in_memory !== undefined) storage.cache_in_memory = project.storage.cache_in_memory
  const out: PublicProjectSettings = {
    storage,
    authentication: {
      enabled: project.authentication?.enabled ?? true,
      save_api_key_to_config: project.authentication?.save_api_key_to_config ?? false
    },
    security: { keys_and_values_discoverable: project.security?.keys_and_values_discoverable ?? true }
  }
  return withId ? { id: project.id, ...out } : out
}

/** A project's stored settings over the defaults. */
export function effectiveProject (project: ProjectConfig): ProjectConfig {
  const d = defaultProject(project.id)
  return {
    id: project.id,
    storage: { ...d.storage, ...project.storage },
    authentication: { ...d.authentication, ...project.authentication },
    security: { ...d.security, ...project.security }
  }
}

function needsKey (auth: AuthenticationConfig | undefined): boolean {
  return (auth?.enabled ?? true) && typeof auth?.api_key !== 'string' && typeof auth?.api_key_hash !== 'string'
}

/** What the registry reports as it runs, for the host to log. */
export interface RegistryEvents {
  /** A background compaction of a project failed (`failures` in a row); its journals keep every change. */
  onCompactionError?: (projectId: string, err: unknown, failures: number) => void
}

/**
 * Every project the server holds, with its store and key check, and the
 * system scope. The only way routes change projects or the config.
 */
export class Registry {
  readonly config: ConfigStore
  readonly startedAt = Date.now()
  #systemAuth: ScopeAuth
  readonly #projects = new Map<string, ProjectEntry>()
  readonly #mutex = new Mutex()
  #lock: DirLock | null = null
  readonly #events: RegistryEvents

  private constructor (config: ConfigStore, events: RegistryEvents) {
    this.config = config
    this.#events = events
    this.#systemAuth = new ScopeAuth(config.config.system?.authentication)
  }

  /**
   * Take the storage folder's lock, load every project's store and give a key
   * to every enabled scope that has none. Throws (and writes nothing) when
   * another process holds the folder or a store file cannot be read.
   * `warnings` lists what recovery dropped (a torn last journal line), to log.
   */
  static async open (config: ConfigStore, events: RegistryEvents = {}): Promise<{ registry: Registry, generated: GeneratedKey[], warnings: string[] }> {
    const registry = new Registry(config, events)
    const warnings: string[] = []
    registry.#lock = await DirLock.acquire(registry.storageDir)
    try {
      for (const project of config.config.projects ?? []) {
        registry.#projects.set(project.id, new ProjectEntry(project.id, new ScopeAuth(project.authentication), await registry.#openStore(project, warnings), config))
      }
      const generated = await registry.#generateMissingKeys()
      return { registry, generated, warnings }
    } catch (err) {
      await registry.close()
      throw err
    }
  }

  get storageDir (): string {
    return this.config.settings.storageDir
  }

  get systemAuth (): ScopeAuth {
    return this.#systemAuth
  }

  get projectDiscoverable (): boolean {
    return this.config.settings.projectDiscoverable
  }

  get projectCount (): number {
    return this.#projects.size
  }

  project (id: string): Project | undefined {
    return this.#projects.get(id)
  }

  /** Every project's settings, keyed by id, without ids or secrets. */
  listProjects (): Record<string, PublicProjectSettings> {
    // fromEntries defines own properties, so an id like __proto__ stays an ordinary key.
    return Object.fromEntries((this.config.config.projects ?? []).map(p => [p.id, publicSettings(p, false)]))
  }

  projectDetails (id: string): PublicProjectSettings {
    const config = this.config.project(id)
    if (config === undefined) throw notFound(id)
    return publicSettings(config, true)
  }

  systemInfo (): SystemInfo {
    let storage = 0
    for (const entry of this.#projects.values()) storage += entry.store.bytesOnDisk
    return {
      memory_usage_bytes: process.memoryUsage.rss(),
      number_of_projects: this.#projects.size,
      storage_usage_bytes: storage,
      uptime: Math.floor((Date.now() - this.startedAt) / 1000),
      version: VERSION
    }
  }

  /**
   * Create a project from a request body, checking in the contract's order.
   * Returns the new key, or null when the project's authentication is off.
   */
  async createProject (body: unknown): Promise<string | null> {
    if (!isPlainObject(body)) throw new KvError(400, BODY_NOT_JSON)
    if (!Object.hasOwn(body, 'id')) throw new KvError(400, "Project 'id' is required in the request body")
    const id = body.id
    if (typeof id !== 'string' || !isValidProjectId(id)) throw new KvError(400, PROJECT_ID_RULE)
    return await this.#mutex.runExclusive(async () => {
      if (this.config.project(id) !== undefined) throw new KvError(400, `Project with ID '${id}' already exists in configuration.`)
      const input = structuredClone(body)
      if (isPlainObject(input.authentication)) {
        delete input.authentication.api_key
        delete input.authentication.api_key_hash
      }
      const problem = firstError(CreateProjectSchema, input)
      if (problem !== null) throw new KvError(400, problem)
      const project = effectiveProject(input as ProjectConfig)
      project.authentication = { ...project.authentication, api_key: null, api_key_hash: null }
      let key: string | null = null
      if (project.authentication.enabled === true) {
        const fresh = await newKeyFields(project.authentication)
        key = fresh.key
        Object.assign(project.authentication, fresh.fields)
      }
      const store = await this.#openStore(project, [])
      try {
        await this.config.update(c => { (c.projects ??= []).push(project) })
      } catch (err) {
        await store.close()
        throw err
      }
      this.#projects.set(id, new ProjectEntry(id, new ScopeAuth(project.authentication), store, this.config))
      return key
    })
  }

  /** Remove a project, its config and its files. Writes in flight finish or fail first. */
  async deleteProject (id: string): Promise<void> {
    await this.#mutex.runExclusive(async () => {
      const entry = this.#projects.get(id)
      if (entry === undefined) throw notFound(id)
      await this.config.update(c => { c.projects = (c.projects ?? []).filter(p => p.id !== id) })
      this.#projects.delete(id)
      await entry.store.destroy()
    })
  }

  /** Give a project a new key; the old one stops working at once. */
  async regenerateKey (id: string): Promise<string> {
    return await this.#mutex.runExclusive(async () => {
      const entry = this.#projects.get(id)
      const config = this.config.project(id)
      if (entry === undefined || config === undefined) throw notFound(id)
      if ((config.authentication?.enabled ?? true) === false) {
        throw new KvError(409, `Failed to regenerate API key for the project (authentication may be disabled for \`${id}\`)`)
      }
      const { key, fields } = await newKeyFields(config.authentication)
      await this.config.update(c => { mergeAuthentication(c, id, fields) })
      entry.auth = new ScopeAuth(this.config.project(id)?.authentication)
      return key
    })
  }

  /** Merge settings into a project; storage.on_disk takes effect at once. */
  async updateProject (id: string, body: unknown): Promise<void> {
    if (!isPlainObject(body)) throw new KvError(400, BODY_NOT_JSON)
    if (Object.hasOwn(body, 'authentication')) {
      throw new KvError(400, 'Updating authentication settings via this route is not allowed. Use the regenerate API key route instead.')
    }
    if (Object.hasOwn(body, 'id')) throw new KvError(400, 'Updating project ID via this route is not allowed.')
    const problem = firstError(UpdateProjectSchema, body)
    if (problem !== null) throw new KvError(400, problem)
    const patch = body as { storage?: ProjectConfig['storage'], security?: ProjectConfig['security'] }
    await this.#mutex.runExclusive(async () => {
      const entry = this.#projects.get(id)
      const before = this.config.project(id)
      if (entry === undefined || before === undefined) throw notFound(id)
      const wasOnDisk = before.storage?.on_disk ?? true
      const onDisk = patch.storage?.on_disk ?? wasOnDisk
      if (onDisk !== wasOnDisk) await entry.store.setPersistence(await this.#persistenceFor(id, onDisk))
      try {
        await this.config.update(c => {
          const p = c.projects?.find(p => p.id === id) as ProjectConfig
          if (patch.storage !== undefined) p.storage = { ...p.storage, ...patch.storage }
          if (patch.security !== undefined) p.security = { ...p.security, ...patch.security }
        })
      } catch (err) {
        if (onDisk !== wasOnDisk) await entry.store.setPersistence(await this.#persistenceFor(id, wasOnDisk))
        throw err
      }
    })
  }

  /** Fold every store into its snapshot, close it, then give the storage folder up. */
  async close (): Promise<void> {
    try {
      await Promise.all([...this.#projects.values()].map(async e => { await e.store.close() }))
    } finally {
      await this.#lock?.release()
      this.#lock = null
    }
  }

  #journalOptions (id: string): JournalOptions {
    const { durability, journalMaxBytes } = this.config.settings
    const report = this.#events.onCompactionError
    return {
      durability,
      maxBytes: journalMaxBytes,
      onCompactionError: report === undefined ? undefined : (err, failures) => { report(id, err, failures) }
    }
  }

  get #limits (): StoreLimits {
    const { maxValueBytes, maxKeysPerProject, maxBytesPerProject } = this.config.settings
    return { maxValueBytes, maxKeys: maxKeysPerProject, maxBytes: maxBytesPerProject }
  }

  async #openStore (project: ProjectConfig, warnings: string[]): Promise<ProjectStore> {
    if ((project.storage?.on_disk ?? true) === false) return new ProjectStore(project.id, new Map(), memoryOnly, this.#limits)
    const opened = await Journal.open(this.storageDir, project.id, this.#journalOptions(project.id))
    warnings.push(...opened.warnings)
    return new ProjectStore(project.id, opened.data, opened.persistence, this.#limits)
  }

  async #persistenceFor (id: string, onDisk: boolean): Promise<Persistence> {
    return onDisk ? await Journal.create(this.storageDir, id, this.#journalOptions(id)) : memoryOnly
  }

  async #generateMissingKeys (): Promise<GeneratedKey[]> {
    const config = this.config.config
    const generated: GeneratedKey[] = []
    const updates: Array<{ id: string | null, fields: AuthenticationConfig }> = []
    if (needsKey(config.system?.authentication)) {
      const { key, fields } = await newKeyFields(config.system?.authentication)
      generated.push({ scope: 'system', id: 'system', key })
      updates.push({ id: null, fields })
    }
    for (const project of config.projects ?? []) {
      if (!needsKey(project.authentication)) continue
      const { key, fields } = await newKeyFields(project.authentication)
      generated.push({ scope: 'project', id: project.id, key })
      updates.push({ id: project.id, fields })
    }
    if (updates.length === 0) return generated
    await this.config.update(c => {
      for (const { id, fields } of updates) mergeAuthentication(c, id, fields)
    })
    this.#systemAuth = new ScopeAuth(this.config.config.system?.authentication)
    for (const { id } of updates) {
      const entry = id === null ? undefined : this.#projects.get(id)
      if (entry !== undefined) entry.auth = new ScopeAuth(this.config.project(id as string)?.authentication)
    }
    return generated
  }
}

export function notFound (id: string): KvError {
  return new KvError(404, `Project with id '${id}' not found`)
}
