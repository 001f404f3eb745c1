import { parseArgs } from 'node:util'
import { isValidProjectId, PROJECT_ID_RULE } from '../lib/config.js'
import { REDIS_KEY_PREFIX_PATTERN } from '../schemas/config.js'
import { UsageError } from './errors.js'

export const USAGE = `Usage:
  simple-kv [serve] [options]            run the server (the default command)
  simple-kv init [--config <file>]       write a default config and print its new keys
  simple-kv keys regenerate <project>    give a project a new key (server stopped)
  simple-kv keys regenerate --system     give the system scope a new key (server stopped)
  simple-kv migrate --to redis|local     copy projects, keys and records between the local
                                         folder and Redis (server on the folder stopped)

Migrate options:
      --to <engine>            redis: the config's projects and store files into Redis;
                               local: the projects in Redis into the folder and config
      --redis-url <url>        Redis to use (default: $SIMPLE_KV_REDIS_URL, else the
                               config's system.storage.redis.url)
      --key-prefix <prefix>    key prefix in Redis (default: the config's, else skv)
      --project <id>           copy only this project (repeatable; default: all)
      --overwrite              replace projects that exist on the target side

Options:
  -c, --config <file>          config file (default: $SIMPLE_KV_CONFIG, else ./config.json)
      --host <address>         address to listen on (overrides server_host)
  -p, --port <number>          TCP port, 0 to 65535 (overrides server_port)
      --log-level <level>      fatal, error, warn, info, debug, trace or silent
                               (default: info; debug when verbose_mode is on)
      --log-format <format>    auto, pretty or json (default: auto, which is pretty
                               on a terminal and JSON lines otherwise)
      --shutdown-timeout <s>   seconds to wait for requests in flight on SIGINT or
                               SIGTERM before closing their connections (default: 8)
  -h, --help                   show this help
  -v, --version                show the version
`

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const
export type LogFormat = typeof LOG_FORMATS[number]
export const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 8

export interface ServeCommand {
  name: 'serve'
  config?: string
  host?: string
  port?: number
  logLevel?: LogLevel
  logFormat: LogFormat
  shutdownTimeoutMs: number
}

export type KeyTarget = { scope: 'system' } | { scope: 'project', id: string }

export interface MigrateCommand {
  name: 'migrate'
  to: 'redis' | 'local'
  config?: string
  redisUrl?: string
  keyPrefix?: string
  /** Empty: every project of the source. */
  projects: string[]
  overwrite: boolean
}

export type Command =
  | ServeCommand
  | MigrateCommand
  | { name: 'init', config?: string }
  | { name: 'keys-regenerate', config?: string, target: KeyTarget }
  | { name: 'help' }
  | { name: 'version' }

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  system: { type: 'boolean' },
  to: { type: 'string' },
  'redis-url': { type: 'string' },
  'key-prefix': { type: 'string' },
  project: { type: 'string' },
  overwrite: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' }
} as const

type OptionName = keyof typeof OPTIONS

const ALLOWED: Record<'serve' | 'init' | 'keys' | 'migrate', ReadonlySet<OptionName>> = {
  serve: new Set(['config', 'host', 'port', 'log-level', 'log-format', 'shutdown-timeout', 'help', 'version']),
  init: new Set(['config', 'help', 'version']),
  keys: new Set(['config', 'system', 'help', 'version']),
  migrate: new Set(['config', 'to', 'redis-url', 'key-prefix', 'project', 'overwrite', 'help', 'version'])
}

export const MIGRATE_TARGETS = ['redis', 'local'] as const

function isOptionName (name: string): name is OptionName {
  return Object.hasOwn(OPTIONS, name)
}

function oneOf<T extends string> (flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T
  throw new UsageError(`invalid ${flag} '${value}': expected one of ${allowed.join(', ')}`)
}

function parsePort (value: string): number {
  const port = Number(value)
  if (!/^\d{1,5}$/.test(value) || port > 65535) throw new UsageError(`invalid --port '${value}': expected a whole number from 0 to 65535`)
  return port
}

function parseSeconds (value: string): number {
  const seconds = Number(value)
  if (!/^\d+(\.\d+)?$/.test(value) || seconds <= 0 || seconds > 3600) {
    throw new UsageError(`invalid --shutdown-timeout '${value}': expected a number of seconds above 0, at most 3600`)
  }
  return Math.round(seconds * 1000)
}

/**
 * Read the command line (without the node and script paths). Throws UsageError
 * with a one-line message for anything it does not understand.
 */
