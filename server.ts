import { constants as osConstants } from 'node:os'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import pretty from 'pino-pretty'
import app, { serverOptions } from './app.js'
import { formatBanner, type BannerInfo } from './lib/banner.js'
import { chooseLogFormat, CliError, run, type LogLevel, type ServeCommand } from './lib/cli.js'
import { ConfigStore, resolveConfigPath } from './lib/config.js'
import type { GeneratedKey, Registry } from './lib/registry.js'
import { VERSION } from './lib/version.js'

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

function loggerOptions (level: LogLevel, format: 'pretty' | 'json', color: boolean): NonNullable<FastifyServerOptions['logger']> {
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

function useColor (): boolean {
  return process.stdout.isTTY === true && process.env.NO_COLOR === undefined
}

function urlFor (host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}

function bannerInfo (fastify: FastifyInstance, kv: Registry | undefined, store: ConfigStore, created: boolean, keys: GeneratedKey[]): BannerInfo {
  const address = fastify.server.address()
  const host = typeof address === 'object' && address !== null ? address.address : store.settings.host
  const port = typeof address === 'object' && address !== null ? address.port : store.settings.port
  const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return {
    version: VERSION,
    url: urlFor(host, port),
    localUrl: urlFor(local, port),
    docs: true,
    configFile: store.file ?? '(in memory)',
    configCreated: created,
    dataDir: store.settings.storageDir,
    systemAuth: store.config.system?.authentication?.enabled ?? true,
    projects: (store.config.projects ?? []).map(p => {
      const project = kv?.project(p.id)
      return {
        id: p.id,
        onDisk: project?.store.onDisk ?? (p.storage?.on_disk ?? true),
        auth: p.authentication?.enabled ?? true,
        keys: project?.store.size ?? 0
      }
    }),
    generatedKeys: keys
  }
}

async function serve (cmd: ServeCommand): Promise<void> {
  const { store, created } = await ConfigStore.load(resolveConfigPath(cmd.config))
  const settings = store.settings
  const color = useColor()
  const level: LogLevel = cmd.logLevel ?? (settings.verbose ? 'debug' : 'info')
  const fastify = Fastify({
    ...serverOptions(settings),
    bodyLimit: settings.maxBodyBytes,
    logger: loggerOptions(level, chooseLogFormat(cmd.logFormat, process.stdout.isTTY === true), color),
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
    fastify.log.info({ signal }, 'shutting down: no new connections, finishing requests in flight')
    const force = setTimeout(() => {
      fastify.log.warn(`requests still in flight after ${cmd.shutdownTimeoutMs / 1000}s: closing their connections`)
      fastify.server.closeAllConnections()
      setTimeout(() => {
        fastify.log.error('stores did not close in time: exiting')
        process.exit(1)
      }, 5000).unref()
    }, cmd.shutdownTimeoutMs)
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

  const generated: GeneratedKey[] = []
  let kv: Registry | undefined
  await fastify.register(app, { configStore: store, onGeneratedKeys: keys => { generated.push(...keys) }, onRegistry: registry => { kv = registry } })
  await fastify.ready()
  try {
    await fastify.listen({ host: cmd.host ?? settings.host, port: cmd.port ?? settings.port })
  } catch (err) {
    await fastify.close()
    const code = (err as NodeJS.ErrnoException).code
    const where = `${cmd.host ?? settings.host}:${cmd.port ?? settings.port}`
    if (code === 'EADDRINUSE') throw new CliError(`cannot listen on ${where}: the address is already in use`)
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new CliError(`cannot listen on ${where}: no such address on this machine`)
    if (code === 'EACCES') throw new CliError(`cannot listen on ${where}: permission denied`)
    throw err
  }
  process.stdout.write(formatBanner(bannerInfo(fastify, kv, store, created, generated), { color }))
}

const io = {
  stdout: (text: string) => { process.stdout.write(text) },
  stderr: (text: string) => { process.stderr.write(text) },
  env: process.env
}

const code = await run(process.argv.slice(2), io, serve)
// Exit at once rather than wait for the event loop: a failed start may leave handles behind.
if (code !== null) process.exit(code)
