import { existsSync } from 'node:fs'
import { ConfigStore, effectiveAuthentication, mergeAuthentication, resolveConfigPath, type AuthenticationConfig, type KvConfig } from '../../lib/config.js'
import { formatGeneratedKeys } from '../../lib/keys-box.js'
import { newKeyFields } from '../../lib/keys.js'
import type { GeneratedKey } from '../../lib/registry.js'
import type { KeyTarget } from '../args.js'
import { CliError } from '../errors.js'
import type { Io } from '../io.js'
import { whileNoServerRuns } from '../running-server.js'

function scopeAuth (config: KvConfig, target: KeyTarget): AuthenticationConfig | undefined {
  return target.scope === 'system'
    ? config.system?.authentication
    : config.projects?.find(p => p.id === target.id)?.authentication
}

function scopeName (target: KeyTarget): string {
  return target.scope === 'system' ? 'the system scope' : `project '${target.id}'`
}

/**
 * Give one scope a new key in the config file: only its hash is written (and
 * the plain key too when save_api_key_to_config is on). Returns the new key.
 */
export async function writeNewKey (store: ConfigStore, target: KeyTarget): Promise<GeneratedKey> {
  const config = store.config
  if (target.scope === 'project' && store.project(target.id) === undefined) {
    throw new CliError(`project '${target.id}' is not in ${store.file ?? 'the config'}`)
  }
  const auth = scopeAuth(config, target)
  if (!effectiveAuthentication(auth).enabled) {
    throw new CliError(`authentication is disabled for ${scopeName(target)}, so it has no key; enable it in ${store.file ?? 'the config'} first`)
  }
  const { key, fields } = await newKeyFields(auth)
  await store.update(draft => { mergeAuthentication(draft, target.scope === 'system' ? null : target.id, fields) })
  return target.scope === 'system' ? { scope: 'system', id: 'system', key } : { scope: 'project', id: target.id, key }
}

/** Only while no server runs on this config, since a running one would keep the old key. */
export async function regenerateKeyInFile (configPath: string | undefined, target: KeyTarget, env: NodeJS.ProcessEnv = process.env): Promise<{ file: string, key: GeneratedKey }> {
  const file = resolveConfigPath(configPath, env)
  if (!existsSync(file)) throw new CliError(`${file} does not exist; create it with 'simple-kv init'`)
  const { store } = await ConfigStore.load(file)
  return { file, key: await whileNoServerRuns(store, async () => await writeNewKey(store, target)) }
}

/** `keys regenerate <project>` and `keys regenerate --system`. */
export async function keysRegenerate (cmd: { config?: string, target: KeyTarget }, io: Io): Promise<number> {
  const { file, key } = await regenerateKeyInFile(cmd.config, cmd.target, io.env)
  io.stdout(`Updated ${file}; the old key no longer works.\n`)
  io.stdout(formatGeneratedKeys([key]))
  return 0
}
