import { existsSync } from 'node:fs'
import { ConfigStore, effectiveAuthentication, resolveConfigPath } from '../../lib/config.js'
import { formatGeneratedKeys } from '../../lib/keys-box.js'
import type { GeneratedKey } from '../../lib/registry.js'
import { CliError } from '../errors.js'
import type { Io } from '../io.js'
import { writeNewKey } from './keys.js'

/** Write the default config with a fresh key for every scope. Refuses to touch an existing file. */
export async function initConfig (configPath?: string, env: NodeJS.ProcessEnv = process.env): Promise<{ file: string, keys: GeneratedKey[] }> {
  const file = resolveConfigPath(configPath, env)
  if (existsSync(file)) {
    throw new CliError(`${file} already exists; to replace a key use 'simple-kv keys regenerate <project>' or '--system'`)
  }
  const { store } = await ConfigStore.load(file)
  const keys: GeneratedKey[] = []
  if (effectiveAuthentication(store.config.system?.authentication).enabled) keys.push(await writeNewKey(store, { scope: 'system' }))
  for (const project of store.config.projects ?? []) {
    if (effectiveAuthentication(project.authentication).enabled) keys.push(await writeNewKey(store, { scope: 'project', id: project.id }))
  }
  return { file, keys }
}

/** `init`: the config file and its keys, shown once. */
export async function init (cmd: { config?: string }, io: Io): Promise<number> {
  const { file, keys } = await initConfig(cmd.config, io.env)
  io.stdout(`Wrote ${file}\n`)
  if (keys.length > 0) io.stdout(formatGeneratedKeys(keys))
  io.stdout(`Start the server with: simple-kv --config ${file}\n`)
  return 0
}
