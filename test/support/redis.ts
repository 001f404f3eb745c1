// Real Redis servers for the tests and the bench: `redis-server` spawned
// directly (never daemonized, never a mock) on 127.0.0.1, each in a temp
// folder of its own, and never left running after the process that started it.
//
// Three guards against orphans, because a test process can end in three ways:
// - the owner's teardown (option `t`, or the root tap for the shared servers)
//   stops the server cleanly when the test ends, pass or fail;
// - a process 'exit' handler SIGKILLs whatever is still running, synchronously;
// - when util-linux `setpriv` is there, the server is started through it with
//   a parent-death signal, so the kernel SIGKILLs it even when the test process
//   itself is SIGKILLed (as tap does to a test file that times out).

import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, HOST } from './net.js'
import { makeTempDir, removeDir, type Teardown } from './temp.js'

export type AppendFsync = 'always' | 'everysec' | 'no'

export interface RedisOptions {
  /** Default true: the engine's durability rests on the AOF. */
  appendonly?: boolean
  /** Default 'always': an acknowledged write survives a SIGKILL. */
  appendfsync?: AppendFsync
  /** `maxmemory-policy`; Redis's own default (noeviction) when not given. */
  maxmemoryPolicy?: string
  /** `maxmemory`, as Redis reads it ('10mb', '0'); unlimited when not given. */
  maxmemory?: string
  /** Default: a free port (and another one if that one is taken by the time Redis binds it). */
  port?: number
  /** Default: a fresh temp folder, removed when the server is disposed of or the process ends. */
  dir?: string
  /** Sets `requirepass`; `cli()` and the readiness probe then authenticate. */
  requirePass?: string
  /** More `--name value` arguments for redis-server, after the ones above. */
  extraArgs?: string[]
  /** The test that owns the server: it is stopped, and its temp folder removed, when that test ends. */
  t?: Teardown
  /** Wall-time bound on a start or restart (default 60 s: the machine can be ten times slower than idle). */
  startTimeoutMs?: number
}

const DEFAULT_START_TIMEOUT_MS = 60_000
/** After this long a SIGTERMed server is SIGKILLed: its AOF is fsynced on every write anyway. */
const STOP_KILL_AFTER_MS = 30_000
/** Wall-time bound on one redis-cli run. */
const CLI_TIMEOUT_MS = 60_000
const LOG_NAME = 'redis.log'

/** Every server whose process may be running; the 'exit' handler kills them all. */
const live = new Set<RedisServer>()
/** Temp folders made here and not removed yet; the 'exit' handler removes them. */
const ownedDirs = new Set<string>()
let exitHandlerInstalled = false

function installExitHandler (): void {
  if (exitHandlerInstalled) return
  exitHandlerInstalled = true
  process.on('exit', () => {
    for (const server of live) server.killNow()
    for (const dir of ownedDirs) {
      try {
        removeDir(dir)
      } catch {
        // best effort: a server just SIGKILLed may still be closing files there
      }
    }
  })
}

let pdeathsig: boolean | undefined
/** Whether `setpriv --pdeathsig` works here (util-linux; Linux only). */
function canUsePdeathsig (): boolean {
  if (pdeathsig === undefined) {
    const probe = spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 30_000 })
    pdeathsig = probe.error === undefined && probe.status === 0
  }
  return pdeathsig
}

function isAlive (child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** The last `lines` lines of `file`, for error messages. */
function tailOf (file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log written)'
  }
}

