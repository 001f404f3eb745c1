import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import sensible from '@fastify/sensible'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { DEFAULT_MAX_KEY_BYTES, type ConfigStore, type KvConfig } from './lib/config.js'
import { envelope } from './lib/envelope.js'
import type { GeneratedKey, Registry } from './lib/registry.js'
import authPlugin from './plugins/auth.js'
import configPlugin from './plugins/config.js'
import docsPlugin from './plugins/docs.js'
import envelopePlugin from './plugins/envelope.js'
import securityPlugin from './plugins/security.js'
import storagePlugin from './plugins/storage.js'
import projectSettingsRoutes from './routes/project.js'
import keyRoutes from './routes/keys.js'
import projectRoutes from './routes/projects.js'
import statusRoutes from './routes/status.js'
import storeRoutes from './routes/store.js'
import txnRoutes from './routes/txn.js'
import { addNamedSchemas } from './routes/schemas.js'

export interface AppOptions {
  /** Path of config.json; default SIMPLE_KV_CONFIG, else ./config.json. */
  configPath?: string
  /** A config object held in memory instead of a file (changes are not saved). */
  config?: KvConfig
  /** Folder a `config` object's storage path is relative to (default: the working directory). */
  baseDir?: string
  /** An already loaded config store. */
  configStore?: ConfigStore
  /** Serve /openapi.json and Swagger UI at /docs (default true). Turn off to leave docs to the host. */
  docs?: boolean
  /** Receives keys generated at start-up; default: printed once to stdout. */
  onGeneratedKeys?: (keys: GeneratedKey[]) => void
  /** Receives the registry of projects once the stores are loaded. */
  onRegistry?: (registry: Registry) => void
  /** The prefix the host registers the app under; needed by Swagger UI to find its assets. */
  prefix?: string
}

/**
 * Server options the app needs from its host: store keys up to the configured
 * length travel as path parameters, which Fastify caps at 100 characters by
 * default, and malformed URLs, rejected before any route is found, should
 * still be answered in the envelope.
 */
export function serverOptions (maxKeyBytes = DEFAULT_MAX_KEY_BYTES): Pick<FastifyServerOptions, 'routerOptions' | 'frameworkErrors'> {
  return {
    // A percent-encoded UTF-8 byte takes up to 3 characters.
    routerOptions: { maxParamLength: maxKeyBytes * 3 },
    frameworkErrors (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
      const status = error.statusCode ?? 400
      void reply.code(status).send(envelope(status, error.message, null))
    }
  }
}

/** The whole service as one plugin. Register it with a prefix to embed it in another Fastify app. */
const app: FastifyPluginAsync<AppOptions> = async (fastify, opts) => {
  fastify.setValidatorCompiler(TypeBoxValidatorCompiler)
  addNamedSchemas(fastify)
  await fastify.register(sensible)
  await fastify.register(configPlugin, opts)
  await fastify.register(storagePlugin, opts)
  await fastify.register(authPlugin)
  await fastify.register(envelopePlugin)
  await fastify.register(securityPlugin)
  if (opts.docs !== false) await fastify.register(docsPlugin, { prefix: opts.prefix })
  await fastify.register(statusRoutes)
  await fastify.register(projectRoutes, { prefix: '/api/v1/projects' })
  await fastify.register(projectSettingsRoutes, { prefix: '/api/v1/projects/:id' })
  await fastify.register(storeRoutes, { prefix: '/api/v1/projects/:id/store' })
  await fastify.register(keyRoutes, { prefix: '/api/v1/projects/:id/keys' })
  await fastify.register(txnRoutes, { prefix: '/api/v1/projects/:id/txn' })
}

export default app
