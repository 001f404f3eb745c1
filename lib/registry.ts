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

function isPlainObject (value: unknown): value is Record<string, unknown> {
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

function needsKey (auth: AuthenticationConfig | undefined): boolean {
  const { enabled, api_key: key, api_key_hash: hash } = effectiveAuthentication(auth)
  return enabled && typeof key !== 'string' && typeof hash !== 'string'
}

/**
 * The projects the server holds, each with its store and key check, and the
 * system scope: their lifecycle (open, create, change, delete, close) and the
 * config writes that go with it. Routes change projects only through here.
 */
export class Registry {
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
  static async open (config: ConfigStore, events: StorageEvents = {}): Promise<{ registry: Registry, generated: GeneratedKey[], warnings: string[] }> {
    const registry = new Registry(config, await openBackend(config.settings, events))
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

  /** The storage engine's name, e.g. 'local'. */
  get engine (): string {
    return this.#backend.name
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

  projects (): Iterable<Project> {
    return this.#projects.values()
  }

  /** Every project's settings, keyed by id, without ids or secrets. */
  listProjects (): Record<string, ProjectSettings> {
    // fromEntries defines own properties, so an id like __proto__ stays an ordinary key.
    return Object.fromEntries((this.config.config.projects ?? []).map(p => [p.id, publicSettings(p, false)]))
  }

  projectDetails (id: string): ProjectSettings {
    const config = this.config.project(id)
    if (config === undefined) throw projectNotFound(id)
    return publicSettings(config, true)
  }

  /**
   * Create a project from a request body, checking in the contract's order.
   * Returns the new key, or null when the project's authentication is off.
   */
  async createProject (body: unknown): Promise<string | null> {
    if (!isPlainObject(body)) throw new InvalidInputError(BODY_NOT_JSON)
    if (!Object.hasOwn(body, 'id')) throw new InvalidInputError("Project 'id' is required in the request body")
    const id = body.id
    if (typeof id !== 'string' || !isValidProjectId(id)) throw new InvalidInputError(PROJECT_ID_RULE)
    return await this.#mutex.runExclusive(async () => {
      if (this.config.project(id) !== undefined) throw new InvalidInputError(`Project with ID '${id}' already exists in configuration.`)
      const input = structuredClone(body)
      if (isPlainObject(input.authentication)) {
        delete input.authentication.api_key
        delete input.authentication.api_key_hash
      }
      const problem = firstError(CreateProjectSchema, input)
      if (problem !== null) throw new InvalidInputError(problem)
      const given = input as ProjectConfig
      const defaults = defaultProject(id)
      const project: ProjectConfig = {
        id,
        storage: { ...defaults.storage, ...given.storage },
        authentication: { ...defaults.authentication, ...given.authentication },
        security: { ...defaults.security, ...given.security }
      }
      project.authentication = { ...project.authentication, api_key: null, api_key_hash: null }
      let key: string | null = null
      if (project.authentication.enabled === true) {
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
      if (!effectiveProject(config).authentication.enabled) {
        throw new ConflictError(`Failed to regenerate API key for the project (authentication may be disabled for \`${id}\`)`)
      }
      const { key, fields } = await newKeyFields(config.authentication)
      await this.config.update(c => { mergeAuthentication(c, id, fields) })
      entry.auth = new ScopeAuth(this.config.project(id)?.authentication)
      return key
    })
  }

  /** Merge settings into a project; storage.on_disk takes effect at once. */
  async updateProject (id: string, body: unknown): Promise<void> {
    if (!isPlainObject(body)) throw new InvalidInputError(BODY_NOT_JSON)
    if (Object.hasOwn(body, 'authentication')) {
      throw new InvalidInputError('Updating authentication settings via this route is not allowed. Use the regenerate API key route instead.')
    }
    if (Object.hasOwn(body, 'id')) throw new InvalidInputError('Updating project ID via this route is not allowed.')
    const problem = firstError(UpdateProjectSchema, body)
    if (problem !== null) throw new InvalidInputError(problem)
    const patch = body as UpdateProject
    await this.#mutex.runExclusive(async () => {
      const entry = this.#projects.get(id)
      const before = this.config.project(id)
      if (entry === undefined || before === undefined) throw projectNotFound(id)
      const wasOnDisk = effectiveProject(before).storage.on_disk
      const onDisk = patch.storage?.on_disk ?? wasOnDisk
      if (onDisk !== wasOnDisk) await entry.store.setPersistent(onDisk)
      try {
        await this.config.update(c => {
          const p = c.projects?.find(p => p.id === id) as ProjectConfig
          if (patch.storage !== undefined) p.storage = { ...p.storage, ...patch.storage }
          if (patch.security !== undefined) p.security = { ...p.security, ...patch.security }
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