export function parseCommandLine (args: readonly string[]): Command {
  // strict: false so that every mistake gets our own one-line message; checked below.
  const { tokens } = parseArgs({ args: [...args], options: OPTIONS, strict: false, allowPositionals: true, tokens: true })
  const positionals: string[] = []
  const values: Partial<Record<OptionName, string | true>> = {}
  const seen: Array<{ name: OptionName, raw: string }> = []
  const projects: string[] = []
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value)
    } else if (token.kind === 'option') {
      if (!isOptionName(token.name)) throw new UsageError(`unknown option '${token.rawName}'`)
      const spec = OPTIONS[token.name]
      if (spec.type === 'boolean') {
        if (token.value !== undefined) throw new UsageError(`option ${token.rawName} takes no value`)
        values[token.name] = true
      } else {
        // parseArgs in loose mode takes the next argument even when it looks like an option.
        if (token.value === undefined || token.value === '' || (token.inlineValue === false && token.value.startsWith('-'))) {
          throw new UsageError(`option ${token.rawName} needs a value`)
        }
        // --project may be given several times; any other option keeps its last value.
        if (token.name === 'project') projects.push(token.value)
        values[token.name] = token.value
      }
      seen.push({ name: token.name, raw: token.rawName })
    }
  }

  const word = positionals[0]
  let command: 'serve' | 'init' | 'keys' | 'migrate' | 'help'
  if (word === undefined || word === 'serve') command = 'serve'
  else if (word === 'init' || word === 'keys' || word === 'migrate' || word === 'help') command = word
  else throw new UsageError(`unknown command '${word}'`)

  if (command === 'help' || values.help === true) return { name: 'help' }
  for (const { name, raw } of seen) {
    if (!ALLOWED[command].has(name)) throw new UsageError(`option ${raw} does not apply to '${command === 'keys' ? 'keys regenerate' : command}'`)
  }
  if (values.version === true) return { name: 'version' }
  const config = values.config as string | undefined

  if (command === 'serve') {
    if (positionals.length > (word === undefined ? 0 : 1)) throw new UsageError(`unexpected argument '${positionals[word === undefined ? 0 : 1]}'`)
    const cmd: ServeCommand = {
      name: 'serve',
      logFormat: values['log-format'] === undefined ? 'auto' : oneOf('--log-format', values['log-format'] as string, LOG_FORMATS),
      shutdownTimeoutMs: values['shutdown-timeout'] === undefined
        ? DEFAULT_SHUTDOWN_TIMEOUT_SECONDS * 1000
        : parseSeconds(values['shutdown-timeout'] as string)
    }
    if (config !== undefined) cmd.config = config
    if (values.host !== undefined) cmd.host = values.host as string
    if (values.port !== undefined) cmd.port = parsePort(values.port as string)
    if (values['log-level'] !== undefined) cmd.logLevel = oneOf('--log-level', values['log-level'] as string, LOG_LEVELS)
    return cmd
  }

  if (command === 'init') {
    if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`)
    return config === undefined ? { name: 'init' } : { name: 'init', config }
  }

  if (command === 'migrate') return migrateCommand(positionals, values, projects, config)

  const sub = positionals[1]
  if (sub === undefined) throw new UsageError("missing subcommand: use 'keys regenerate <project>' or 'keys regenerate --system'")
  if (sub !== 'regenerate') throw new UsageError(`unknown subcommand 'keys ${sub}'`)
  const id = positionals[2]
  if (positionals.length > 3) throw new UsageError(`unexpected argument '${positionals[3]}'`)
  let target: KeyTarget
  if (values.system === true) {
    if (id !== undefined) throw new UsageError('give either a project id or --system, not both')
    target = { scope: 'system' }
  } else {
    if (id === undefined) throw new UsageError('missing project id: use \'keys regenerate <project>\' or \'keys regenerate --system\'')
    if (!isValidProjectId(id)) throw new UsageError(`invalid project id '${id}': ${PROJECT_ID_RULE}`)
    target = { scope: 'project', id }
  }
  return config === undefined ? { name: 'keys-regenerate', target } : { name: 'keys-regenerate', config, target }
}

function migrateCommand (positionals: string[], values: Partial<Record<OptionName, string | true>>, projects: string[], config: string | undefined): MigrateCommand {
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`)
  if (values.to === undefined) throw new UsageError('missing --to: use \'migrate --to redis\' or \'migrate --to local\'')
  const cmd: MigrateCommand = {
    name: 'migrate',
    to: oneOf('--to', values.to as string, MIGRATE_TARGETS),
    projects: [],
    overwrite: values.overwrite === true
  }
  for (const id of projects) {
    if (!isValidProjectId(id)) throw new UsageError(`invalid project id '${id}': ${PROJECT_ID_RULE}`)
    if (!cmd.projects.includes(id)) cmd.projects.push(id)
  }
  const url = values['redis-url'] as string | undefined
  if (url !== undefined) {
    if (!/^rediss?:\/\//.test(url)) throw new UsageError('invalid --redis-url: expected redis://[user:password@]host[:port][/db] or rediss://…')
    cmd.redisUrl = url
  }
  const prefix = values['key-prefix'] as string | undefined
  if (prefix !== undefined) {
    if (!new RegExp(REDIS_KEY_PREFIX_PATTERN).test(prefix)) throw new UsageError(`invalid --key-prefix '${prefix}': 1 to 64 letters, digits, '_', '.' or '-'`)
    cmd.keyPrefix = prefix
  }
  if (config !== undefined) cmd.config = config
  return cmd
}

/** 'auto' means pretty on a terminal, JSON lines everywhere else (files, pipes, log collectors). */
export function chooseLogFormat (format: LogFormat, stdoutIsTTY: boolean): 'pretty' | 'json' {
  if (format !== 'auto') return format
  return stdoutIsTTY ? 'pretty' : 'json'
}
