import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Mutex } from 'async-mutex'
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError } from './errors.js'
import { writeFileAtomic } from './fsutil.js'
import { firstError } from './validation.js'

export const PROJECT_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$'
export const PROJECT_ID_RULE = 'Project id must be 1 to 64 characters from A-Z, a-z, 0-9, underscore and hyphen'
const projectIdRegExp = new RegExp(PROJECT_ID_PATTERN)

export function isValidProjectId (id: string): boolean {
  return projectIdRegExp.test(id)
}

const HASH_PATTERN = '^(\\$argon2(id|i|d)\\$v=\\d+\\$m=\\d+,t=\\d+,p=\\d+\\$[A-Za-z0-9+/]+\\$[A-Za-z0-9+/]+|pbkdf2_sha256\\$\\d{1,9}\\$[A-Za-z0-9_-]+={0,2}\\$[A-Za-z0-9_-]+={0,2})$'

export const AuthenticationSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Require an API key for this scope (default true). When false, anyone can use it.' })),
  save_api_key_to_config: Type.Optional(Type.Boolean({ description: 'Also store the plaintext key in api_key (default false).' })),
  api_key: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Null()], { description: 'Plaintext key, compared in constant time. Written only when save_api_key_to_config is true.' })),
  api_key_hash: Type.Optional(Type.Union([Type.String({ pattern: HASH_PATTERN }), Type.Null()], { description: 'Hash of the key: an argon2id PHC string, or a Simple-PyKV pbkdf2_sha256$… hash.' }))
}, { additionalProperties: false, description: 'API key settings of one scope.' })

export const ProjectStorageSchema = Type.Object({
  on_disk: Type.Optional(Type.Boolean({ description: 'Persist the store under the storage folder (default true).' })),
  cache_in_memory: Type.Optional(Type.Boolean({ description: 'Written by Simple-PyKV; accepted and ignored (stores are always held in memory).' }))
}, { additionalProperties: false })

export const ProjectSecuritySchema = Type.Object({
  keys_and_values_discoverable: Type.Optional(Type.Boolean({ description: 'Allow listing the whole store (default true).' }))
}, { additionalProperties: false })

export const ProjectConfigSchema = Type.Object({
  id: Type.String({ pattern: PROJECT_ID_PATTERN, description: 'Project id; also names its files.' }),
  storage: Type.Optional(ProjectStorageSchema),
  authentication: Type.Optional(AuthenticationSchema),
  security: Type.Optional(ProjectSecuritySchema)
}, { additionalProperties: false })

export const LimitsSchema = Type.Object({
  max_body_bytes: Type.Optional(Type.Integer({ minimum: 1, description: 'Largest request body accepted, in bytes (default 1048576).' })),
  max_key_bytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536, description: 'Longest store key, in UTF-8 bytes (default 512).' })),
  max_value_bytes: Type.Optional(Type.Integer({ minimum: 1, description: 'Largest value of one record, in bytes as size_bytes counts them (default: max_body_bytes).' })),
  max_keys_per_project: Type.Optional(Type.Integer({ minimum: 1, description: 'Most keys one project may hold (default 1000000).' })),
  max_bytes_per_project: Type.Optional(Type.Integer({ minimum: 1, description: 'Most value bytes one project may hold, summed over its records (default 1073741824).' })),
  max_json_depth: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: 'Deepest nesting of arrays and objects a JSON request body may have (default 64); deeper bodies get 400 before anything is stored.' }))
}, { additionalProperties: false })

export const TimeoutsSchema = Type.Object({
  request_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'Time a client has to send a whole request, headers and body, in milliseconds (default 60000); then it gets 408 and its connection is closed.' })),
  headers_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'Time a client has to send the headers of a request, in milliseconds (default 10000, at most request_timeout_ms); then it gets 408 and its connection is closed.' })),
  keep_alive_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'How long an idle keep-alive connection stays open, in milliseconds (default 72000: longer than the 60 s idle timeout of common proxies, so the server is not the one to drop a connection a proxy is reusing).' })),
  connections_check_interval_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'How often open connections are checked against the request and headers timeouts, in milliseconds (default 1000); a timeout fires up to this much late.' }))
}, { additionalProperties: false, description: 'HTTP server timeouts, so slow or idle clients cannot hold connections forever.' })

