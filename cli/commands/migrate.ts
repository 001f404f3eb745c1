import { existsSync } from 'node:fs'
import { ConfigStore, resolveConfigPath, type RedisSettings } from '../../lib/config.js'
import { KvError } from '../../lib/errors.js'
import { formatGeneratedKeys } from '../../lib/keys-box.js'
import { migrateToLocal, migrateToRedis, MigrationError, type MigrationResult } from '../../lib/migrate.js'
import { RedisConnection, redactUrl } from '../../lib/engines/redis/connection.js'
import type { MigrateCommand } from '../args.js'
import { CliError } from '../errors.js'
import type { Io } from '../io.js'
import { whileNoServerRuns } from '../running-server.js'

/** The Redis to use: the command line, else SIMPLE_KV_REDIS_URL, else the config file's settings. */
function redisSettings (store: ConfigStore, cmd: MigrateCommand, env: NodeJS.ProcessEnv): RedisSettings {
  const fromFile = store.settings.redis
  const fromEnv = env.SIMPLE_KV_REDIS_URL
  const url = cmd.redisUrl ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : store.config.system?.storage?.redis?.url ?? fromFile.url)
  return { ...fromFile, url, keyPrefix: cmd.keyPrefix ?? fromFile.keyPrefix }
}

function summary (result: MigrationResult, to: 'redis' | 'local'): string {
  const lines: string[] = []
  for (const p of result.projects) {
    const what = p.onDisk ? `${p.keys} key${p.keys === 1 ? '' : 's'} copied and verified` : 'memory-only: settings copied, no records'
    lines.push(`  ${p.id}: ${what}; epoch ${p.epoch}, revision ${p.rev}${p.replaced ? ' (replaced the existing project)' : ''}\n`)
  }
  const count = result.projects.length
  return `Migrated ${count} project${count === 1 ? '' : 's'} to ${to}:\n${lines.join('')}`
}

/**
 * `migrate --to redis|local`: copies projects between the config's storage
 * folder and Redis. The folder's lock is held throughout, so no server can
 * start on it halfway, and the command refuses to run while one does.
 */
export async function migrate (cmd: MigrateCommand, io: Io): Promise<number> {
  const file = resolveConfigPath(cmd.config, io.env)
  if (!existsSync(file)) throw new CliError(`${file} does not exist; create it with 'simple-kv init'`)
  const { store } = await ConfigStore.load(file)
  const settings = redisSettings(store, cmd, io.env)
  let redis: RedisConnection
  try {
    redis = await RedisConnection.open(settings)
  } catch (err) {
    throw new CliError((err as Error).message)
  }
  let result: MigrationResult
  try {
    result = await whileNoServerRuns(store, async () => {
      const options = { config: store, redis, prefix: settings.keyPrefix, only: cmd.projects, overwrite: cmd.overwrite }
      return cmd.to === 'redis' ? await migrateToRedis(options) : await migrateToLocal(options)
    })
  } catch (err) {
    if (err instanceof MigrationError || err instanceof KvError) throw new CliError(err.message)
    throw err
  } finally {
    await redis.close()
  }
  for (const warning of result.warnings) io.stderr(`simple-kv: warning: ${warning}\n`)
  io.stdout(summary(result, cmd.to))
  if (result.generated.length > 0) io.stdout(formatGeneratedKeys(result.generated))
  const where = `${redactUrl(settings.url)}, key prefix ${settings.keyPrefix}`
  io.stdout(cmd.to === 'redis'
    ? `Redis ${where} now holds them. To serve them, set system.storage.engine to "redis" (with this URL and prefix) in the config of every instance.\n`
    : `${file} now lists them. To serve them from the folder, set system.storage.engine to "local" (or remove it) in ${file}.\n`)
  return 0
}
