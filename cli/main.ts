import { ConfigError, StorageError } from '../lib/errors.js'
import { isMainModule } from '../lib/main-module.js'
import { VERSION } from '../lib/version.js'
import { parseCommandLine, USAGE, type ServeCommand } from './args.js'
import { init } from './commands/init.js'
import { keysRegenerate } from './commands/keys.js'
import { CliError, UsageError } from './errors.js'
import { processIo, type Io } from './io.js'

/** The message and exit code for an error a command ended with. */
export function describeFailure (err: unknown): { message: string, code: number } {
  if (err instanceof UsageError) return { message: `simple-kv: ${err.message}\n\n${USAGE}`, code: 2 }
  if (err instanceof CliError || err instanceof ConfigError || err instanceof StorageError) {
    return { message: `simple-kv: ${err.message}\n`, code: 1 }
  }
  return { message: `simple-kv: failed: ${(err as Error).stack ?? String(err)}\n`, code: 1 }
}

/** The command that starts the server; tests put a recorder in its place so that none starts. */
export type Serve = (cmd: ServeCommand, io: Io) => Promise<void>

/**
 * Run one command line (without the node and script paths). Returns the exit
 * code, or null once `serve` is up: the server then runs until a signal.
 */
export async function run (args: readonly string[], io: Io, startServing?: Serve): Promise<number | null> {
  try {
    const cmd = parseCommandLine(args)
    switch (cmd.name) {
      case 'help':
        io.stdout(USAGE)
        return 0
      case 'version':
        io.stdout(`simple-kv ${VERSION}\n`)
        return 0
      case 'init':
        return await init(cmd, io)
      case 'keys-regenerate':
        return await keysRegenerate(cmd, io)
      case 'migrate':
        // Loaded for migrate alone, like serve: it brings the Redis client.
        return await (await import('./commands/migrate.js')).migrate(cmd, io)
      case 'serve': {
        // Loaded for serve alone: the other commands need no web server and start faster without it.
        const serve = startServing ?? (await import('./commands/serve.js')).serve
        await serve(cmd, io)
        return null
      }
    }
  } catch (err) {
    const { message, code } = describeFailure(err)
    io.stderr(message)
    return code
  }
}

/**
 * The `simple-kv` program: bin/simple-kv.js, `node dist/server.js` and
 * `node dist/cli/main.js` all end here. Exits with the command's code; a
 * server that is up keeps the process running.
 */
export async function main (args: readonly string[], io: Io = processIo, exit: (code: number) => void = code => { process.exit(code) }): Promise<void> {
  const code = await run(args, io)
  // Exit at once rather than wait for the event loop: a failed start may leave handles behind.
  if (code !== null) exit(code)
}

if (isMainModule(import.meta.url)) void main(process.argv.slice(2))
