import { Type, type Static } from '@sinclair/typebox'

export const PROJECT_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$'
export const PROJECT_ID_RULE = 'Project id must be 1 to 64 characters from A-Z, a-z, 0-9, underscore and hyphen'
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
  keys_and_values_discoverable: Type.Optional(Type.Boolean({ description: 'Allow listing the whole store (default true).' })),
  require_conditional_writes: Type.Optional(Type.Boolean({ description: 'Refuse (428) a write of a store key without If-Match or If-None-Match, and a transaction write without a check on its key (default false).' }))
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
  max_txn_ops: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, description: 'Most ops in one transaction (default 1000).' })),
  max_txn_checks: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, description: 'Most checks in one transaction (default 100).' })),
  max_json_depth: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: 'Deepest nesting of arrays and objects a JSON request body may have (default 64); deeper bodies get 400 before anything is stored.' }))
}, { additionalProperties: false })

export const TimeoutsSchema = Type.Object({
  request_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'Time a client has to send a whole request, headers and body, in milliseconds (default 60000); then it gets 408 and its connection is closed.' })),
  headers_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'Time a client has to send the headers of a request, in milliseconds (default 10000, at most request_timeout_ms); then it gets 408 and its connection is closed.' })),
  keep_alive_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'How long an idle keep-alive connection stays open, in milliseconds (default 72000: longer than the 60 s idle timeout of common proxies, so the server is not the one to drop a connection a proxy is reusing).' })),
  connections_check_interval_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'How often open connections are checked against the request and headers timeouts, in milliseconds (default 1000); a timeout fires up to this much late.' }))
}, { additionalProperties: false, description: 'HTTP server timeouts, so slow or idle clients cannot hold connections forever.' })

export const REDIS_KEY_PREFIX_PATTERN = '^[A-Za-z0-9_.-]{1,64}$'

export const RedisConfigSchema = Type.Object({
  url: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'redis://[user:password@]host:port[/db] or rediss:// for TLS (default redis://127.0.0.1:6379/0). The environment variable SIMPLE_KV_REDIS_URL overrides it; put credentials there rather than in this file.' })),
  cluster: Type.Optional(Type.Boolean({ description: 'The URL names one node of a Redis Cluster (default false).' })),
  key_prefix: Type.Optional(Type.String({ pattern: REDIS_KEY_PREFIX_PATTERN, description: 'Every Redis key Simple KV writes starts with this and a colon, so one Redis can hold several datasets (default skv).' })),
  command_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, description: 'A command without an answer after this long fails with 503 (default 5000).' })),
  connect_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 60000, description: 'How long start-up waits for Redis to answer before it gives up with an error (default 5000). Once started, the server reconnects by itself for as long as it runs.' }))
}, { additionalProperties: false, description: 'The Redis engine (storage.engine redis).' })

export const SystemConfigSchema = Type.Object({
  storage: Type.Optional(Type.Object({
    persistent_file_path: Type.Optional(Type.String({ minLength: 1, description: 'Folder of the store files, relative to the config file (default storage_data).' })),
    durability: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('everysec'), Type.Literal('no')], {
      description: 'When a write of an on-disk project reaches the disk. always (default): fsynced before the reply; everysec: written before the reply, fsynced within about a second; no: written before the reply, flushed when the operating system chooses.'
    })),
    journal_max_bytes: Type.Optional(Type.Integer({
      minimum: 1024,
      description: 'Compact a project (rewrite its store file, start an empty journal) once its journal passes this many bytes and the size of its store file (default 16777216).'
    })),
    engine: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('redis')], {
      description: 'Where the stores live. local (default): in this process, with journal and snapshot files under persistent_file_path. redis: in a Redis or Valkey server (or a Redis Cluster) that several Simple KV instances can share; projects, their settings and key hashes then live there too.'
    })),
    redis: Type.Optional(RedisConfigSchema)
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

export type Durability = NonNullable<NonNullable<NonNullable<KvConfig['system']>['storage']>['durability']>
