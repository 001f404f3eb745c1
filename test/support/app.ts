import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import app, { serverOptions, type AppOptions } from '../../app.js'
import type { KvConfig } from '../../lib/config.js'
import type { GeneratedKey } from '../../lib/registry.js'
import { makeTempDir, removeDir } from './temp.js'

/** Keys the test configs store in plain text (save_api_key_to_config), so tests need no argon2 run. */
export const SYSTEM_KEY = 'system-test-key-0123456789abcdefghijklmnopq'
export const PROJECT_KEY = 'project-test-key-0123456789abcdefghijklmnop'

/** A config with the system scope and one project `p1`, all keys in plain text. */
export function testConfig (overrides: (c: KvConfig) => void = () => {}): KvConfig {
  const config: KvConfig = {
    version: 1,
    system: {
      storage: { persistent_file_path: 'storage_data' },
      authentication: { enabled: true, save_api_key_to_config: true, api_key: SYSTEM_KEY },
      security: { project_discoverable: true }
    },
    projects: [{
      id: 'p1',
      storage: { on_disk: true },
      authentication: { enabled: true, save_api_key_to_config: true, api_key: PROJECT_KEY },
      security: { keys_and_values_discoverable: true }
    }]
  }
  overrides(config)
  return config
}

/** Write `config` as `<dir>/config.json`; returns its path. */
export function writeConfig (dir: string, config: KvConfig): string {
  const file = join(dir, 'config.json')
  writeFileSync(file, JSON.stringify(config, null, 2))
  return file
}

export interface Built {
  app: FastifyInstance
  dir: string
  configPath: string
  generated: GeneratedKey[]
}

/**
 * The app in a bare Fastify instance, on a config file in a fresh folder,
 * closed when the test ends. Pass `config: null` to start without a file,
 * and `log` to collect the app's log lines.
 */
export async function build (t: Test, opts: { config?: KvConfig | null, dir?: string, app?: AppOptions, log?: string[] } = {}): Promise<Built> {
  const dir = opts.dir ?? makeTempDir()
  const configPath = join(dir, 'config.json')
  if (opts.config !== null && opts.dir === undefined) writeFileSync(configPath, JSON.stringify(opts.config ?? testConfig(), null, 2))
  const generated: GeneratedKey[] = []
  const log = opts.log
  // `log` collects the app's JSON log lines.
  const fastify = Fastify({ ...serverOptions(), logger: log === undefined ? false : { level: 'info', stream: { write: (line: string) => { log.push(line) } } } })
  // Close before the folder goes: closing may still write to it.
  t.teardown(async () => {
    await fastify.close()
    if (opts.dir === undefined) removeDir(dir)
  })
  await fastify.register(app, { configPath, onGeneratedKeys: keys => { generated.push(...keys) }, ...opts.app })
  await fastify.ready()
  return { app: fastify, dir, configPath, generated }
}

export function bearer (key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` }
}

export const sys = bearer(SYSTEM_KEY)
export const proj = bearer(PROJECT_KEY)
