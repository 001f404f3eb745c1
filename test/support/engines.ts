import tap, { type Test } from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { KvConfig, ProjectConfig } from '../../lib/config.js'
import { testConfig } from './app.js'
import { sharedRedis, sharedRedisCluster, uniquePrefix } from './redis.js'

/** The engines every behaviour test of the store runs on. */
export type EngineKind = 'disk' | 'memory' | 'redis' | 'cluster'

/** One engine a test runs on: how to configure it, and what it promises. */
export interface EngineUnderTest {
  kind: EngineKind
  /** The data outlives the server process (disk and Redis). */
  persistent: boolean
  /** The project's storage.on_disk setting in the config. */
  onDisk: boolean
  /** The test config (system scope and project p1) on this engine, with `more` applied. */
  config: (more?: (c: KvConfig) => void) => KvConfig
  /** A project as stored: in config.json (`configPath`) for the local engine, in the Redis catalog for Redis. */
  savedProject: (configPath: string, id: string) => Promise<ProjectConfig | undefined>
  /** What a project's store left behind: its files under `dir`'s storage folder (local), its keys in Redis. */
  leftovers: (dir: string, id: string) => Promise<string[]>
}

/** The engines of the suite: the local engine on disk and in memory, Redis, and Redis Cluster where asked for. */
export const ENGINES: readonly EngineKind[] = ['disk', 'memory', 'redis', 'cluster']

/** An engine to run one test on; Redis gets a key prefix of its own, so tests sharing a server never meet. */
export async function engineUnderTest (kind: EngineKind): Promise<EngineUnderTest> {
  const onDisk = kind !== 'memory'
  let redis: { url: string, cluster: boolean, cli: (...args: string[]) => Promise<string>, keysOf: (pattern: string, slotKey: string) => Promise<string> } | null = null
  if (kind === 'redis') {
    const server = await sharedRedis()
    redis = { url: server.url, cluster: false, cli: async (...args) => await server.cli(...args), keysOf: async pattern => await server.cli('KEYS', pattern) }
  }
  if (kind === 'cluster') {
    const cluster = await sharedRedisCluster()
    // KEYS looks at one node only: ask the one that owns the project's slot.
    redis = { url: cluster.url, cluster: true, cli: async (...args) => await cluster.cli(...args), keysOf: async (pattern, slotKey) => await (await cluster.nodeForKey(slotKey)).cli('KEYS', pattern) }
  }
  const prefix = uniquePrefix()
  return {
    kind,
    persistent: onDisk,
    onDisk,
    config: (more = () => {}) => testConfig(c => {
      c.projects![0].storage = { on_disk: onDisk }
      if (redis !== null) {
        c.system!.storage = { ...c.system!.storage, engine: 'redis', redis: { url: redis.url, cluster: redis.cluster, key_prefix: prefix } }
      }
      more(c)
    }),
    savedProject: async (configPath, id) => {
      if (redis === null) return (JSON.parse(readFileSync(configPath, 'utf8')) as KvConfig).projects?.find(p => p.id === id)
      const raw = await redis.cli('HGET', `${prefix}:catalog`, id)
      return raw === '' ? undefined : (JSON.parse(raw) as { config: ProjectConfig }).config
    },
    leftovers: async (dir, id) => {
      if (redis === null) {
        const folder = join(dir, 'storage_data')
        return existsSync(folder) ? readdirSync(folder).filter(f => f.startsWith(`${id}_`)) : []
      }
      const keys = await redis.keysOf(`${prefix}:{${id}}:*`, `{${id}}`)
      return keys === '' ? [] : keys.split('\n')
    }
  }
}

/** A test run once on each engine of `kinds` (default: disk, memory and Redis). */
export function onEveryEngine (name: string, fn: (t: Test, engine: EngineUnderTest) => Promise<void>, kinds: readonly EngineKind[] = ENGINES): void {
  for (const kind of kinds) {
    tap.test(`${name} (${kind})`, async t => { await fn(t, await engineUnderTest(kind)) })
  }
}
