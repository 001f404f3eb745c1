import { mkdir, readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Mutex } from 'async-mutex'
import { ConfigSchema, PROJECT_ID_PATTERN, type AuthenticationConfig, type Durability, type KvConfig, type ProjectConfig } from '../schemas/config.js'
import { ConfigError } from './errors.js'
import { writeFileAtomic } from './fsutil.js'
import { firstError } from './validation.js'

const projectIdRegExp = new RegExp(PROJECT_ID_PATTERN)

export function isValidProjectId (id: string): boolean {
  return projectIdRegExp.test(id)
}

export const DEFAULT_PORT = 23849
export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_STORAGE_PATH = 'storage_data'
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
export const DEFAULT_MAX_KEY_BYTES = 512
export const DEFAULT_MAX_KEYS_PER_PROJECT = 1_000_000
export const DEFAULT_MAX_BYTES_PER_PROJECT = 1024 * 1024 * 1024
export const DEFAULT_MAX_TXN_OPS = 1000
export const DEFAULT_MAX_TXN_CHECKS = 100
export const DEFAULT_MAX_AUTH_FAILURES = 30
export const DEFAULT_AUTH_FAILURE_WINDOW_SECONDS = 60
export const DEFAULT_DURABILITY: Durability = 'always'
export const DEFAULT_JOURNAL_MAX_BYTES = 16 * 1024 * 1024
export const DEFAULT_MAX_JSON_DEPTH = 64
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 72_000
export const DEFAULT_CONNECTIONS_CHECK_INTERVAL_MS = 1_000

export function defaultAuthentication (): AuthenticationConfig {
  return { enabled: true, save_api_key_to_config: false, api_key: null, api_key_hash: null }
}

/** A project's full settings; every call returns fresh objects so projects never share one. */
export function defaultProject (id: string): ProjectConfig {
  return {
    id,
    storage: { on_disk: true },
    authentication: defaultAuthentication(),
    security: { keys_and_values_discoverable: true }
  }
}

type ProjectStorage = NonNullable<ProjectConfig['storage']>
type ProjectSecurity = NonNullable<ProjectConfig['security']>

/** A scope's key settings with the defaults filled in. */
export type EffectiveAuthentication = Required<AuthenticationConfig>

/** A project's settings with every default filled in. */
export interface EffectiveProject {
  id: string
  storage: ProjectStorage & Required<Pick<ProjectStorage, 'on_disk'>>
  authentication: EffectiveAuthentication
  security: Required<ProjectSecurity>
}

export function effectiveAuthentication (auth: AuthenticationConfig | undefined): EffectiveAuthentication {
  return { ...defaultAuthentication(), ...auth } as EffectiveAuthentication
}

/** The one place a project's defaults apply: what a config leaves out, this fills in. */
export function effectiveProject (project: ProjectConfig): EffectiveProject {
  const d = defaultProject(project.id) as EffectiveProject
  return {
    id: project.id,
    storage: { ...d.storage, ...project.storage },
    authentication: effectiveAuthentication(project.authentication),
    security: { ...d.security, require_conditional_writes: false, ...project.security }
  }
}

export function defaultConfig (): KvConfig {
  return {
    version: 1,
    server_port: DEFAULT_PORT,
    server_host: DEFAULT_HOST,
    system: {
      storage: { persistent_file_path: DEFAULT_STORAGE_PATH },
      authentication: defaultAuthentication(),
      security: { project_discoverable: true },
      debugging: { verbose_mode: false }
    },
    projects: [defaultProject('first_project')]
  }
}

/** Problems the schema cannot express: duplicate ids. */
function semanticError (config: KvConfig): string | null {
  const seen = new Set<string>()
  for (const [i, project] of (config.projects ?? []).entries()) {
    if (seen.has(project.id)) return `Invalid field 'projects[${i}].id': duplicate project id '${project.id}'`
    seen.add(project.id)
  }
  const timeouts = config.system?.timeouts
  if (timeouts?.headers_timeout_ms !== undefined && timeouts.headers_timeout_ms > (timeouts.request_timeout_ms ?? DEFAULT_REQUEST_TIMEOUT_MS)) {
    return `Invalid field 'system.timeouts.headers_timeout_ms': must not exceed request_timeout_ms (${timeouts.request_timeout_ms ?? DEFAULT_REQUEST_TIMEOUT_MS})`
  }
  return null
}

export function configError (value: unknown): string | null {
  return firstError(ConfigSchema, value) ?? semanticError(value as KvConfig)
}

/** Merge `fields` into the authentication of the system scope (`projectId` null) or of a project in `draft`. */
export function mergeAuthentication (draft: KvConfig, projectId: string | null, fields: AuthenticationConfig): void {
  if (projectId === null) {
    draft.system ??= {}
    draft.system.authentication = { ...draft.system.authentication, ...fields }
    return
  }
  const project = draft.projects?.find(p => p.id === projectId)
  if (project !== undefined) project.authentication = { ...project.authentication, ...fields }
}

