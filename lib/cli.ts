import { access, readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigStore, isValidProjectId, PROJECT_ID_RULE, mergeAuthentication, resolveConfigPath, type AuthenticationConfig, type KvConfig } from './config.js'
import { formatGeneratedKeys } from './console.js'
import { ConfigError, StorageError } from './errors.js'
import { newKeyFields } from './keys.js'
import { DirLock, LOCK_FILE_NAME } from './lock.js'
import type { GeneratedKey } from './registry.js'
import { VERSION } from './version.js'

export const USAGE = `Usage:
  simple-kv [serve] [options]            run the server (the default command)
  simple-kv init [--config <file>]       write a default config and print its new keys
  simple-kv keys regenerate <project>    give a project a new key (server stopped)
  simple-kv keys regenerate --system     give the system scope a new key (server stopped)

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

export type Command =
  | ServeCommand
  | { name: 'init', config?: string }
  | { name: 'keys-regenerate', config?: string, target: KeyTarget }
  | { name: 'help' }
  | { name: 'version' }

/** A mistake in the command line: one line for stderr, followed by the usage; exit code 2. */
export class UsageError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** A command that was understood but cannot be done (file exists, server running, …); exit code 1. */
export class CliError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CliError'
  }
}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  system: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' }
} as const

type OptionName = keyof typeof OPTIONS

const ALLOWED: Record<'serve' | 'init' | 'keys', ReadonlySet<OptionName>> = {
  serve: new Set(['config', 'host', 'port', 'log-level', 'log-format', 'shutdown-timeout', 'help', 'version']),
  init: new Set(['config', 'help', 'version']),
  keys: new Set(['config', 'system', 'help', 'version'])
}

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
        values[token.name] = token.value
      }
      seen.push({ name: token.name, raw: token.rawName })
    }
  }

  const word = positionals[0]
  let command: 'serve' | 'init' | 'keys' | 'help'
  if (word === undefined || word === 'serve') command = 'serve'
  else if (word === 'init' || word === 'keys' || word === 'help') command = word
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

/** 'auto' means pretty on a terminal, JSON lines everywhere else (files, pipes, log collectors). */
export function chooseLogFormat (format: LogFormat, stdoutIsTTY: boolean): 'pretty' | 'json' {
  if (format !== 'auto') return format
  return stdoutIsTTY ? 'pretty' : 'json'
}

async function exists (file: string): Promise<boolean> {
  try {
    await access(file)
    return true
  } catch {
    return false
  }
}

function scopeAuth (config: KvConfig, target: KeyTarget): AuthenticationConfig | undefined {
  return target.scope === 'system'
    ? config.system?.authentication
    : config.projects?.find(p => p.id === target.id)?.authentication
}

function scopeName (target: KeyTarget): string {
  return target.scope === 'system' ? 'the system scope' : `project '${target.id}'`
}

/**
 * Give one scope a new key in the config file: only its hash is written (and
 * the plain key too when save_api_key_to_config is on). Returns the new key.
 */
export async function writeNewKey (store: ConfigStore, target: KeyTarget): Promise<GeneratedKey> {
  const config = store.config
  if (target.scope === 'project' && store.project(target.id) === undefined) {
    throw new CliError(`project '${target.id}' is not in ${store.file ?? 'the config'}`)
  }
  const auth = scopeAuth(config, target)
  if ((auth?.enabled ?? true) === false) {
    throw new CliError(`authentication is disabled for ${scopeName(target)}, so it has no key; enable it in ${store.file ?? 'the config'} first`)
  }
  const { key, fields } = await newKeyFields(auth)
  await store.update(draft => { mergeAuthentication(draft, target.scope === 'system' ? null : target.id, fields) })
  return target.scope === 'system' ? { scope: 'system', id: 'system', key } : { scope: 'project', id: target.id, key }
}

/** `init`: write the default config with a fresh key for every scope. Refuses to touch an existing file. */
export async function initConfig (configPath?: string, env: NodeJS.ProcessEnv = process.env): Promise<{ file: string, keys: GeneratedKey[] }> {
  const file = resolveConfigPath(configPath, env)
  if (await exists(file)) {
    throw new CliError(`${file} already exists; to replace a key use 'simple-kv keys regenerate <project>' or '--system'`)
  }
  const { store } = await ConfigStore.load(file)
  const keys: GeneratedKey[] = []
  if (store.config.system?.authentication?.enabled ?? true) keys.push(await writeNewKey(store, { scope: 'system' }))
  for (const project of store.config.projects ?? []) {
    if (project.authentication?.enabled ?? true) keys.push(await writeNewKey(store, { scope: 'project', id: project.id }))
  }
  return { file, keys }
}

/** `keys regenerate`: only while no server runs on this config, since a running one would keep the old key. */
export async function regenerateKeyInFile (configPath: string | undefined, target: KeyTarget, env: NodeJS.ProcessEnv = process.env): Promise<{ file: string, key: GeneratedKey }> {
  const file = resolveConfigPath(configPath, env)
  if (!await exists(file)) throw new CliError(`${file} does not exist; create it with 'simple-kv init'`)
  const { store } = await ConfigStore.load(file)
  return { file, key: await whileNoServerRuns(store, async () => await writeNewKey(store, target)) }
}

function probeAddress (host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::' || host === '[::]') return '::1'
  return host.replace(/^\[(.*)\]$/, '$1')
}

/** Whether a Simple KV server answers GET /health at host:port (any other program does not count). */
export async function answersHealth (host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return await new Promise(resolve => {
    const req = httpRequest({ host: probeAddress(host), port, path: '/health', method: 'GET', timeout: timeoutMs, agent: false }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { if (body.length < 4096) body += chunk })
      res.on('end', () => {
        try {
          const parsed = JSON.parse(body) as Record<string, unknown>
          resolve(res.statusCode === 200 && parsed.status_code === 200 && parsed.message === 'OK' && 'System' in parsed)
        } catch {
          resolve(false)
        }
      })
      res.on('error', () => { resolve(false) })
    })
    req.on('timeout', () => { req.destroy() })
    req.on('error', () => { resolve(false) })
    req.end()
  })
}

/** The pid in a storage folder's lock file, if it can be read. */
async function lockHolder (dir: string): Promise<number | null> {
  try {
    const owner = JSON.parse(await readFile(join(dir, LOCK_FILE_NAME), 'utf8')) as { pid?: unknown }
    return typeof owner.pid === 'number' ? owner.pid : null
  } catch {
    return null
  }
}

const USE_THE_API = 'stop it first, or use the API while it runs (POST /api/v1/projects/<id>/config/regenerate-api-key)'

/**
 * Run `edit` on the config file only while no server runs on it: a running
 * server keeps the config in memory, so it would go on accepting the old key
 * and overwrite the change on its next save. The one place that decides it:
 * a Simple KV server answering on the config's host and port, or a live
 * process holding the storage folder's lock. The lock is held during the
 * edit, so a server cannot start halfway through it.
 */
export async function whileNoServerRuns<T> (store: ConfigStore, edit: () => Promise<T>): Promise<T> {
  const { host, port, storageDir } = store.settings
  const file = store.file ?? 'this config'
  if (port !== 0 && await answersHealth(host, port)) {
    throw new CliError(`a Simple KV server is running on ${file} (it answers on ${host}:${port}); ${USE_THE_API}`)
  }
  let lock: DirLock
  try {
    lock = await DirLock.acquire(storageDir)
  } catch (err) {
    if (!(err instanceof StorageError)) throw err
    const pid = await lockHolder(storageDir)
    if (pid === null) throw err
    throw new CliError(`a Simple KV server is running on ${file} (pid ${pid} holds ${storageDir}); ${USE_THE_API}`)
  }
  try {
    return await edit()
  } finally {
    await lock.release()
  }
}

/** Where the command line writes; the process's streams, or a capture in tests. */
export interface Io {
  stdout: (text: string) => void
  stderr: (text: string) => void
  env: NodeJS.ProcessEnv
}

/** The message and exit code for an error a command ended with. */
export function describeFailure (err: unknown): { message: string, code: number } {
  if (err instanceof UsageError) return { message: `simple-kv: ${err.message}\n\n${USAGE}`, code: 2 }
  if (err instanceof CliError || err instanceof ConfigError || err instanceof StorageError) return { message: `simple-kv: ${err.message}\n`, code: 1 }
  return { message: `simple-kv: failed: ${(err as Error).stack ?? String(err)}\n`, code: 1 }
}

/**
 * Run one command line. Returns the exit code, or null once `serve` is up
 * (the server then runs until a signal). `serve` is passed in so this file
 * stays free of the web framework.
 */
export async function run (args: readonly string[], io: Io, serve: (cmd: ServeCommand) => Promise<void>): Promise<number | null> {
  try {
    const cmd = parseCommandLine(args)
    switch (cmd.name) {
      case 'help':
        io.stdout(USAGE)
        return 0
      case 'version':
        io.stdout(`simple-kv ${VERSION}\n`)
        return 0
      case 'init': {
        const { file, keys } = await initConfig(cmd.config, io.env)
        io.stdout(`Wrote ${file}\n`)
        if (keys.length > 0) io.stdout(formatGeneratedKeys(keys))
        io.stdout(`Start the server with: simple-kv --config ${file}\n`)
        return 0
      }
      case 'keys-regenerate': {
        const { file, key } = await regenerateKeyInFile(cmd.config, cmd.target, io.env)
        io.stdout(`Updated ${file}; the old key no longer works.\n`)
        io.stdout(formatGeneratedKeys([key]))
        return 0
      }
      case 'serve':
        await serve(cmd)
        return null
    }
  } catch (err) {
    const { message, code } = describeFailure(err)
    io.stderr(message)
    return code
  }
}
