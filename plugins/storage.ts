import fp from 'fastify-plugin'
import { formatGeneratedKeys } from '../lib/keys-box.js'
import { openRegistry, type GeneratedKey, type Registry } from '../lib/registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    kv: Registry
  }
}

export interface StoragePluginOptions {
  /** Receives keys generated at start-up, once; default: printed to stdout in a box, never logged. */
  onGeneratedKeys?: (keys: GeneratedKey[]) => void
  /** Receives the registry once the stores are loaded (the standalone server reads it for its banner). */
  onRegistry?: (registry: Registry) => void
}

export default fp<StoragePluginOptions>(async (fastify, opts) => {
  const { registry, generated, warnings } = await openRegistry(fastify.kvConfig, {
    onCompactionError: (id, err, failures) => {
      fastify.log.error({ err, project: id, failures }, `compaction of project '${id}' failed (${failures} in a row): its journal keeps every change and grows until a retry succeeds`)
    }
  })
  for (const warning of warnings) fastify.log.warn(warning)
  fastify.decorate('kv', registry)
  opts.onRegistry?.(registry)
  fastify.addHook('onClose', async () => { await registry.close() })
  if (generated.length > 0) {
    const show = opts.onGeneratedKeys ?? ((keys: GeneratedKey[]) => { process.stdout.write(formatGeneratedKeys(keys)) })
    show(generated)
  }
  const scopes = [
    { name: 'system', enabled: registry.systemAuth.enabled },
    ...[...registry.projects()].map(p => ({ name: `project '${p.id}'`, enabled: p.settings.authentication.enabled }))
  ]
  for (const scope of scopes) {
    if (!scope.enabled) fastify.log.warn(`authentication is DISABLED for ${scope.name}: anyone who can reach the server can use it`)
  }
}, { name: 'kv-storage', fastify: '5.x', dependencies: ['kv-config'] })