/** The config file to use: the explicit path, else SIMPLE_KV_CONFIG, else ./config.json. */
export function resolveConfigPath (explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = explicit ?? (env.SIMPLE_KV_CONFIG !== undefined && env.SIMPLE_KV_CONFIG !== '' ? env.SIMPLE_KV_CONFIG : 'config.json')
  return resolve(chosen)
}

/** The Redis engine's settings, defaults filled in. */
export interface RedisSettings {
  url: string
  cluster: boolean
  keyPrefix: string
  commandTimeoutMs: number
  connectTimeoutMs: number
}

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0'
export const DEFAULT_REDIS_KEY_PREFIX = 'skv'
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 5000
/** Below Fastify's default plugin timeout (10 s), so an embedding host gets this error rather than a timeout. */
export const DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 5000

export interface EffectiveSettings {
  host: string
  port: number
  storageDir: string
  engine: 'local' | 'redis'
  redis: RedisSettings
  durability: Durability
  journalMaxBytes: number
  projectDiscoverable: boolean
  verbose: boolean
  maxBodyBytes: number
  maxKeyBytes: number
  maxValueBytes: number
  maxKeysPerProject: number
  maxBytesPerProject: number
  maxTxnOps: number
  maxTxnChecks: number
  maxAuthFailures: number
  authFailureWindowSeconds: number
  corsOrigins: string[]
  maxJsonDepth: number
  requestTimeoutMs: number
  headersTimeoutMs: number
  keepAliveTimeoutMs: number
  connectionsCheckIntervalMs: number
}

/** The timeouts in effect; a request timeout set below the default headers timeout lowers that too. */
function limitSettings (c: KvConfig): Pick<EffectiveSettings, 'maxBodyBytes' | 'maxKeyBytes' | 'maxValueBytes' | 'maxKeysPerProject' | 'maxBytesPerProject' | 'maxTxnOps' | 'maxTxnChecks' | 'maxJsonDepth'> {
  const l = c.system?.limits
  return {
    maxBodyBytes: l?.max_body_bytes ?? DEFAULT_MAX_BODY_BYTES,
    maxKeyBytes: l?.max_key_bytes ?? DEFAULT_MAX_KEY_BYTES,
    maxValueBytes: l?.max_value_bytes ?? l?.max_body_bytes ?? DEFAULT_MAX_BODY_BYTES,
    maxKeysPerProject: l?.max_keys_per_project ?? DEFAULT_MAX_KEYS_PER_PROJECT,
    maxBytesPerProject: l?.max_bytes_per_project ?? DEFAULT_MAX_BYTES_PER_PROJECT,
    maxTxnOps: l?.max_txn_ops ?? DEFAULT_MAX_TXN_OPS,
    maxTxnChecks: l?.max_txn_checks ?? DEFAULT_MAX_TXN_CHECKS,
    maxJsonDepth: l?.max_json_depth ?? DEFAULT_MAX_JSON_DEPTH
  }
}

/** SIMPLE_KV_REDIS_URL wins over the file, so credentials can stay out of it. */
function redisSettings (c: KvConfig, env: NodeJS.ProcessEnv): RedisSettings {
  const r = c.system?.storage?.redis
  const fromEnv = env.SIMPLE_KV_REDIS_URL
  return {
    url: fromEnv !== undefined && fromEnv !== '' ? fromEnv : r?.url ?? DEFAULT_REDIS_URL,
    cluster: r?.cluster ?? false,
    keyPrefix: r?.key_prefix ?? DEFAULT_REDIS_KEY_PREFIX,
    commandTimeoutMs: r?.command_timeout_ms ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
    connectTimeoutMs: r?.connect_timeout_ms ?? DEFAULT_REDIS_CONNECT_TIMEOUT_MS
  }
}

function timeoutSettings (c: KvConfig): Pick<EffectiveSettings, 'requestTimeoutMs' | 'headersTimeoutMs' | 'keepAliveTimeoutMs' | 'connectionsCheckIntervalMs'> {
  const t = c.system?.timeouts
  const requestTimeoutMs = t?.request_timeout_ms ?? DEFAULT_REQUEST_TIMEOUT_MS
  return {
    requestTimeoutMs,
    headersTimeoutMs: t?.headers_timeout_ms ?? Math.min(DEFAULT_HEADERS_TIMEOUT_MS, requestTimeoutMs),
    keepAliveTimeoutMs: t?.keep_alive_timeout_ms ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckIntervalMs: t?.connections_check_interval_ms ?? DEFAULT_CONNECTIONS_CHECK_INTERVAL_MS
  }
}

/**
 * Holds the validated config and writes it back. Every change is validated as a
 * whole before it is written, and memory changes only after the write succeeded,
 * so config.json always loads.
 */
