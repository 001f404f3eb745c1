import { parseArgs } from 'node:util'
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify'
import app, { serverOptions } from './app.js'
import { ConfigStore, resolveConfigPath } from './lib/config.js'
import { envelope } from './lib/envelope.js'
import { ConfigError, StorageError } from './lib/errors.js'

const USAGE = 'Usage: simple-kv [--config <file>] [--host <address>] [--port <number>]'

function fail (message: string, code: number): never {
  process.stderr.write(`simple-kv: ${message}\n`)
  process.exit(code)
}

function parsePort (text: string): number {
  const port = Number(text)
  if (!/^\d+$/.test(text) || port > 65535) fail(`invalid --port '${text}': expected 0 to 65535\n${USAGE}`, 2)
  return port
}

async function main (): Promise<void> {
  let values: { config?: string, host?: string, port?: string }
  try {
    ({ values } = parseArgs({
      options: { config: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' } },
      strict: true,
      allowPositionals: false
    }))
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2)
  }

  const { store } = await ConfigStore.load(resolveConfigPath(values.config))
  const settings = store.settings
  const fastify = Fastify({
    ...serverOptions(settings.maxKeyBytes),
    bodyLimit: settings.maxBodyBytes,
    logger: { level: settings.verbose ? 'debug' : 'info' },
    logController: new LogController({ disableRequestLogging: !settings.verbose }),
    // Malformed URLs never reach a route; answer them in the envelope too.
    frameworkErrors (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
      const status = error.statusCode ?? 400
      void reply.code(status).send(envelope(status, error.message, null))
    }
  })
  await fastify.register(app, { configStore: store })

  let closing = false
  const shutdown = (signal: string): void => {
    if (closing) process.exit(1)
    closing = true
    fastify.log.info({ signal }, 'shutting down')
    const timer = setTimeout(() => { process.exit(1) }, 10_000)
    timer.unref()
    fastify.close().then(() => process.exit(0), (err: unknown) => {
      fastify.log.error({ err }, 'error while shutting down')
      process.exit(1)
    })
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)

  await fastify.listen({
    host: values.host ?? settings.host,
    port: values.port === undefined ? settings.port : parsePort(values.port)
  })
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof StorageError) fail(err.message, 1)
  process.stderr.write(`simple-kv: failed to start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