/** `args` as one RESP request. */
function respCommand (...args: string[]): string {
  return `*${args.length}\r\n` + args.map(a => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')
}

/**
 * One raw connection: (AUTH,) PING, INFO server, QUIT, read to the close.
 * Ready means PONG (not LOADING while the AOF replays) from a server whose
 * process_id is `pid`: a port taken by someone else's server answers too.
 */
async function probe (port: number, pid: number, password: string | undefined): Promise<{ ready: boolean, reply: string }> {
  return await new Promise(resolve => {
    let reply = ''
    const socket = connect({ host: HOST, port })
    socket.setEncoding('utf8')
    socket.setTimeout(5000, () => { socket.destroy(new Error('no answer in 5 s')) })
    socket.on('connect', () => {
      const auth = password === undefined ? '' : respCommand('AUTH', password)
      socket.write(auth + respCommand('PING') + respCommand('INFO', 'server') + respCommand('QUIT'))
    })
    socket.on('data', (s: string) => { reply += s })
    socket.on('error', err => { resolve({ ready: false, reply: err.message }) })
    socket.on('close', () => {
      const ownPid = new RegExp(`\\bprocess_id:${pid}\\r?\\n`).test(reply)
      const error = reply.split('\r\n').find(line => line.startsWith('-'))
      let summary = error ?? (ownPid ? reply.slice(0, 200) : 'the server answering is not this process')
      if (reply === '') summary = 'connection closed without a reply'
      resolve({ ready: reply.includes('+PONG\r\n') && ownPid, reply: summary })
    })
  })
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** `redis-cli -h 127.0.0.1 -p port <args>`, to completion; never rejects. */
export async function runRedisCli (port: number, args: string[], password?: string): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env }
  // REDISCLI_AUTH rather than -a: no warning on stderr, no password in `ps`.
  if (password === undefined) delete env.REDISCLI_AUTH
  else env.REDISCLI_AUTH = password
  return await new Promise(resolve => {
    execFile('redis-cli', ['-h', HOST, '-p', String(port), ...args], { env, timeout: CLI_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      resolve({ code, stdout, stderr: err !== null && typeof err.code !== 'number' ? `${stderr}${err.message}` : stderr })
    })
  })
}

/** redis-cli's output without its final newline: values keep their own whitespace. */
function chompOne (s: string): string {
  return s.endsWith('\n') ? s.slice(0, -1) : s
}

/** One redis-server process, restartable on the same port and folder. */
export class RedisServer {
  readonly port: number
  readonly dir: string
  readonly logPath: string
  readonly password: string | undefined
  /** The whole redis-server command line after the program name. */
  readonly args: readonly string[]
  readonly #ownsDir: boolean
  readonly #startTimeoutMs: number
  #child: ChildProcess | null = null
  /** Resolves when the process has ended; with the error when it could not be spawned at all. */
  #exit: Promise<Error | undefined> = Promise.resolve(undefined)
  #disposed = false

  /** Use `startRedis()`. */
  constructor (port: number, dir: string, ownsDir: boolean, opts: RedisOptions) {
    this.port = port
    this.dir = dir
    this.#ownsDir = ownsDir
    this.logPath = join(dir, LOG_NAME)
    this.password = opts.requirePass
    this.#startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
    const args = [
      '--bind', HOST,
      '--port', String(port),
      '--dir', dir,
      '--logfile', this.logPath,
      '--daemonize', 'no',
      '--protected-mode', 'yes',
      // No RDB snapshots: the AOF (or nothing) is the only persistence.
      '--save', '',
      '--appendonly', opts.appendonly === false ? 'no' : 'yes',
      '--appendfsync', opts.appendfsync ?? 'always'
    ]
    if (opts.maxmemoryPolicy !== undefined) args.push('--maxmemory-policy', opts.maxmemoryPolicy)
    if (opts.maxmemory !== undefined) args.push('--maxmemory', opts.maxmemory)
    if (opts.requirePass !== undefined) args.push('--requirepass', opts.requirePass)
    this.args = [...args, ...(opts.extraArgs ?? [])]
  }

  /** `redis://127.0.0.1:<port>`, with `:<password>@` when the server requires one. */
  get url (): string {
    const auth = this.password === undefined ? '' : `:${encodeURIComponent(this.password)}@`
    return `redis://${auth}${HOST}:${this.port}`
  }