export const SystemConfigSchema = Type.Object({
  storage: Type.Optional(Type.Object({
    persistent_file_path: Type.Optional(Type.String({ minLength: 1, description: 'Folder of the store files, relative to the config file (default storage_data).' })),
    durability: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('everysec'), Type.Literal('no')], {
      description: 'When a write of an on-disk project reaches the disk. always (default): fsynced before the reply; everysec: written before the reply, fsynced within about a second; no: written before the reply, flushed when the operating system chooses.'
    })),
    journal_max_bytes: Type.Optional(Type.Integer({
      minimum: 1024,
      description: 'Compact a project (rewrite its store file, start an empty journal) once its journal passes this many bytes and the size of its store file (default 16777216).'
    }))
  }, { additionalProperties: false })),
  authentication: Type.Optional(AuthenticationSchema),
  security: Type.Optional(Type.Object({
    project_discoverable: Type.Optional(Type.Boolean({ description: 'Allow listing projects and reveal whether a project exists (default true).' })),
    max_auth_failures: Type.Optional(Type.Integer({ minimum: 1, description: 'Failed authentications one client address may make per window before it gets 429 (default 30).' })),
    auth_failure_window_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'Length of that window, in seconds (default 60).' })),
    cors_origins: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Origins allowed to call the API from a browser; "*" allows any. Default: none (CORS off).' }))
  }, { additionalProperties: false })),
  debugging: Type.Optional(Type.Object({
    verbose_mode: Type.Optional(Type.Boolean({ description: 'Log every request (default false).' }))
  }, { additionalProperties: false })),
  limits: Type.Optional(LimitsSchema),
  timeouts: Type.Optional(TimeoutsSchema)
}, { additionalProperties: false })

export const ConfigSchema = Type.Object({
  $schema: Type.Optional(Type.String({ description: 'Path or URL of this JSON Schema, for editors.' })),
  version: Type.Optional(Type.Union([Type.Integer(), Type.String()], { description: 'Config format version (Simple-PyKV writes 1).' })),
  server_port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port (default 23849).' })),
  server_host: Type.Optional(Type.String({ minLength: 1, description: 'Address to listen on (default 127.0.0.1).' })),
  system: Type.Optional(SystemConfigSchema),
  projects: Type.Optional(Type.Array(ProjectConfigSchema, { description: 'The projects this server holds.' }))
}, {
  $id: 'https://simple-kv.dev/config.schema.json',
  title: 'Simple KV config.json',
  additionalProperties: false
})

export type KvConfig = Static<typeof ConfigSchema>
export type ProjectConfig = Static<typeof ProjectConfigSchema>
export type AuthenticationConfig = Static<typeof AuthenticationSchema>

export const DEFAULT_PORT = 23849
export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_STORAGE_PATH = 'storage_data'
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
export const DEFAULT_MAX_KEY_BYTES = 512
export const DEFAULT_MAX_KEYS_PER_PROJECT = 1_000_000
export const DEFAULT_MAX_BYTES_PER_PROJECT = 1024 * 1024 * 1024
export const DEFAULT_MAX_AUTH_FAILURES = 30
export const DEFAULT_AUTH_FAILURE_WINDOW_SECONDS = 60
export const DEFAULT_DURABILITY = 'always'
export const DEFAULT_JOURNAL_MAX_BYTES = 16 * 1024 * 1024
export const DEFAULT_MAX_JSON_DEPTH = 64
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 72_000
export const DEFAULT_CONNECTIONS_CHECK_INTERVAL_MS = 1_000

export type Durability = 'always' | 'everysec' | 'no'

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

export interface EffectiveSettings {
  host: string
  port: number
  storageDir: string
  durability: Durability
  journalMaxBytes: number
  projectDiscoverable: boolean
  verbose: boolean
  maxBodyBytes: number
  maxKeyBytes: number
  maxValueBytes: number
  maxKeysPerProject: number
  maxBytesPerProject: number
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
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ConfigError(`Cannot read config file ${path}: ${(err as Error).message}`)
      }
      text = null
    }
    if (text === null) {
      const store = new ConfigStore(path, dirname(path), defaultConfig())
      await store.#write(store.#config)
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
      durability: c.system?.storage?.durability ?? DEFAULT_DURABILITY,
      journalMaxBytes: c.system?.storage?.journal_max_bytes ?? DEFAULT_JOURNAL_MAX_BYTES,
      projectDiscoverable: c.system?.security?.project_discoverable ?? true,
      verbose: c.system?.debugging?.verbose_mode ?? false,
      maxBodyBytes: c.system?.limits?.max_body_bytes ?? DEFAULT_MAX_BODY_BYTES,
      maxKeyBytes: c.system?.limits?.max_key_bytes ?? DEFAULT_MAX_KEY_BYTES,
      maxValueBytes: c.system?.limits?.max_value_bytes ?? c.system?.limits?.max_body_bytes ?? DEFAULT_MAX_BODY_BYTES,
      maxKeysPerProject: c.system?.limits?.max_keys_per_project ?? DEFAULT_MAX_KEYS_PER_PROJECT,
      maxBytesPerProject: c.system?.limits?.max_bytes_per_project ?? DEFAULT_MAX_BYTES_PER_PROJECT,
      maxAuthFailures: c.system?.security?.max_auth_failures ?? DEFAULT_MAX_AUTH_FAILURES,
      authFailureWindowSeconds: c.system?.security?.auth_failure_window_seconds ?? DEFAULT_AUTH_FAILURE_WINDOW_SECONDS,
      corsOrigins: c.system?.security?.cors_origins ?? [],
      maxJsonDepth: c.system?.limits?.max_json_depth ?? DEFAULT_MAX_JSON_DEPTH,
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
