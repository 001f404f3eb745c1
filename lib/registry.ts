import { Mutex } from 'async-mutex'
import type { AuthenticationConfig, ProjectConfig } from '../schemas/config.js'
import { CreateProjectSchema, UpdateProjectSchema, type ProjectSettings, type UpdateProject } from '../schemas/project.js'
import { PROJECT_ID_RULE } from '../schemas/config.js'
import {
  defaultProject, effectiveAuthentication, effectiveProject, isValidProjectId, mergeAuthentication,
  type ConfigStore, type EffectiveProject
} from './config.js'
import { ConflictError, InvalidInputError, projectNotFound } from './errors.js'
import { openBackend } from './engines/open.js'
import type { KvEngine, StorageBackend, StorageEvents } from './engines/types.js'
import { newKeyFields, ScopeAuth } from './keys.js'
import { firstError } from './validation.js'

export const BODY_NOT_JSON = 'Request body must be valid JSON (Content-Type: application/json)'

/** A generated key, to show once. */
export interface GeneratedKey {
  scope: 'system' | 'project'
  id: string
  key: string
}

/** One project as routes see it: its settings, its key check and its store. */
export interface Project {
  readonly id: string
  /** The project's settings with the defaults filled in. */
  readonly settings: EffectiveProject
  readonly auth: ScopeAuth
  readonly store: KvEngine
}

/** The registry's record of one project; handed out as a read-only Project. */
class ProjectEntry implements Project {
  readonly id: string
  auth: ScopeAuth
  readonly store: KvEngine
  readonly #config: ConfigStore

  constructor (id: string, auth: ScopeAuth, store: KvEngine, config: ConfigStore) {
    this.id = id
    this.auth = auth
    this.store = store
    this.#config = config
  }

  /** The settings as of `#seen`: every request reads them, the config changes rarely. */
  #settings: EffectiveProject | null = null
  #seen: object | null = null