  /** The running process's id (a restart changes it); the last one after it ended. */
  get pid (): number {
    if (this.#child?.pid === undefined) throw new Error('redis-server was never started')
    return this.#child.pid
  }

  get running (): boolean {
    return this.#child !== null && isAlive(this.#child)
  }

  /** The last lines of the server's log (its stdout and stderr go there too). */
  logTail (lines = 30): string {
    return tailOf(this.logPath, lines)
  }

  /** Spawn redis-server and wait until it answers PING; on failure it is killed and the error carries its log's tail. */
  async start (): Promise<void> {
    if (this.#disposed) throw new Error('this Redis server was disposed of')
    if (this.running) throw new Error(`redis-server on port ${this.port} is already running`)
    installExitHandler()
    // stdout and stderr append to the log Redis itself appends to: a bad option is reported
    // on stderr before the log file is opened, and must show up in the error too.
    const fd = openSync(this.logPath, 'a')
    let child: ChildProcess
    try {
      child = canUsePdeathsig()
        ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'redis-server', ...this.args], { stdio: ['ignore', fd, fd] })
        : spawn('redis-server', [...this.args], { stdio: ['ignore', fd, fd] })
    } finally {
      closeSync(fd)
    }
    this.#child = child
    live.add(this)
    this.#exit = new Promise(resolve => {
      child.on('error', err => {
        if (this.#child === child) live.delete(this)
        resolve(err)
      })
      child.on('close', () => {
        if (this.#child === child) live.delete(this)
        resolve(undefined)
      })
    })
    try {
      await this.#waitUntilReady(child)
    } catch (err) {
      await this.kill()
      throw err
    }
    // Never keeps the test process alive by itself: the 'exit' handler (or the teardown) ends it.
    child.unref()
  }

  async #waitUntilReady (child: ChildProcess): Promise<void> {
    const deadline = Date.now() + this.#startTimeoutMs
    let last = 'no answer yet'
    while (Date.now() < deadline) {
      if (!isAlive(child) || child.pid === undefined) {
        const spawnError = await this.#exit
        if (spawnError !== undefined) throw new Error(`could not run redis-server: ${spawnError.message}`)
        throw new Error(`redis-server on port ${this.port} exited (${child.exitCode ?? child.signalCode ?? 'spawn error'}) before answering PING (last: ${last})\n--- ${this.logPath} ---\n${this.logTail()}`)
      }
      const answer = await probe(this.port, child.pid, this.password)
      if (answer.ready) return
      last = answer.reply
      await sleep(25)
    }
    throw new Error(`redis-server on port ${this.port} did not answer PING within ${this.#startTimeoutMs} ms (last: ${last})\n--- ${this.logPath} ---\n${this.logTail()}`)
  }

  /** SIGTERM (Redis fsyncs the AOF and exits), SIGKILL if it is still there after 30 s; waits for the end. Idempotent. */
  async stop (): Promise<void> {
    const child = this.#child
    if (child === null || !isAlive(child)) {
      await this.#exit
      return
    }
    child.ref()
    child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.#exit,
      new Promise<void>(resolve => {
        timer = setTimeout(() => {
          child.kill('SIGKILL')
          resolve()
        }, STOP_KILL_AFTER_MS)
      })
    ])
    clearTimeout(timer)
    await this.#exit
  }

  /** SIGKILL, as a crash would: only what reached the AOF survives. Waits for the end. */
  async kill (): Promise<void> {
    const child = this.#child
    if (child !== null && isAlive(child)) {
      child.ref()
      child.kill('SIGKILL')
    }
    await this.#exit
  }

  /** SIGKILL sent synchronously (for 'exit' handlers); does not wait. */
  killNow (): void {
    const child = this.#child
    if (child !== null && isAlive(child)) child.kill('SIGKILL')
  }

  /** Stop it if it runs, then start it again on the same port and folder: the AOF is replayed. */
  async restart (): Promise<void> {
    await this.stop()
    await this.start()
  }

  /** Stop it for good and remove its folder if this harness made it. */
  async dispose (): Promise<void> {
    this.#disposed = true
    await this.stop()
    if (this.#ownsDir) {
      removeDir(this.dir)
      ownedDirs.delete(this.dir)
    }
  }

  /** `redis-cli -p <port> <args>`; stdout without its final newline. Rejects on an error reply or a failed run. */
  async cli (...args: string[]): Promise<string> {
    return await cliOrThrow(this.port, ['-e', ...args], this.password)
  }

  async flushAll (): Promise<void> {
    await this.cli('FLUSHALL', 'SYNC')
  }
}

