import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { RedisSettings } from '../../config.js'
import { StorageError, StorageUnavailableError, StorageUnreachableError } from '../../errors.js'
import { CATALOG_SCRIPTS, STORE_SCRIPTS, storeScript, type StoreScript } from './scripts.js'

export type RedisClient = Redis | Cluster

type ScriptCall = (...args: Array<string | number>) => Promise<unknown>

/** What the Redis behind the engine promises for an acknowledged write, as read at start. */
export interface RedisDurability {
  /** always, everysec or no (appendfsync with appendonly on); none (appendonly off); unknown (CONFIG GET refused). */
  level: 'always' | 'everysec' | 'no' | 'none' | 'unknown'
  /** One line for the banner and the status answer. */
  summary: string
  /** What an operator should know (to log as warnings). */
  warnings: string[]
}

/** The URL without its credentials, for logs and the banner. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.username !== '' || u.password !== '') {
      u.username = u.username === '' ? '' : '***'
      u.password = u.password === '' ? '' : '***'
    }
    return u.toString()
  } catch {
    return 'redis://(unparsable URL)'
  }
}

/** Connection options from a redis:// or rediss:// URL. */
function urlOptions (url: string): { host: string, port: number, db: number, username?: string, password?: string, tls?: object } {
  const u = new URL(url)
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0
  if (!Number.isInteger(db) || db < 0) throw new StorageError(`Redis URL ${redactUrl(url)}: the database number must be a whole number`)
  return {
    host: u.hostname === '' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port === '' ? 6379 : Number(u.port),
    db,
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {})
  }
}

/**
 * A connection to Redis (one server or a cluster) with the engine's scripts
 * defined on it. Requests never queue while Redis is away: they fail at once
 * (503 with Retry-After) and the client reconnects by itself in the
 * background. A command in flight when the connection drops is not sent again:
 * it either ran as a whole or not at all, and the caller gets an error.
 */
export class RedisConnection {
  readonly client: RedisClient
  readonly settings: RedisSettings
  readonly #scripts: Record<string, ScriptCall>

  private constructor (client: RedisClient, settings: RedisSettings) {
    this.client = client
    this.settings = settings
    for (const name of Object.keys(STORE_SCRIPTS) as StoreScript[]) client.defineCommand(name, { numberOfKeys: 4, lua: storeScript(name) })
    client.defineCommand('skvCatalogSwap', { numberOfKeys: 1, lua: CATALOG_SCRIPTS.skvCatalogSwap })
    client.defineCommand('skvCreateStore', { numberOfKeys: 1, lua: CATALOG_SCRIPTS.skvCreateStore })
    client.defineCommand('skvRaiseCfg', { numberOfKeys: 1, lua: CATALOG_SCRIPTS.skvRaiseCfg })
    this.#scripts = client as unknown as Record<string, ScriptCall>
  }

