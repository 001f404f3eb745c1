import fp from 'fastify-plugin'
import { ConfigStore, resolveConfigPath, type KvConfig } from '../lib/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    kvConfig: ConfigStore
  }
}

export interface ConfigPluginOptions {
  /** Path of config.json; default SIMPLE_KV_CONFIG, else ./config.json. Created with defaults when missing. */
  configPath?: string
  /** A config held in memory only; changes made through the API are not written anywhere. */
  config?: KvConfig
  /** Folder that a `config` object's storage path is relative to (default: the working directory). */
  baseDir?: string
  /** An already loaded config (the standalone server loads it to learn host and port). */
  configStore?: ConfigStore
}

export default fp<ConfigPluginOptions>(async (fastify, opts) => {
  let store = opts.configStore
  if (store === undefined && opts.config !== undefined) store = ConfigStore.fromObject(opts.config, opts.baseDir ?? process.cwd())
  if (store === undefined) {
    const loaded = await ConfigStore.load(resolveConfigPath(opts.configPath))
    if (loaded.created) fastify.log.info({ file: loaded.store.file }, 'created a default config file')
    store = loaded.store
  }
  fastify.decorate('kvConfig', store)
}, { name: 'kv-config', fastify: '5.x' })
