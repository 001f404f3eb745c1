import { constants as osConstants } from 'node:os'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, type LogLevel } from 'fastify'
import pretty from 'pino-pretty'
import app, { serverOptions } from './app.js'
import { ConfigStore, resolveConfigPath } from './lib/config.js'
import { isMainModule } from './lib/main-module.js'
import type { GeneratedKey, Registry } from './lib/registry.js'

/** Headers that carry API keys: never written to a log, whatever a serializer or a hook logs. */
const REDACTED_PATHS = ['authorization', 'x-api-key', 'api-key'].flatMap(h => [
  `req.headers["${h}"]`, `request.headers["${h}"]`, `headers["${h}"]`
])

/** Log levels at which the debug request line is written. */
const REQUEST_LINE_LEVELS = new Set(['debug', 'trace'])

/**
 * One line per request, at debug level, with method, path, status and time.
 * The path drops the query string; keys never travel in the URL, only in headers.
 */
class RequestLog extends LogController {
  override incomingRequest (): void {}

  override routeNotFound (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    // At info and above there is no request line to build: skip the work on every request.
    if (error == null && !REQUEST_LINE_LEVELS.has(reply.log.level)) return
    const line = {
      method: request.method,
      path: request.url.split('?')[0],
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100
    }
    if (error != null) reply.log.error({ ...line, err: error }, 'request failed')
    else reply.log.debug(line, `${line.method} ${line.path} ${line.status} ${line.ms}ms`)
  }
}

export type LogFormat = 'pretty' | 'json'

function loggerOptions (level: LogLevel, format: LogFormat, color: boolean): NonNullable<FastifyServerOptions['logger']> {
  const base = { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }
  if (format === 'json') return base
  return {
    ...base,
    // The request line's message already says it all; its fields stay in the JSON format only.
    stream: pretty({
      colorize: color,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,reqId,method,path,status,ms',
      messageFormat: '{if reqId}[{reqId}] {end}{msg}',
      sync: true
    })
  }
}

/** How to run the standalone server; the command line's `serve` builds it from flags. */
export interface ServerOptions {
  /** Config file; default: $SIMPLE_KV_CONFIG, else ./config.json. */
  config?: string
  /** Listen address and port; default: the config's server_host and server_port. */
  host?: string
  port?: number
  /** Default: debug when the config's verbose_mode is on, else info. */
  logLevel?: LogLevel
  logFormat: LogFormat
  /** ANSI colours in the pretty log format. */
  color: boolean
  /** Time given to requests in flight on SIGINT or SIGTERM before their connections are closed. */
  shutdownTimeoutMs: number
}

/** A server that is up and listening; what the caller needs to tell the user about it. */
export interface StartedServer {
  fastify: FastifyInstance
  configStore: ConfigStore
  /** The config file did not exist and was written with the defaults. */
  configCreated: boolean
  /** Keys generated at start-up, to show once. */
  generatedKeys: GeneratedKey[]
  registry: Registry
}

/** The address cannot be listened on; the message names it and says why, in one line. */
export class ListenError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ListenError'
  }
}

/**
 * Run the standalone server in this process: load the config, listen, and on
 * SIGINT or SIGTERM finish the requests in flight, close the stores and exit
 * (a second signal exits at once). Resolves once it listens.
 */
export async function startServer (options: ServerOptions): Promise<StartedServer> {
  const { store, created } = await ConfigStore.load(resolveConfigPath(options.config))
  const settings = store.settings
  const level: LogLevel = options.logLevel ?? (settings.verbose ? 'debug' : 'info')
  const fastify = Fastify({
    ...serverOptions(settings),
    logger: loggerOptions(level, options.logFormat, options.color),
    logController: new RequestLog(),
    // Loading the stores is part of registering the app; a store of millions of keys can take longer than Fastify's 10 s default.
    pluginTimeout: 300_000
  })
  if (created) fastify.log.info({ file: store.file }, 'created a default config file')

  let closing = false
  const shutdown = (signal: NodeJS.Signals): void => {
    if (closing) {
      process.stderr.write(`simple-kv: second ${signal}: exiting now without waiting\n`)
      process.exit(128 + (osConstants.signals[signal] ?? 0))
    }
    closing = true
    // Stop accepting connections before saying so (fastify.close() below finds the listener closed, which it allows).
    fastify.server.close()
    fastify.log.info({ signal }, 'shutting down: no new connections, finishing requests in flight')
    const force = setTimeout(() => {
      fastify.log.warn(`requests still in flight after ${options.shutdownTimeoutMs / 1000}s: closing their connections`)
      fastify.server.closeAllConnections()
      setTimeout(() => {
        fastify.log.error('stores did not close in time: exiting')
        process.exit(1)
      }, 5000).unref()
    }, options.shutdownTimeoutMs)
    force.unref()
    fastify.close().then(() => {
      fastify.log.info('stopped: stores flushed and closed')
      process.exit(0)
    }, (err: unknown) => {
      fastify.log.error({ err }, 'error while shutting down')
      process.exit(1)
    })
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)

  const generatedKeys: GeneratedKey[] = []
  let registry: Registry | undefined
  await fastify.register(app, { configStore: store, onGeneratedKeys: keys => { generatedKeys.push(...keys) }, onRegistry: opened => { registry = opened } })
  await fastify.ready()
  // The storage plugin hands the registry over while the app registers, so it is set once ready.
  if (registry === undefined) throw new Error('the app did not hand over its registry')
  const host = options.host ?? settings.host
  const port = options.port ?? settings.port
  try {
    await fastify.listen({ host, port })
  } catch (err) {
    await fastify.close()
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') throw new ListenError(`cannot listen on ${host}:${port}: the address is already in use`)
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new ListenError(`cannot listen on ${host}:${port}: no such address on this machine`)
    if (code === 'EACCES') throw new ListenError(`cannot listen on ${host}:${port}: permission denied`)
    throw err
  }
  return { fastify, configStore: store, configCreated: created, generatedKeys, registry }
}

// Run directly (`node dist/server.js …`, as the Dockerfile and the docs do), this file is the
// whole command line, every command included. Imported lazily and not awaited, so that importing
// this file never loads the CLI, and the CLI's own import of it finds it fully evaluated.
if (isMainModule(import.meta.url)) {
  void import('./cli/main.js').then(async cli => { await cli.main(process.argv.slice(2)) })
}