  /** Bare (all defaults) in the instant between a delete's config write and its removal here. */
  get settings (): EffectiveProject {
    // Every change of the config replaces its object, so the same object means the same settings.
    const config = this.#config.config
    if (this.#settings === null || this.#seen !== config) {
      this.#settings = effectiveProject(this.#config.project(this.id) ?? { id: this.id })
      this.#seen = config
    }
    return this.#settings
  }
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** A project's settings as the API shows them: defaults filled in, no key or hash. */
export function publicSettings (project: ProjectConfig, withId: boolean): ProjectSettings {
  const { storage, authentication, security } = effectiveProject(project)
  const out: ProjectSettings = {
    storage: { on_disk: storage.on_disk },
    authentication: { enabled: authentication.enabled, save_api_key_to_config: authentication.save_api_key_to_config },
    security: { keys_and_values_discoverable: security.keys_and_values_discoverable }
  }
  // Shown once set, so a 1.0 client sees exactly the settings it knows.
  if (project.security?.require_conditional_writes !== undefined) out.security.require_conditional_writes = security.require_conditional_writes
  if (storage.cache_in_memory !== undefined) out.storage.cache_in_memory = storage.cache_in_memory
  return withId ? { id: project.id, ...out } : out
}

export function needsKey (auth: AuthenticationConfig | undefined): boolean {
  const { enabled, api_key: key, api_key_hash: hash } = effectiveAuthentication(auth)
  return enabled && typeof key !== 'string' && typeof hash !== 'string'
}

/** What the storage promises for an acknowledged write, for the banner and the status answer. */
export interface StorageReport {
  /** 'local' or 'redis'. */
  engine: string
  /** always, everysec, no (and for Redis: none, unknown). */
  durability: string
  /** One line on where the data is and how durable it is. */
  summary: string
}

/**
 * The projects the server holds, each with its store and key check, and the
 * system scope: their lifecycle (create, change, delete, close). Routes and
 * hooks change projects only through here. The local registry keeps projects
 * in config.json; the shared one (the Redis engine) in Redis, for every
 * instance alike.
 */
export interface Registry {
  readonly config: ConfigStore
  readonly startedAt: number
  readonly storage: StorageReport
  /**
   * Projects live outside this process (Redis) and may change under it: a
   * project `resolve` answers at once is as this instance last saw it, and a
   * refusal decided on it is confirmed with `reload` first.
   */
  readonly shared: boolean
  readonly systemAuth: ScopeAuth
  readonly projectDiscoverable: boolean
  /** Projects as last known (the shared registry counts them now and then). */
  readonly projectCount: number
  /**
   * The project with this id, or undefined: at once when the answer is in this
   * process, as a promise when it must be asked of the storage server (the
   * shared registry asks on every request, so a change on another instance is
   * in force at the next request here).
   */
  resolve: (id: string) => Project | undefined | Promise<Project | undefined>
  /**
   * The project as the storage holds it now, after a store refused a request
   * with StaleProjectError (the project changed since the request was checked).
   */
  reload: (id: string, repair?: boolean) => Promise<Project | undefined>
  /** The projects this instance has open (every project, for the local registry). */
  projects: () => Iterable<Project>
  /** Every project's settings, keyed by id, without ids or secrets. */
  listProjects: () => Promise<Record<string, ProjectSettings>>
  /** `seen`: the project the request was checked against; StaleProjectError when it changed since. */
  projectDetails: (id: string, seen?: Project) => Promise<ProjectSettings>
  /** Create a project from a request body; returns its new key, or null when its authentication is off. */
  createProject: (body: unknown) => Promise<string | null>
  /** Remove a project, its settings and its data. */
  deleteProject: (id: string) => Promise<void>
  /** Give a project a new key; the old one stops working at once. */
  regenerateKey: (id: string) => Promise<string>
  /** Merge settings into a project. */
  updateProject: (id: string, body: unknown, seen?: Project) => Promise<void>
  close: () => Promise<void>
}

export interface OpenedRegistry {
  registry: Registry
  generated: GeneratedKey[]
  /** What recovery dropped or the storage server warns of, to log. */
  warnings: string[]
}

/** Open the registry the settings choose: local (config.json and files) or shared (Redis). */
export async function openRegistry (config: ConfigStore, events: StorageEvents = {}): Promise<OpenedRegistry> {
  if (config.settings.engine === 'redis') {
    // Loaded only when used, so the local engine's start pays nothing for the Redis client.
    const { SharedRegistry } = await import('./shared-registry.js')
    return await SharedRegistry.open(config)
  }
  return await LocalRegistry.open(config, events)
}

/** The id of a create body, checked first in the contract's order (then comes the duplicate check, then projectFromBody). */
export function projectIdFromBody (body: unknown): string {
  if (!isPlainObject(body)) throw new InvalidInputError(BODY_NOT_JSON)
  if (!Object.hasOwn(body, 'id')) throw new InvalidInputError("Project 'id' is required in the request body")
  const id = body.id
  if (typeof id !== 'string' || !isValidProjectId(id)) throw new InvalidInputError(PROJECT_ID_RULE)
  return id
}

/** A create body whose id passed projectIdFromBody, as the project to store (without a key yet). */
export function projectFromBody (body: Record<string, unknown>, id: string): ProjectConfig {
  const input = structuredClone(body)
  if (isPlainObject(input.authentication)) {
    delete input.authentication.api_key
    delete input.authentication.api_key_hash
  }
  const problem = firstError(CreateProjectSchema, input)
  if (problem !== null) throw new InvalidInputError(problem)
  const given = input as ProjectConfig
  const defaults = defaultProject(id)
  return {
    id,
    storage: { ...defaults.storage, ...given.storage },
    authentication: { ...defaults.authentication, ...given.authentication, api_key: null, api_key_hash: null },
    security: { ...defaults.security, ...given.security }
  }
}

/** An update body checked in the contract's order. */
export function updateFromBody (body: unknown): UpdateProject {
  if (!isPlainObject(body)) throw new InvalidInputError(BODY_NOT_JSON)
  if (Object.hasOwn(body, 'authentication')) {
    throw new InvalidInputError('Updating authentication settings via this route is not allowed. Use the regenerate API key route instead.')
  }
  if (Object.hasOwn(body, 'id')) throw new InvalidInputError('Updating project ID via this route is not allowed.')
  const problem = firstError(UpdateProjectSchema, body)
  if (problem !== null) throw new InvalidInputError(problem)
  return body as UpdateProject
}

/** A project's config with an update merged in. */
export function applyUpdate (project: ProjectConfig, patch: UpdateProject): ProjectConfig {
  const next = structuredClone(project)
  if (patch.storage !== undefined) next.storage = { ...next.storage, ...patch.storage }
  if (patch.security !== undefined) next.security = { ...next.security, ...patch.security }
  return next
}

export function projectExists (id: string): InvalidInputError {
  return new InvalidInputError(`Project with ID '${id}' already exists in configuration.`)
}

export function regenerateRefused (id: string): ConflictError {
  return new ConflictError(`Failed to regenerate API key for the project (authentication may be disabled for \`${id}\`)`)
}

/** The registry of the local engine: projects in config.json, stores in this process. */
export class LocalRegistry implements Registry {
  readonly shared = false
  readonly config: ConfigStore
  readonly startedAt = Date.now()
  #systemAuth: ScopeAuth
  readonly #projects = new Map<string, ProjectEntry>()
  readonly #mutex = new Mutex()
  readonly #backend: StorageBackend

  private constructor (config: ConfigStore, backend: StorageBackend) {
    this.config = config
    this.#backend = backend
    this.#systemAuth = new ScopeAuth(config.config.system?.authentication)
  }

