import type { Registry } from '../../lib/registry.js'
import { VERSION } from '../../lib/version.js'
import { ListenError, startServer, type StartedServer } from '../../server.js'
import { chooseLogFormat, type ServeCommand } from '../args.js'
import { formatBanner, type BannerInfo, type BannerProject } from '../banner.js'
import { CliError } from '../errors.js'
import type { Io } from '../io.js'

function urlFor (host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** The banner's table: every project the registry opened, in the config's order (local) or the order they were created (Redis). */
function projectRows (registry: Registry, configured: ReadonlyArray<{ id: string }>): BannerProject[] {
  const open = [...registry.projects()]
  const shared = registry.storage.engine !== 'local'
  const ids = shared ? open.map(p => p.id) : configured.map(p => p.id)
  return ids.flatMap(id => {
    const project = open.find(p => p.id === id)
    if (project === undefined) return []
    return [{ id, onDisk: project.store.persistent, ...(shared ? { storage: registry.storage.engine } : {}), auth: project.auth.enabled, keys: project.store.usage().keys }]
  })
}

function bannerInfo ({ fastify, configStore, configCreated, generatedKeys, registry }: StartedServer): BannerInfo {
  const address = fastify.server.address()
  const host = typeof address === 'object' && address !== null ? address.address : configStore.settings.host
  const port = typeof address === 'object' && address !== null ? address.port : configStore.settings.port
  const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return {
    version: VERSION,
    url: urlFor(host, port),
    localUrl: urlFor(local, port),
    docs: true,
    configFile: configStore.file ?? '(in memory)',
    configCreated,
    dataDir: registry.storage.engine === 'local' ? configStore.settings.storageDir : registry.storage.summary,
    systemAuth: registry.systemAuth.enabled,
    projects: projectRows(registry, configStore.config.projects ?? []),
    generatedKeys
  }
}

/** `serve`: start the server, then show where it listens and any new keys. It runs until a signal. */
export async function serve (cmd: ServeCommand, io: Io): Promise<void> {
  const tty = process.stdout.isTTY === true
  const color = tty && io.env.NO_COLOR === undefined
  let started: StartedServer
  try {
    started = await startServer({
      config: cmd.config,
      host: cmd.host,
      port: cmd.port,
      logLevel: cmd.logLevel,
      logFormat: chooseLogFormat(cmd.logFormat, tty),
      color,
      shutdownTimeoutMs: cmd.shutdownTimeoutMs
    })
  } catch (err) {
    if (err instanceof ListenError) throw new CliError(err.message)
    throw err
  }
  io.stdout(formatBanner(bannerInfo(started), { color }))
}