async function cliOrThrow (port: number, args: string[], password: string | undefined): Promise<string> {
  const res = await runRedisCli(port, args, password)
  if (res.code !== 0) {
    const out = `${res.stdout}${res.stderr}`.trim()
    throw new Error(`redis-cli -p ${port} ${args.join(' ')} failed (${res.code ?? 'killed'}): ${out}`)
  }
  return chompOne(res.stdout)
}

/** A redis-server of its own, answering PING; see RedisOptions for the defaults. */
export async function startRedis (opts: RedisOptions = {}): Promise<RedisServer> {
  // A free port can be taken by another process before Redis binds it: try a few when we chose it.
  const tries = opts.port === undefined ? 3 : 1
  for (let i = 1; ; i++) {
    const ownsDir = opts.dir === undefined
    const dir = opts.dir ?? makeTempDir('simple-kv-redis-')
    if (ownsDir) ownedDirs.add(dir)
    const server = new RedisServer(opts.port ?? await freePort(), dir, ownsDir, opts)
    try {
      await server.start()
    } catch (err) {
      await server.dispose()
      if (i < tries && err instanceof Error && err.message.includes('Address already in use')) continue
      throw err
    }
    opts.t?.teardown(async () => { await server.dispose() })
    return server
  }
}

export interface ClusterOptions {
  /** Default 3, the least `redis-cli --cluster create` accepts. */
  masters?: number
  appendfsync?: AppendFsync
  maxmemoryPolicy?: string
  /** The test that owns the cluster: stopped, and its folders removed, when that test ends. */
  t?: Teardown
  /** Wall-time bound on each node's start, and on the cluster reaching cluster_state:ok. */
  startTimeoutMs?: number
}

interface SlotRange {
  from: number
  to: number
  port: number
}

/** Masters only, no replicas: every slot is served by exactly one node. */
export class RedisCluster {
  readonly nodes: readonly RedisServer[]

  constructor (nodes: RedisServer[]) {
    this.nodes = nodes
  }

  /** The first node's URL; a cluster client discovers the others from it. */
  get url (): string {
    return this.nodes[0].url
  }

  /** `{ host, port }` of every node, as cluster clients take their startup nodes. */
  get startupNodes (): Array<{ host: string, port: number }> {
    return this.nodes.map(n => ({ host: HOST, port: n.port }))
  }

  /** `redis-cli -c` on the first node: follows MOVED, so any key works. */
  async cli (...args: string[]): Promise<string> {
    return await cliOrThrow(this.nodes[0].port, ['-c', '-e', ...args], undefined)
  }

  /** The node serving `key`'s slot, from CLUSTER SHARDS of the first node. */
  async nodeForKey (key: string): Promise<RedisServer> {
    const slot = Number(await this.nodes[0].cli('CLUSTER', 'KEYSLOT', key))
    const range = (await this.slotRanges()).find(r => slot >= r.from && slot <= r.to)
    const node = this.nodes.find(n => n.port === range?.port)
    if (node === undefined) throw new Error(`no node serves slot ${slot} (key ${key})`)
    return node
  }

  /** The slot ranges each node serves, as the first node sees them (CLUSTER NODES). */
  async slotRanges (): Promise<SlotRange[]> {
    const ranges: SlotRange[] = []
    for (const line of (await this.nodes[0].cli('CLUSTER', 'NODES')).split('\n')) {
      // <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <epoch> <link-state> <slot>...
      const fields = line.trim().split(' ')
      const port = Number(/:(\d+)@/.exec(fields[1] ?? '')?.[1])
      for (const slot of fields.slice(8)) {
        const match = /^(\d+)(?:-(\d+))?$/.exec(slot)
        if (match !== null) ranges.push({ from: Number(match[1]), to: Number(match[2] ?? match[1]), port })
      }
    }
    return ranges
  }

  async flushAll (): Promise<void> {
    await Promise.all(this.nodes.map(async n => { await n.flushAll() }))
  }

  /** Stop every node (SIGTERM, waits). Idempotent. */
  async stop (): Promise<void> {
    await Promise.all(this.nodes.map(async n => { await n.stop() }))
  }