  /**
   * Open the storage, load every project's store and give a key to every
   * enabled scope that has none. Throws (and writes nothing) when the storage
   * is held by another process or a store cannot be read. `warnings` lists
   * what recovery dropped (a torn last journal line), to log.
   */
  static async open (config: ConfigStore, events: StorageEvents = {}): Promise<{ registry: LocalRegistry, generated: GeneratedKey[], warnings: string[] }> {
    const registry = new LocalRegistry(config, await openBackend(config.settings, events))
    const warnings: string[] = []
    try {
      for (const project of config.config.projects ?? []) {
        const { engine, warnings: dropped } = await registry.#backend.open(project.id, { persistent: effectiveProject(project).storage.on_disk })
        warnings.push(...dropped)
        registry.#projects.set(project.id, new ProjectEntry(project.id, new ScopeAuth(project.authentication), engine, config))
      }
      const generated = await registry.#generateMissingKeys()
      return { registry, generated, warnings }
    } catch (err) {
      await registry.close()
      throw err
    }
  }

  get storage (): StorageReport {
    const durability = this.config.settings.durability
    return { engine: this.#backend.name, durability, summary: `local files under ${this.config.settings.storageDir}, fsync ${durability}` }
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

  resolve (id: string): Project | undefined {
    return this.#projects.get(id)
  }

  /** Every request reads the live settings here, so nothing is ever stale. */
  async reload (id: string): Promise<Project | undefined> {
    return this.#projects.get(id)
  }

  projects (): Iterable<Project> {
    return this.#projects.values()
  }

  async listProjects (): Promise<Record<string, ProjectSettings>> {
    // fromEntries defines own properties, so an id like __proto__ stays an ordinary key.
    return Object.fromEntries((this.config.config.projects ?? []).map(p => [p.id, publicSettings(p, false)]))
  }

  async projectDetails (id: string): Promise<ProjectSettings> {
    const config = this.config.project(id)
    if (config === undefined) throw projectNotFound(id)
    return publicSettings(config, true)
  }

  async createProject (body: unknown): Promise<string | null> {
    const id = projectIdFromBody(body)
    return await this.#mutex.runExclusive(async () => {
      if (this.config.project(id) !== undefined) throw projectExists(id)
      const project = projectFromBody(body as Record<string, unknown>, id)
      let key: string | null = null
      if (project.authentication?.enabled === true) {
        const fresh = await newKeyFields(project.authentication)
        key = fresh.key
        Object.assign(project.authentication, fresh.fields)
      }
      const { engine } = await this.#backend.open(id, { persistent: effectiveProject(project).storage.on_disk, fresh: true })
      try {
        await this.config.update(c => { (c.projects ??= []).push(project) })
      } catch (err) {
        await engine.close()
        throw err
      }
      this.#projects.set(id, new ProjectEntry(id, new ScopeAuth(project.authentication), engine, this.config))
      return key
    })
  }

  /** Remove a project, its config and its data. Writes in flight finish or fail first. */
  async deleteProject (id: string): Promise<void> {
    await this.#mutex.runExclusive(async () => {
      const entry = this.#projects.get(id)
      if (entry === undefined) throw projectNotFound(id)
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
      if (entry === undefined || config === undefined) throw projectNotFound(id)
      if (!effectiveProject(config).authentication.enabled) throw regenerateRefused(id)
      const { key, fields } = await newKeyFields(config.authentication)
      await this.config.update(c => { mergeAuthentication(c, id, fields) })
      entry.auth = new ScopeAuth(this.config.project(id)?.authentication)
      return key
    })
  }

  /** Merge settings into a project; storage.on_disk takes effect at once. */
  async updateProject (id: string, body: unknown): Promise<void> {
    const patch = updateFromBody(body)
    await this.#mutex.runExclusive(async () => {
      const entry = this.#projects.get(id)
      const before = this.config.project(id)
      if (entry === undefined || before === undefined) throw projectNotFound(id)
      const wasOnDisk = effectiveProject(before).storage.on_disk
      const onDisk = patch.storage?.on_disk ?? wasOnDisk
      if (onDisk !== wasOnDisk) await entry.store.setPersistent(onDisk)
      try {
        await this.config.update(c => {
          c.projects = (c.projects ?? []).map(p => p.id === id ? applyUpdate(p, patch) : p)
        })
      } catch (err) {
        if (onDisk !== wasOnDisk) await entry.store.setPersistent(wasOnDisk)
        throw err
      }
    })
  }

  /** Fold every store into its files, close it, then release the storage. */
  async close (): Promise<void> {
    try {
      await Promise.all([...this.#projects.values()].map(async e => { await e.store.close() }))
    } finally {
      await this.#backend.close()
    }
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