export class ConfigStore {
  readonly file: string | null
  readonly baseDir: string
  #config: KvConfig
  #settings: EffectiveSettings | null = null
  readonly #mutex = new Mutex()
  /** Where SIMPLE_KV_REDIS_URL is read from. */
  readonly #env: NodeJS.ProcessEnv = process.env

  private constructor (file: string | null, baseDir: string, config: KvConfig) {
    this.file = file
    this.baseDir = baseDir
    this.#config = config
  }

  /** Load `file`, creating it with the defaults when it does not exist. */
  static async load (file: string): Promise<{ store: ConfigStore, created: boolean }> {
    const path = resolve(file)
    let text: string | null
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      // ENOTDIR: a part of the path is a file; creating the folder below says which.
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        throw new ConfigError(`Cannot read config file ${path}: ${(err as Error).message}`)
      }
      text = null
    }
    if (text === null) {
      // The file holds keys: a folder made for it is private to the owner.
      const folder = dirname(path)
      try {
        await mkdir(folder, { recursive: true, mode: 0o700 })
      } catch (err) {
        throw new ConfigError(`Cannot create folder ${folder} for config file ${path}: ${(err as Error).message}`)
      }
      const store = new ConfigStore(path, folder, defaultConfig())
      try {
        await store.#write(store.#config)
      } catch (err) {
        throw new ConfigError(`Cannot create config file ${path}: ${(err as Error).message}`)
      }
      return { store, created: true }
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (err) {
      throw new ConfigError(`Config file ${path} is not valid JSON: ${(err as Error).message}`)
    }
    const problem = configError(parsed)
    if (problem !== null) throw new ConfigError(`Config file ${path}: ${problem}`)
    return { store: new ConfigStore(path, dirname(path), parsed as KvConfig), created: false }
  }

  /** A config held in memory only (embedding, tests): changes are not written anywhere. */
  static fromObject (config: unknown, baseDir: string): ConfigStore {
    const copy = structuredClone(config)
    const problem = configError(copy)
    if (problem !== null) throw new ConfigError(`Config object: ${problem}`)
    return new ConfigStore(null, resolve(baseDir), copy as KvConfig)
  }

  /** The current config. Treat it as read-only: change it through update(). */
  get config (): Readonly<KvConfig> {
    return this.#config
  }

  /** The effective settings, defaults filled in; derived once per config version, since request hooks read them. */
  get settings (): Readonly<EffectiveSettings> {
    this.#settings ??= this.#derive(this.#config)
    return this.#settings
  }

  #derive (c: KvConfig): EffectiveSettings {
    return {
      host: c.server_host ?? DEFAULT_HOST,
      port: c.server_port ?? DEFAULT_PORT,
      storageDir: resolve(this.baseDir, c.system?.storage?.persistent_file_path ?? DEFAULT_STORAGE_PATH),
      engine: c.system?.storage?.engine ?? 'local',
      redis: redisSettings(c, this.#env),
      durability: c.system?.storage?.durability ?? DEFAULT_DURABILITY,
      journalMaxBytes: c.system?.storage?.journal_max_bytes ?? DEFAULT_JOURNAL_MAX_BYTES,
      projectDiscoverable: c.system?.security?.project_discoverable ?? true,
      verbose: c.system?.debugging?.verbose_mode ?? false,
      maxAuthFailures: c.system?.security?.max_auth_failures ?? DEFAULT_MAX_AUTH_FAILURES,
      authFailureWindowSeconds: c.system?.security?.auth_failure_window_seconds ?? DEFAULT_AUTH_FAILURE_WINDOW_SECONDS,
      corsOrigins: c.system?.security?.cors_origins ?? [],
      ...limitSettings(c),
      ...timeoutSettings(c)
    }
  }

  project (id: string): ProjectConfig | undefined {
    return this.#config.projects?.find(p => p.id === id)
  }

  /**
   * Apply `mutate` to a copy, validate the result, write it, then publish it.
   * A mutation that would make the file invalid throws ConfigError and changes nothing.
   */
  async update<R> (mutate: (draft: KvConfig) => R): Promise<R> {
    return await this.#mutex.runExclusive(async () => {
      const draft = structuredClone(this.#config)
      const result = mutate(draft)
      const problem = configError(draft)
      if (problem !== null) throw new ConfigError(problem)
      await this.#write(draft)
      this.#config = draft
      this.#settings = null
      return result
    })
  }

  async #write (config: KvConfig): Promise<void> {
    if (this.file === null) return
    await writeFileAtomic(this.file, JSON.stringify(config, null, 2) + '\n')
  }
}

// Types that most config users need, re-exported from the one schema that defines them.
export type { AuthenticationConfig, Durability, KvConfig, ProjectConfig } from '../schemas/config.js'
export { PROJECT_ID_RULE } from '../schemas/config.js'