  /** Stop every node and remove the folders this harness made. */
  async dispose (): Promise<void> {
    await Promise.all(this.nodes.map(async n => { await n.dispose() }))
  }
}

/** `cluster info` of one node as a map. */
async function clusterInfo (node: RedisServer): Promise<Map<string, string>> {
  const info = new Map<string, string>()
  for (const line of (await node.cli('CLUSTER', 'INFO')).split('\n')) {
    const [name, value] = line.trim().split(':')
    if (value !== undefined) info.set(name, value)
  }
  return info
}

/**
 * `masters` cluster-enabled servers joined by `redis-cli --cluster create`
 * (no replicas), resolved once EVERY node says cluster_state:ok, knows all
 * the nodes and sees all 16384 slots assigned.
 */
export async function startRedisCluster (opts: ClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3
  if (!Number.isInteger(masters) || masters < 3) throw new Error(`a Redis cluster needs at least 3 masters, not ${masters}`)
  const timeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
  const started = await Promise.allSettled(Array.from({ length: masters }, async () => await startRedis({
    appendfsync: opts.appendfsync,
    maxmemoryPolicy: opts.maxmemoryPolicy,
    startTimeoutMs: timeoutMs,
    extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000']
  })))
  const nodes = started.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
  const cluster = new RedisCluster(nodes)
  try {
    const failed = started.find(r => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    const create = await runRedisCli(nodes[0].port, ['--cluster', 'create', ...nodes.map(n => `${HOST}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'])
    if (create.code !== 0) throw new Error(`redis-cli --cluster create failed (${create.code ?? 'killed'}):\n${create.stdout}${create.stderr}`)
    const deadline = Date.now() + timeoutMs
    let last = ''
    for (;;) {
      const infos = await Promise.all(nodes.map(clusterInfo))
      const notReady = infos.map((info, i) => ({ info, node: nodes[i] })).filter(({ info }) =>
        info.get('cluster_state') !== 'ok' || info.get('cluster_slots_assigned') !== '16384' || info.get('cluster_known_nodes') !== String(masters))
      if (notReady.length === 0) break
      last = notReady.map(({ info, node }) => `${node.port}: state ${info.get('cluster_state') ?? '?'}, ${info.get('cluster_slots_assigned') ?? '?'} slots, ${info.get('cluster_known_nodes') ?? '?'} nodes known`).join('; ')
      if (Date.now() > deadline) throw new Error(`the Redis cluster was not ok within ${timeoutMs} ms (${last})\n--- ${nodes[0].logPath} ---\n${nodes[0].logTail()}`)
      await sleep(50)
    }
  } catch (err) {
    await cluster.dispose()
    throw err
  }
  opts.t?.teardown(async () => { await cluster.dispose() })
  return cluster
}

/** Stops `dispose` when the root tap ends (dynamic: the bench imports this file without tap). */
async function disposeWithRootTap (dispose: () => Promise<void>): Promise<void> {
  const { default: tap } = await import('tap')
  tap.teardown(dispose)
}

let shared: Promise<RedisServer> | undefined
let sharedCluster: Promise<RedisCluster> | undefined

/**
 * One server for the whole test file (one tap process), started on first use
 * and disposed of when the root tap ends. Tests keep apart with uniquePrefix().
 */
export async function sharedRedis (): Promise<RedisServer> {
  shared ??= startRedis().then(async server => {
    await disposeWithRootTap(async () => { await server.dispose() })
    return server
  })
  return await shared
}

/** sharedRedis()'s counterpart: one 3-master cluster per test file. */
export async function sharedRedisCluster (): Promise<RedisCluster> {
  sharedCluster ??= startRedisCluster().then(async cluster => {
    await disposeWithRootTap(async () => { await cluster.dispose() })
    return cluster
  })
  return await sharedCluster
}

const BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz'

/** `t` and 10 random base36 characters: a key prefix no other test uses (no ':' and no braces). */
export function uniquePrefix (): string {
  let prefix = 't'
  for (let i = 0; i < 10; i++) prefix += BASE36[randomInt(36)]
  return prefix
}