  /** Connect, waiting up to `connectTimeoutMs` for Redis to answer. */
  static async open (settings: RedisSettings, connectTimeoutMs = settings.connectTimeoutMs): Promise<RedisConnection> {
    let from: ReturnType<typeof urlOptions>
    try {
      from = urlOptions(settings.url)
    } catch (err) {
      if (err instanceof StorageError) throw err
      throw new StorageError(`Redis URL ${redactUrl(settings.url)} is not a valid URL`)
    }
    const common: RedisOptions = {
      // RESP2: replies of scripts (nil for a Lua false) are the same on every Redis version.
      protocol: 2,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: settings.commandTimeoutMs,
      connectTimeout: connectTimeoutMs,
      retryStrategy: (times: number) => Math.min(50 * times, 1000),
      lazyConnect: true,
      connectionName: 'simple-kv',
      ...(from.username !== undefined ? { username: from.username } : {}),
      ...(from.password !== undefined ? { password: from.password } : {}),
      ...(from.tls !== undefined ? { tls: from.tls } : {})
    }
    let client: RedisClient
    if (settings.cluster) {
      const options: ClusterOptions = {
        redisOptions: common,
        enableOfflineQueue: false,
        maxRedirections: 16,
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        clusterRetryStrategy: (times: number) => Math.min(100 * times, 1000),
        lazyConnect: true
      }
      client = new Cluster([{ host: from.host, port: from.port }], options)
    } else {
      client = new Redis({ ...common, host: from.host, port: from.port, db: from.db })
    }
    // Errors are reported through the commands that fail; without a listener ioredis would print each reconnect attempt.
    client.on('error', () => {})
    const connection = new RedisConnection(client, settings)
    const deadline = Date.now() + connectTimeoutMs
    for (;;) {
      try {
        if (client.status === 'wait' || client.status === 'end') await client.connect()
        await client.ping()
        return connection
      } catch (err) {
        if (Date.now() >= deadline) {
          client.disconnect()
          throw new StorageUnreachableError(`Cannot reach Redis at ${redactUrl(settings.url)}: ${(err as Error).message}`, err)
        }
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
  }

  /** Run a store script on a project's four keys; failures become domain errors. */
  async store (name: StoreScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown[]> {
    return await this.call(async () => await this.#scripts[name](...keys, ...args)) as unknown[]
  }

  /** Run a catalog script. */
  async catalog (name: keyof typeof CATALOG_SCRIPTS, key: string, args: ReadonlyArray<string | number>): Promise<unknown> {
    return await this.call(async () => await this.#scripts[name](key, ...args))
  }

  /** Run any command through the same error mapping. */
  async call<T> (fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      // ioredis attaches the command and its arguments (values, key hashes) to its errors: never log them.
      if (err !== null && typeof err === 'object' && 'command' in err) delete (err as { command?: unknown }).command
      throw asDomainError(err, this.settings.url)
    }
  }

  /** Read appendonly, appendfsync and maxmemory-policy from every master; refuse one that could evict keys. */
  async durability (): Promise<RedisDurability> {
    const nodes: Redis[] = this.client instanceof Cluster ? this.client.nodes('master') : [this.client]
    const warnings: string[] = []
    const levels = new Set<RedisDurability['level']>()
    for (const node of nodes) {
      let config: Record<string, string>
      try {
        const flat = await node.config('GET', 'appendonly') as string[]
        const more = await node.config('GET', 'appendfsync') as string[]
        const policy = await node.config('GET', 'maxmemory-policy') as string[]
        config = Object.fromEntries(pairs([...flat, ...more, ...policy]))
      } catch (err) {
        warnings.push(`cannot read the configuration of Redis (${(err as Error).message}): its durability and eviction policy are unknown; make sure it never evicts keys (maxmemory-policy noeviction) and persists with appendonly yes`)
        levels.add('unknown')
        continue
      }
      const policy = config['maxmemory-policy'] ?? ''
      if (policy.startsWith('allkeys-')) {
        throw new StorageError(`Redis at ${redactUrl(this.settings.url)} has maxmemory-policy ${policy}: it may evict keys when full, and data would vanish silently. Set maxmemory-policy to noeviction (a full Redis then refuses writes, which Simple KV answers with 507)`)
      }
      if (config.appendonly !== 'yes') {
        warnings.push('Redis runs with appendonly no: acknowledged writes since its last RDB snapshot are lost if it stops; set appendonly yes and appendfsync always for the durability of the local engine')
        levels.add('none')
      } else {
        const fsync = config.appendfsync
        levels.add(fsync === 'always' || fsync === 'everysec' || fsync === 'no' ? fsync : 'unknown')
      }
    }
    const order: Array<RedisDurability['level']> = ['unknown', 'none', 'no', 'everysec', 'always']
    const level = order.find(l => levels.has(l)) ?? 'unknown'
    const summaries: Record<RedisDurability['level'], string> = {
      always: 'redis appendfsync always: every acknowledged write is on Redis\'s disk',
      everysec: 'redis appendfsync everysec: a Redis crash can lose about the last second of acknowledged writes',
      no: 'redis appendfsync no: a Redis crash can lose acknowledged writes the operating system had not flushed',
      none: 'redis without appendonly: a Redis crash loses the writes since its last snapshot',
      unknown: 'redis: durability unknown (CONFIG GET refused)'
    }
    return { level, summary: summaries[level], warnings }
  }

  async close (): Promise<void> {
    try {
      await this.client.quit()
    } catch {
      this.client.disconnect()
    }
  }
}

function pairs (flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i], flat[i + 1]])
  return out
}

const RETRY_LATER = /^(LOADING|CLUSTERDOWN|TRYAGAIN|READONLY|MASTERDOWN|BUSY|NOREPLICAS|MOVED|ASK)\b/

/**
 * Redis failures in the store's terms: a full Redis (OOM) is 507 like a full
 * disk; an unreachable or restarting one is temporary (503); a script error is
 * a defect and stays as it is.
 */
export function asDomainError (err: unknown, url: string): unknown {
  // A defect in our code is not an outage: it stays a 500.
  if (err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError || err instanceof ReferenceError) return err
  const message = (err as Error)?.message ?? String(err)
  const name = (err as Error)?.name
  if (name === 'ReplyError') {
    if (message.startsWith('OOM')) return new StorageUnavailableError('Redis is out of memory (maxmemory reached): the write was refused and nothing changed', err)
    if (!RETRY_LATER.test(message)) return err
  }
  return new StorageUnreachableError(`Redis at ${redactUrl(url)} is unavailable: ${message}`, err)
}
