import { STATUS_CODES, type ServerOptions } from 'node:http'
import type { Socket } from 'node:net'
import type { ConnectionError, FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest, FastifyServerOptions, onRequestHookHandler } from 'fastify'
import sensible from '@fastify/sensible'
import fastJsonStringify, { type Schema } from 'fast-json-stringify'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import {
  DEFAULT_CONNECTIONS_CHECK_INTERVAL_MS, DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_KEEP_ALIVE_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_KEY_BYTES, DEFAULT_REQUEST_TIMEOUT_MS, type ConfigStore, type EffectiveSettings, type KvConfig
} from './lib/config.js'
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

/** The settings serverOptions() reads; those missing take the config's defaults. */
export type ServerSettings = Partial<Pick<EffectiveSettings,
'maxKeyBytes' | 'maxBodyBytes' | 'requestTimeoutMs' | 'headersTimeoutMs' | 'keepAliveTimeoutMs' | 'connectionsCheckIntervalMs'>>

/** Statuses for the errors of Node's HTTP parser and timeouts, as Node itself answers them; anything else is 400. */
const CLIENT_ERROR_STATUS: Record<string, number> = {
  ERR_HTTP_REQUEST_TIMEOUT: 408,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  // The request line counts towards the header size, so a long URL lands here too.
  HPE_HEADER_OVERFLOW: 431
}

const CLIENT_ERROR_MESSAGE: Record<number, string> = {
  408: 'Request timed out: the client sent it too slowly',
  413: 'Request chunk extensions are too large',
  431: 'Request header fields are too large'
}

/** How long an answered bad connection may stay open for the client to read the answer. */
const CLIENT_ERROR_LINGER_MS = 2000

/** Connections already answered by clientErrorHandler: later parser errors on them need no second answer. */
const answered = new WeakSet<Socket>()

/**
 * Errors Node's HTTP parser (or its timeouts) raise before Fastify sees a
 * request: answered with the envelope as a raw response, then the connection
 * is closed. Nothing is written when a response on this connection has
 * already started (it would corrupt it) or the socket cannot take it.
 */
export function clientErrorHandler (error: ConnectionError, socket: Socket): void {
  if (socket.destroyed || answered.has(socket)) return
  // Node's own handler checks the same: part of a response already went out on this connection.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy()
    return
  }
  const status = CLIENT_ERROR_STATUS[error.code ?? ''] ?? 400
  const reason = (error as ConnectionError & { reason?: unknown }).reason
  const message = CLIENT_ERROR_MESSAGE[status] ?? `Malformed HTTP request${typeof reason === 'string' && reason !== '' ? `: ${reason}` : ''}`
  const body = JSON.stringify(envelope(status, message, null))
  answered.add(socket)
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  // Closing at once with request bytes still unread would reset the connection and could lose the answer:
  // the socket keeps reading (and dropping) them until the client closes, or the linger ends.
  const linger = setTimeout(() => { socket.destroy() }, CLIENT_ERROR_LINGER_MS)
  linger.unref()
  socket.once('close', () => { clearTimeout(linger) })
}

/**
 * Server-level Fastify options the app needs from its host, from the config's
 * settings: store keys up to the configured length travel as path parameters
 * (Fastify caps those at 100 characters by default); malformed URLs and
 * requests the HTTP parser rejects are still answered in the envelope; and
 * timeouts, so a slow client cannot hold a connection as long as it likes.
 */
export function serverOptions (settings: ServerSettings = {}): Pick<FastifyServerOptions,
'routerOptions' | 'frameworkErrors' | 'clientErrorHandler' | 'bodyLimit' | 'requestTimeout' | 'keepAliveTimeout'> & { http: ServerOptions } {
  const requestTimeout = settings.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  return {
    // A percent-encoded UTF-8 byte takes up to 3 characters.
    routerOptions: { maxParamLength: (settings.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES) * 3 },
    bodyLimit: settings.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    frameworkErrors (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
      const status = error.statusCode ?? 400
      void reply.code(status).send(envelope(status, error.message, null))
    },
    clientErrorHandler,
    requestTimeout,
    keepAliveTimeout: settings.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
    // Node checks headersTimeout against requestTimeout when it creates the server, so both go here too.
    http: {
      requestTimeout,
      headersTimeout: settings.headersTimeoutMs ?? Math.min(DEFAULT_HEADERS_TIMEOUT_MS, requestTimeout),
      connectionsCheckingInterval: settings.connectionsCheckIntervalMs ?? DEFAULT_CONNECTIONS_CHECK_INTERVAL_MS
    }
  }
}

/**
 * The router matches a parameter with an empty segment (`/api/v1/projects/`),
 * but no route takes an empty id or key: such a path is an unknown route.
 */
const emptySegmentNotFound: onRequestHookHandler = function (request, reply, done) {
  const params = request.params as Record<string, string>
  for (const name in params) {
    if (params[name] === '') {
      reply.callNotFound()
      return
    }
  }
  done()
}

/** The shared schemas a response schema resolves its references against, less itself when it is one of them. */
function withoutOwnId (shared: Record<string, unknown>, schema: unknown): Record<string, Schema> {
  const id = (schema as { $id?: unknown }).$id
  if (typeof id !== 'string' || !Object.hasOwn(shared, id)) return shared as Record<string, Schema>
  const { [id]: _self, ...others } = shared
  return others as Record<string, Schema>
}

/** The whole service as one plugin. Register it with a prefix to embed it in another Fastify app. */
const app: FastifyPluginAsync<AppOptions> = async (fastify, opts) => {
  fastify.setValidatorCompiler(TypeBoxValidatorCompiler)
  addNamedSchemas(fastify)
  // Each route documents every status it can answer, and compiling all those serializers up
  // front doubled the time to the first answer; a serializer is compiled on its first use instead.
  fastify.setSerializerCompiler(({ schema }) => {
    let serialize: ((data: unknown) => string) | null = null
    return (data: unknown) => {
      serialize ??= fastJsonStringify(schema as Schema, { schema: withoutOwnId(fastify.getSchemas(), schema) })
      return serialize(data)
    }
  })
  await fastify.register(sensible)
  await fastify.register(configPlugin, opts)
  await fastify.register(storagePlugin, opts)
  await fastify.register(authPlugin)
  await fastify.register(envelopePlugin)
  await fastify.register(securityPlugin)
  if (opts.docs !== false) await fastify.register(docsPlugin, { prefix: opts.prefix })
  // Before the route folders' own hooks (the key checks): an empty id or key is an unknown route, not a wrong key.
  fastify.addHook('onRequest', emptySegmentNotFound)
  await fastify.register(statusRoutes)
  await fastify.register(projectRoutes, { prefix: '/api/v1/projects' })
  await fastify.register(projectSettingsRoutes, { prefix: '/api/v1/projects/:id' })
  await fastify.register(storeRoutes, { prefix: '/api/v1/projects/:id/store' })
  await fastify.register(keyRoutes, { prefix: '/api/v1/projects/:id/keys' })
  await fastify.register(txnRoutes, { prefix: '/api/v1/projects/:id/txn' })
}

export default app
