// Simple KV benchmark harness (issue 4). Run with `npm run bench -- [flags]`;
// `--help` lists the flags. Everything runs on 127.0.0.1, every server is a child
// process that is stopped at the end (or on error / Ctrl-C), every run is bounded.

import { spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, statSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent } from 'node:http'
import { freePort, httpRequest } from '../test/support/net.js'
import { makeTempDir } from '../test/support/temp.js'
import { keyName, makeValueFn, newApiKey } from './common.js'
import { cpuSnap, cpuUse, machineBusyPct } from './cpu.js'
import type { CpuUse } from './cpu.js'
import { LatencyHistogram, runLoad } from './load.js'
import type { AcRequest, RunSpec, RunStats } from './load.js'
import {
  installCleanupHandlers,
  msSince,
  readMem,
  registerTempDir,
  setKeepTemp,
  spawnChild,
  spawnHistory,
  stopChild,
  waitForOk
} from './proc.js'
import type { Child } from './proc.js'
import { RedisServer, haveBinary, redisBenchmark } from './redis.js'
import type { BenchmarkResult, RedisInfo } from './redis.js'
import { checkTargets, fmtInt, fmtMB, fmtMs, fmtRatio, renderTable, renderTargets, rowProblems, rowRate } from './report.js'
import type { ControlCheck, ExpireResult, FloodResult, LatencyWindow, ListResult, MillionResult, Row } from './report.js'
import {
  CEILING_LABELS,
  WORKLOAD_IDS,
  WORKLOAD_LABELS,
  casKey,
  casRequests,
  floodRequests,
  getPool,
  listPool,
  mixedPool,
  putPool,
  storePath
} from './workloads.js'
import type { WorkloadId } from './workloads.js'

const HERE = dirname(fileURLToPath(import.meta.url)) // dist/bench
const REPO = resolve(HERE, '..', '..')
const RESULTS_DIR = join(REPO, 'bench', 'results')

const HELP = `Simple KV benchmark harness

usage: npm run bench -- [flags]        (or: node dist/bench/run.js [flags] after npm run build)

  --duration <s>            measured seconds per workload run (default 6; --quick: 2)
  --warmup <s>              unmeasured warm-up before each run (default 1; --quick: 0.5)
  --connections <list>      connection counts (default 1,64)
  --only <list>             run only these parts: ${WORKLOAD_IDS.join(',')},million
                            (bare-fastify comes with any workload: every ratio needs it;
                            --only million runs just the memory/restart part; list runs on
                            the million part's server after its restart when both run, else
                            on a server of its own with --million-keys keys)
  --keys <n>                keys preloaded for the workloads (default 10000)
  --flood-connections <n>   attacker connections in the flood (default: same as the good stream)
  --durability <mode>       write system.storage.durability = always|everysec|no into the config
                            (omitted by default: the server's default, always)
  --redis-server <bin>      redis-server for get-redis, put-redis and redis-ceiling (default
                            redis-server on the PATH); the bench starts its own on a free
                            127.0.0.1 port in the temp folder, appendonly yes, appendfsync always,
                            no RDB snapshots. Without it those parts are skipped with a warning
                            (an error when --only names them)
  --redis-benchmark <bin>   redis-benchmark for redis-ceiling (default: on the PATH)
  --server <file>           server entry (default dist/server.js), started as
                            node <file> --config <tmp>/config.json with cwd = repo root
  --node-arg=<arg>          extra node flag for the real server, repeatable
                            (e.g. --node-arg=--cpu-prof --node-arg=--cpu-prof-dir=/tmp/prof)
  --profile                 run the real server with --cpu-prof; profiles go to
                            bench/profiles/<timestamp>/ (the pid in each file name is listed
                            under "processes" in the JSON)
  --bare-only               run only the bare node:http / Fastify servers
  --unpaired                take every ratio to the one bare Fastify run at the start; by default
                            bare Fastify is measured again right before each GET/PUT/mixed run and
                            that row's ratio is to this neighbour (the machine's speed drifts)
  --skip-million            skip the 1,000,000-key memory and restart measurement (and the
                            list part, unless --only names it)
  --million-keys <n>        keys for that measurement (default 1000000; --quick: 100000)
  --million-load <how>      put: PUT every key through the API into the running server (default;
                            slow under durability always, minutes);
                            file: write storage_data/disk_store.json in the contract's format
                            before the first start (fast; RSS is then measured after that start)
  --million-connections <n> loader connections for put (default 256; no pipelining, so every
                            PUT is accounted for)
  --expire-keys <n>         keys expiring together in the expire part (default 100000; --quick: 20000)
  --expire-projects <list>  projects the expire part runs on, in order: disk,mem (default both)
  --quick                   short runs (2 s, 0.5 s warm-up, 100k keys for the memory part)
  --tmpdir <dir>            where temp configs and store files go (default: OS temp dir)
  --keep-temp               keep the temp folder (configs, store files, server logs)
  --pin                     pin servers to CPUs 0..n-2 and the load generator to the last CPU
                            (taskset); default off
  --control-margin <x>      bare node:http must beat bare Fastify by this factor (default 1.10)
  --quiet-wait <s>          before each run, wait up to this long for other processes to use
                            < 15% of a core (default 30; 0 = don't wait)
  --max-minutes <n>         hard limit for the whole run (default 30)
  --strict                  exit with code 3 if any target is missed
  --help                    this text
`

interface Options {
  duration: number
  warmup: number
  connections: number[]
  only: Set<WorkloadId>
  /** The 1,000,000-key memory and restart part. */
  million: boolean
  keys: number
  floodConnections: number | null
  durability: string | null
  server: string
  redisServer: string
  redisBenchmark: string
  /** --only named these parts: a missing Redis binary is then an error, not a skip. */
  named: Set<WorkloadId>
  nodeArgs: string[]
  bareOnly: boolean
  /** Measure bare Fastify again right before each real-server workload run and take the ratio to that. */
  pair: boolean
  millionKeys: number
  millionConnections: number
  millionLoad: 'put' | 'file'
  expireKeys: number
  expireProjects: Array<'disk' | 'mem'>
  quick: boolean
  tmpdir: string
  keepTemp: boolean
  controlMargin: number
  maxMinutes: number
  strict: boolean
  pin: boolean
  quietWait: number
  profileDir: string | null
}

/** taskset CPU list for servers when --pin is on, else null. */
let serverCpus: string | null = null

function fail (msg: string): never {
  process.stderr.write(`bench: ${msg}\n`)
  process.exit(2)
}

function num (v: string | undefined, name: string, def: number, min: number, integer = false): number {
  if (v === undefined) return def
  const n = Number(v)
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    fail(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min} (got ${JSON.stringify(v)})`)
  }
  return n
}

function parseOptions (): Options {
  let parsed
  try {
    parsed = parseArgs({
      options: {
        duration: { type: 'string' },
        warmup: { type: 'string' },
        connections: { type: 'string' },
        only: { type: 'string' },
        keys: { type: 'string' },
        'flood-connections': { type: 'string' },
        durability: { type: 'string' },
        server: { type: 'string' },
        'redis-server': { type: 'string' },
        'redis-benchmark': { type: 'string' },
        'node-arg': { type: 'string', multiple: true },
        'bare-only': { type: 'boolean' },
        unpaired: { type: 'boolean' },
        'skip-million': { type: 'boolean' },
        'million-keys': { type: 'string' },
        'million-connections': { type: 'string' },
        'million-load': { type: 'string' },
        'expire-keys': { type: 'string' },
        'expire-projects': { type: 'string' },
        quick: { type: 'boolean' },
        tmpdir: { type: 'string' },
        'keep-temp': { type: 'boolean' },
        'control-margin': { type: 'string' },
        'max-minutes': { type: 'string' },
        strict: { type: 'boolean' },
        pin: { type: 'boolean' },
        'quiet-wait': { type: 'string' },
        profile: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      },
      allowPositionals: false
    })
  } catch (err) {
    fail(`${err instanceof Error ? err.message : String(err)}\n\n${HELP}`)
  }
  const v = parsed.values
  if (v.help === true) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const quick = v.quick === true
  const connections = (v.connections ?? '1,64').split(',').map((s) => num(s.trim(), 'connections', 1, 1, true))
  let only = new Set<WorkloadId>(WORKLOAD_IDS)
  let million = v['skip-million'] !== true
  // The listing part needs the million keys: skipping those skips it, unless --only names it.
  if (!million) only.delete('list')
  if (v.only !== undefined) {
    only = new Set<WorkloadId>()
    million = false
    for (const raw of v.only.split(',')) {
      const id = raw.trim()
      if (id === 'million') {
        million = v['skip-million'] !== true
        continue
      }
      if (!(WORKLOAD_IDS as readonly string[]).includes(id)) fail(`--only: unknown part ${JSON.stringify(id)}; known: ${WORKLOAD_IDS.join(', ')}, million`)
      only.add(id as WorkloadId)
    }
    // Every ratio is to bare Fastify, so any workload brings it along.
    if (only.size > 0) only.add('bare-fastify')
  }
  const expireProjects = (v['expire-projects'] ?? 'disk,mem').split(',').map((s) => s.trim())
  for (const p of expireProjects) if (p !== 'disk' && p !== 'mem') fail('--expire-projects takes disk and/or mem')
  const millionLoad = v['million-load'] ?? 'put'
  if (millionLoad !== 'put' && millionLoad !== 'file') fail('--million-load must be put or file')
  const profileDir =
    v.profile === true ? join(REPO, 'bench', 'profiles', new Date().toISOString().replace(/[:.]/g, '-')) : null
  const nodeArgs = [...(v['node-arg'] ?? [])]
  if (profileDir !== null) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`)
  const durability = v.durability ?? null
  if (durability !== null && !['always', 'everysec', 'no'].includes(durability)) {
    fail('--durability must be always, everysec or no')
  }
  return {
    duration: num(v.duration, 'duration', quick ? 2 : 6, 0.5),
    warmup: num(v.warmup, 'warmup', quick ? 0.5 : 1, 0),
    connections: [...new Set(connections)].sort((a, b) => a - b),
    only,
    million,
    keys: num(v.keys, 'keys', 10_000, 1, true),
    floodConnections: v['flood-connections'] === undefined ? null : num(v['flood-connections'], 'flood-connections', 1, 1, true),
    durability,
    server: resolve(REPO, v.server ?? join('dist', 'server.js')),
    redisServer: v['redis-server'] ?? 'redis-server',
    redisBenchmark: v['redis-benchmark'] ?? 'redis-benchmark',
    named: v.only === undefined ? new Set() : new Set(only),
    nodeArgs,
    bareOnly: v['bare-only'] === true,
    pair: v.unpaired !== true,
    millionKeys: num(v['million-keys'], 'million-keys', quick ? 100_000 : 1_000_000, 1, true),
    millionConnections: num(v['million-connections'], 'million-connections', 256, 1, true),
    millionLoad,
    expireKeys: num(v['expire-keys'], 'expire-keys', quick ? 20_000 : 100_000, 1, true),
    expireProjects: [...new Set(expireProjects)] as Array<'disk' | 'mem'>,
    quick,
    tmpdir: resolve(v.tmpdir ?? tmpdir()),
    keepTemp: v['keep-temp'] === true,
    controlMargin: num(v['control-margin'], 'control-margin', 1.1, 0),
    maxMinutes: num(v['max-minutes'], 'max-minutes', 30, 1),
    strict: v.strict === true,
    pin: v.pin === true,
    quietWait: num(v['quiet-wait'], 'quiet-wait', 30, 0),
    profileDir
  }
}

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`)
const warnings: string[] = []
function warn (msg: string): void {
  warnings.push(msg)
  process.stderr.write(`\n[bench] WARNING: ${msg}\n\n`)
}

// ---------------------------------------------------------------- machine info

function mountFsType (path: string): string {
  try {
    const real = realpathSync(path)
    let best = { mount: '', type: 'unknown' }
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mount, type] = line.split(' ')
      if (mount === undefined || type === undefined) continue
      const under = real === mount || real.startsWith(mount.endsWith('/') ? mount : mount + '/')
      if (under && mount.length >= best.mount.length) best = { mount, type }
    }
    return best.type
  } catch {
    return 'unknown'
  }
}

function packageVersion (name: string): string | null {
  try {
    const pkg = JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string }
    return pkg.version ?? null
  } catch {
    return null
  }
}

function gitCommit (): string | null {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8', timeout: 5000 })
  return r.status === 0 ? r.stdout.trim() : null
}

function machineInfo (opts: Options) {
  const c = cpus()
  return {
    date: new Date().toISOString(),
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    cpuMHz: c[0]?.speed ?? null,
    totalMemBytes: totalmem(),
    loadavgAtStart: loadavg(),
    node: process.version,
    platform: `${platform()} ${release()}`,
    autocannon: packageVersion('autocannon'),
    fastify: packageVersion('fastify'),
    gitCommit: gitCommit(),
    tmpdir: opts.tmpdir,
    tmpdirFsType: mountFsType(opts.tmpdir)
  }
}

// ---------------------------------------------------------------- running loads

interface MeasureSpec {
  port: number
  connections: number
  headers: Record<string, string>
  poolFor?: (i: number) => AcRequest[]
  requests?: AcRequest[]
}

function loadSpec (m: MeasureSpec, seconds: number): RunSpec {
  return {
    port: m.port,
    connections: m.connections,
    duration: seconds,
    headers: m.headers,
    watchdogMs: (seconds + 20) * 1000,
    ...(m.poolFor !== undefined ? { poolFor: m.poolFor } : {}),
    ...(m.requests !== undefined ? { requests: m.requests } : {})
  }
}

let quietTimeouts = 0

/**
 * Wait (bounded) until the rest of the machine, our idle servers included, is quiet.
 * After two waits in a row that time out, stop waiting: the machine stays busy.
 */
async function waitQuiet (opts: Options, label: string): Promise<void> {
  if (opts.quietWait <= 0 || quietTimeouts >= 2) return
  const deadline = Date.now() + opts.quietWait * 1000
  let busy = await machineBusyPct(500)
  if (busy <= 15) {
    quietTimeouts = 0
    return
  }
  log(`waiting for the machine to calm down before "${label}" (others use ${busy}% of a core)`)
  while (busy > 15 && Date.now() < deadline) busy = await machineBusyPct(1000)
  if (busy <= 15) {
    quietTimeouts = 0
    return
  }
  quietTimeouts++
  log(`machine still busy (${busy}% of a core) after waiting ${opts.quietWait} s; running "${label}" anyway` +
    (quietTimeouts >= 2 ? '; not waiting any more in this run' : ''))
}

/** Warm up, then measure, one or more concurrent streams against the server `serverPid`. */
async function measure (
  opts: Options,
  label: string,
  serverPid: number | readonly number[],
  specs: MeasureSpec[]
): Promise<{ stats: RunStats[], cpu: CpuUse }> {
  await waitQuiet(opts, label)
  if (opts.warmup > 0) await Promise.all(specs.map((s) => runLoad(loadSpec(s, opts.warmup))))
  const before = cpuSnap(serverPid)
  const stats = await Promise.all(specs.map((s) => runLoad(loadSpec(s, opts.duration))))
  const cpu = cpuUse(before, cpuSnap(serverPid))
  const first = stats[0]!
  const issues = stats.some((s) => s.errors > 0 || s.watchdogStopped) ? ' (connection errors!)' : ''
  log(
    `${label.padEnd(44)} c=${String(specs[0]!.connections).padStart(3)}  ${fmtInt(first.okPerSec).padStart(7)} 2xx/s` +
      `  p50 ${fmtMs(first.latencyMs.p50)} ms  p99 ${fmtMs(first.latencyMs.p99)} ms  non-2xx ${fmtInt(first.non2xx)}` +
      `  cpu: server ${cpu.serverPct ?? '-'}%${cpu.serverPartsPct === undefined ? '' : ` (${cpu.serverPartsPct.map((p) => p ?? '-').join(' + ')})`}` +
      ` generator ${cpu.generatorPct}% other ${cpu.otherPct ?? '-'}%${issues}`
  )
  return { stats, cpu }
}

// ---------------------------------------------------------------- servers

interface Keys {
  system: string
  disk: string
  mem: string
}

/** The Redis engine's server: one project, `redis`, in the bench's own redis-server. */
interface RedisTarget {
  url: string
  key: string
}

const REDIS_KEY_PREFIX = 'skv-bench'

function writeConfig (dir: string, port: number, keys: Keys, durability: string | null, redis: RedisTarget | null = null): string {
  const auth = (key: string) => ({ enabled: true, save_api_key_to_config: true, api_key: key })
  const config = {
    server_port: port,
    server_host: '127.0.0.1',
    system: {
      storage: redis === null
        ? { persistent_file_path: 'storage_data', ...(durability !== null ? { durability } : {}) }
        : { persistent_file_path: 'storage_data', engine: 'redis', redis: { url: redis.url, key_prefix: REDIS_KEY_PREFIX } },
      authentication: auth(keys.system),
      security: { project_discoverable: true }
    },
    projects: redis === null
      ? [
          { id: 'disk', storage: { on_disk: true }, authentication: auth(keys.disk), security: { keys_and_values_discoverable: true } },
          { id: 'mem', storage: { on_disk: false }, authentication: auth(keys.mem), security: { keys_and_values_discoverable: true } }
        ]
      : [
          // Seeded into Redis at the first start, the prefix being new.
          { id: 'redis', authentication: auth(redis.key), security: { keys_and_values_discoverable: true } }
        ]
  }
  const path = join(dir, 'config.json')
  writeFileSync(path, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 })
  return path
}

interface RealServer {
  child: Child
  port: number
  keys: Keys
  dir: string
  configPath: string
}

async function startRealServer (opts: Options, dir: string, keys: Keys, name: string, readyTimeoutMs: number, redis: RedisTarget | null = null): Promise<RealServer> {
  const port = await freePort()
  const configPath = writeConfig(dir, port, keys, opts.durability, redis)
  const child = spawnChild(name, [...opts.nodeArgs, opts.server, '--config', configPath], {
    cwd: REPO,
    logPath: join(dir, `${name}.log`),
    cpuList: serverCpus,
    // The variable wins over the config file: one set in the shell must not send the bench's server elsewhere.
    ...(redis === null ? {} : { env: { SIMPLE_KV_REDIS_URL: redis.url } })
  })
  const ms = await waitForOk(child, port, '/health', { timeoutMs: readyTimeoutMs })
  log(`${name} ready on 127.0.0.1:${port} after ${ms.toFixed(0)} ms (pid ${child.pid}, log ${child.logPath})`)
  return { child, port, keys, dir, configPath }
}

async function stopServer (child: Child, timeoutMs: number): Promise<void> {
  const r = await stopChild(child, timeoutMs)
  if (r.killed) warn(`${child.name} did not exit within ${timeoutMs} ms of SIGTERM and was killed`)
  else if (r.code !== 0 && r.code !== null) warn(`${child.name} exited with code ${r.code} after SIGTERM`)
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

/** Load keys 0..n-1 with values value(i) into a project; exactly n PUTs, verified. */
async function loadKeys (
  port: number,
  project: string,
  apiKey: string,
  n: number,
  value: (i: number) => string,
  connections: number,
  watchdogMs: number,
  onProgress?: (responses: number, ok: number) => void
): Promise<RunStats> {
  let next = 0
  const conns = Math.min(connections, n)
  const stats = await runLoad({
    port,
    connections: conns,
    amount: n,
    headers: { ...bearer(apiKey), 'content-type': 'text/plain; charset=utf-8' },
    requests: [
      {
        method: 'PUT',
        setupRequest: (req: AcRequest) => {
          const i = next++ % n
          req.path = storePath(project, keyName(i))
          req.body = value(i)
          return req
        }
      }
    ],
    watchdogMs,
    ...(onProgress !== undefined ? { onProgress } : {})
  })
  return stats
}

/** GET `count` random loaded keys (plus the first and last) through R11 and compare values. */
async function verifySample (
  port: number,
  project: string,
  apiKey: string,
  n: number,
  value: (i: number) => string,
  count: number
): Promise<{ checked: number, mismatches: number, firstProblem: string | null }> {
  const idx = [0, n - 1]
  for (let i = 0; i < count; i++) idx.push(Math.floor(Math.random() * n))
  let mismatches = 0
  let firstProblem: string | null = null
  for (const i of idx) {
    const res = await httpRequest(port, 'GET', storePath(project, keyName(i)) + '/value', bearer(apiKey), undefined, { timeoutMs: 5000 })
    if (res.status !== 200 || res.body !== value(i)) {
      mismatches++
      firstProblem ??= `${keyName(i)}: HTTP ${res.status} ${JSON.stringify(res.body.slice(0, 120))}`
    }
  }
  return { checked: idx.length, mismatches, firstProblem }
}

function checkLoad (what: string, stats: RunStats, n: number): void {
  if (stats.ok !== n || stats.errors > 0 || stats.watchdogStopped) {
    const bad = Object.entries(stats.statusCounts).filter(([c]) => !c.startsWith('2'))
    warn(
      `${what}: ${fmtInt(stats.ok)} of ${fmtInt(n)} PUTs answered 2xx` +
        `${bad.length > 0 ? `; other statuses ${bad.map(([c, k]) => `${c}:${k}`).join(' ')}` : ''}` +
        `${stats.errors > 0 ? `; ${stats.errors} connection errors` : ''}${stats.watchdogStopped ? '; stopped by watchdog' : ''}`
    )
  }
}

// ---------------------------------------------------------------- phases

/**
 * One row of a real-server workload: bare Fastify measured right before it at the
 * same connections (when pairing), then the workload itself.
 */
async function pairedRow (opts: Options, pair: BareServer | null, id: Row['id'], label: string, pid: number | readonly number[], spec: MeasureSpec): Promise<Row> {
  const paired = pair === null ? undefined : await pair.measureAt(spec.connections, `${WORKLOAD_LABELS['bare-fastify']}, paired`)
  const { stats, cpu } = await measure(opts, label, pid, [spec])
  return {
    id,
    label,
    connections: spec.connections,
    stats: stats[0]!,
    cpu,
    expect: '2xx',
    ratio: null,
    pairedBare: paired === undefined ? undefined : { okPerSec: paired.stats.okPerSec, p99Ms: paired.stats.latencyMs.p99, cpu: paired.cpu }
  }
}

interface BareServer {
  child: Child
  /** One measured run of the bare route at `connections`. */
  measureAt: (connections: number, label?: string) => Promise<{ stats: RunStats, cpu: CpuUse }>
}

async function startBare (opts: Options, tmp: string, which: 'bare-http' | 'bare-fastify'): Promise<BareServer> {
  const port = await freePort()
  const script = join(HERE, which === 'bare-http' ? 'bare-http.js' : 'bare-fastify.js')
  const child = spawnChild(which, [script, String(port), String(opts.keys)], {
    cwd: REPO,
    logPath: join(tmp, `${which}.log`),
    stdinPipe: true,
    cpuList: serverCpus
  })
  try {
    await waitForOk(child, port, '/health', { timeoutMs: 15_000 })
  } catch (err) {
    await stopServer(child, 5000)
    throw err
  }
  return {
    child,
    measureAt: async (c, label = WORKLOAD_LABELS[which]) => {
      const { stats, cpu } = await measure(opts, label, child.pid, [
        { port, connections: c, headers: bearer(newApiKey()), poolFor: () => getPool(opts.keys, (k) => `/k/${k}`) }
      ])
      return { stats: stats[0]!, cpu }
    }
  }
}

/** Measure a bare server at every connection count; `keep` leaves it running and returns it. */
async function runBare (opts: Options, tmp: string, which: 'bare-http' | 'bare-fastify', rows: Row[], keep = false): Promise<BareServer | null> {
  const bare = await startBare(opts, tmp, which)
  try {
    for (const c of opts.connections) {
      const { stats, cpu } = await bare.measureAt(c)
      rows.push({ id: which, label: WORKLOAD_LABELS[which], connections: c, stats, cpu, expect: '2xx', ratio: null })
    }
  } catch (err) {
    await stopServer(bare.child, 5000)
    throw err
  }
  if (keep) return bare
  await stopServer(bare.child, 5000)
  return null
}

/**
 * Runs the real server's workloads. With `pair`, each simple workload run is
 * preceded by a run of the bare Fastify route at the same connections, and the
 * row's ratio is to that neighbour: on a shared machine whose speed drifts
 * within minutes, a ratio of two runs taken seconds apart means far more than
 * one to a ceiling measured at the start.
 */
async function runReal (opts: Options, tmp: string, rows: Row[], floods: FloodResult[], pair: BareServer | null): Promise<Record<string, unknown>> {
  const dir = join(tmp, 'main')
  mkdirSync(dir)
  const keys: Keys = { system: newApiKey(), disk: newApiKey(), mem: newApiKey() }
  const srv = await startRealServer(opts, dir, keys, 'server', 30_000)
  const info: Record<string, unknown> = {}
  try {
    const value = makeValueFn()
    for (const project of ['disk', 'mem'] as const) {
      const t0 = process.hrtime.bigint()
      const st = await loadKeys(srv.port, project, keys[project], opts.keys, value, 32, 120_000)
      checkLoad(`loading ${opts.keys} keys into '${project}'`, st, opts.keys)
      const v = await verifySample(srv.port, project, keys[project], opts.keys, value, 100)
      if (v.mismatches > 0) warn(`after loading '${project}': ${v.mismatches} of ${v.checked} sampled keys wrong; first: ${v.firstProblem}`)
      log(`loaded ${fmtInt(opts.keys)} keys into '${project}' in ${msSince(t0).toFixed(0)} ms (${fmtInt(st.okPerSec)} PUT/s), sample check ${v.checked - v.mismatches}/${v.checked} ok`)
    }
    if (opts.only.has('put-cas')) {
      // Each connection of the compare-and-set loop owns one key, preloaded so its first If-Match: * holds.
      const casKeys = Math.max(...opts.connections)
      for (let i = 0; i < casKeys; i++) {
        const res = await httpRequest(srv.port, 'PUT', storePath('disk', casKey(i)), { ...bearer(keys.disk), 'content-type': 'text/plain; charset=utf-8' }, value(i), { timeoutMs: 10_000 })
        if (res.status !== 200 && res.status !== 201) throw new Error(`preloading ${casKey(i)} for put-cas: HTTP ${res.status} ${res.body.slice(0, 200)}`)
      }
    }
    info['rssAfterPreloadBytes'] = readMem(srv.child.pid)?.rssBytes ?? null

    const port = srv.port
    const diskH = bearer(keys.disk)
    const memH = bearer(keys.mem)
    const simple: { id: WorkloadId, spec: (c: number) => MeasureSpec }[] = [
      { id: 'get-record', spec: (c) => ({ port, connections: c, headers: diskH, poolFor: () => getPool(opts.keys, (k) => storePath('disk', k)) }) },
      { id: 'get-raw', spec: (c) => ({ port, connections: c, headers: diskH, poolFor: () => getPool(opts.keys, (k) => storePath('disk', k) + '/value') }) },
      { id: 'put-mem', spec: (c) => ({ port, connections: c, headers: memH, poolFor: () => putPool(opts.keys, 'mem') }) },
      { id: 'put-disk', spec: (c) => ({ port, connections: c, headers: diskH, poolFor: () => putPool(opts.keys, 'disk') }) },
      { id: 'mixed', spec: (c) => ({ port, connections: c, headers: diskH, poolFor: () => mixedPool(opts.keys, 'disk') }) },
      { id: 'put-cas', spec: (c) => ({ port, connections: c, headers: diskH, poolFor: (i) => casRequests('disk', i) }) }
    ]
    for (const w of simple) {
      if (!opts.only.has(w.id)) continue
      for (const c of opts.connections) {
        const row = await pairedRow(opts, pair, w.id, WORKLOAD_LABELS[w.id], srv.child.pid, w.spec(c))
        rows.push(row)
        if (w.id === 'put-cas') {
          const s = row.stats
          const share = s.responses === 0 ? NaN : (s.statusCounts['412'] ?? 0) / s.responses
          log(`  put-cas: ${fmtInt(s.statusCounts['412'] ?? 0)} of ${fmtInt(s.responses)} answers were 412 (${(share * 100).toFixed(3)}%; 0 expected)`)
          if (share > 0) warn(`put-cas @${c}: ${(share * 100).toFixed(3)}% of the conditional PUTs got 412: each connection owns its key, so the loop or the server's ETags are wrong`)
        }
      }
    }

    if (opts.only.has('flood')) {
      for (const c of opts.connections) {
        const fc = opts.floodConnections ?? c
        const good: MeasureSpec = { port, connections: c, headers: diskH, poolFor: () => getPool(opts.keys, (k) => storePath('disk', k)) }
        const attack: MeasureSpec = { port, connections: fc, headers: {}, requests: floodRequests(opts.keys, 'disk') }
        const m1 = await measure(opts, 'flood: good GET record, undisturbed', srv.child.pid, [good])
        const m2 = await measure(opts, `flood: good GET record beside ${fc}-conn flood`, srv.child.pid, [good, attack])
        const undisturbed = m1.stats[0]
        const [disturbed, flood] = m2.stats
        log(`${'flood: the attack stream itself'.padEnd(44)} c=${String(fc).padStart(3)}  ${fmtInt(flood!.respPerSec).padStart(7)} resp/s  statuses ${JSON.stringify(flood!.statusCounts)}`)
        rows.push(
          { id: 'flood-undisturbed', label: 'good GET record, no flood', connections: c, stats: undisturbed!, cpu: m1.cpu, expect: '2xx', ratio: null },
          { id: 'flood-good', label: `good GET record beside ${fc}-conn flood`, connections: c, stats: disturbed!, cpu: m2.cpu, expect: '2xx', ratio: null },
          { id: 'flood-attack', label: 'wrong-key flood itself', connections: fc, stats: flood!, cpu: m2.cpu, expect: '401', ratio: null }
        )
        const accepted = Object.entries(flood!.statusCounts)
          .filter(([code]) => code.startsWith('2'))
          .reduce((a, [, n]) => a + n, 0)
        if (accepted > 0) warn(`SECURITY: ${accepted} requests with random wrong keys were answered 2xx`)
        floods.push({
          connections: c,
          floodConnections: fc,
          undisturbedOkPerSec: undisturbed!.okPerSec,
          disturbedOkPerSec: disturbed!.okPerSec,
          ratio: disturbed!.okPerSec / undisturbed!.okPerSec,
          disturbedP99Ms: disturbed!.latencyMs.p99,
          attackPerSec: flood!.respPerSec,
          wrongKeysAccepted: accepted
        })
      }
    }
    const mem = readMem(srv.child.pid)
    info['rssAfterWorkloadsBytes'] = mem?.rssBytes ?? null
    info['peakRssBytes'] = mem?.hwmBytes ?? null
    if (!srv.child.running) throw new Error(`server exited during the workloads:\n${srv.child.tail()}`)
  } finally {
    await stopServer(srv.child, 30_000)
  }
  return info
}

/** What the Redis part measured besides its rows. */
interface RedisPart {
  /** The bench's redis-server as it reported itself (CONFIG GET, INFO). */
  redis: RedisInfo
  /** The Redis engine's Simple KV server: RSS after the preload and after the workloads. */
  server: Record<string, unknown> | null
  /** Every measured redis-benchmark run (the ceiling rows), as it printed them. */
  ceilings: BenchmarkResult[]
}

/**
 * One ceiling row: redis-benchmark at `connections`, on the same redis-server as the
 * Redis engine. It stops after a count of requests, not a time, so a short probe gives
 * the rate, the warm-up refines it, and the measured run is sized to last about
 * --duration seconds; each run is killed (and the part fails) if it takes 5 times longer.
 */
async function measureCeiling (opts: Options, redis: RedisServer, test: 'get' | 'set', connections: number, out: BenchmarkResult[]): Promise<Row> {
  const label = CEILING_LABELS[test]
  await waitQuiet(opts, label)
  const run = async (requests: number, seconds: number) => await redisBenchmark({
    bin: opts.redisBenchmark,
    port: redis.port,
    test,
    connections,
    requests,
    keys: opts.keys,
    timeoutMs: (seconds * 5 + 20) * 1000,
    // The harness's own CPU: with --pin the child inherits the generator's.
    cpuList: null
  })
  let rate = (await run(Math.max(200, 100 * connections), 10)).rps
  if (opts.warmup > 0) rate = (await run(Math.max(connections, Math.round(rate * opts.warmup)), opts.warmup)).rps
  const requests = Math.max(10 * connections, Math.round(rate * opts.duration))
  const before = cpuSnap(redis.pid)
  const r = await run(requests, opts.duration)
  const cpu = cpuUse(before, cpuSnap(redis.pid))
  out.push(r)
  const stats: RunStats = {
    connections,
    pipelining: 1,
    seconds: r.requests / r.rps,
    responses: r.requests,
    ok: r.requests,
    non2xx: 0,
    statusCounts: {},
    errors: 0,
    timeouts: 0,
    okPerSec: r.rps,
    respPerSec: r.rps,
    // redis-benchmark prints p50, p95 and p99 (and mean and max), not p90 or p99.9.
    latencyMs: { mean: r.avgMs, p50: r.p50Ms, p90: NaN, p99: r.p99Ms, p999: NaN, max: r.maxMs },
    watchdogStopped: false
  }
  log(
    `${label.padEnd(44)} c=${String(connections).padStart(3)}  ${fmtInt(r.rps).padStart(7)} req/s ` +
      `  p50 ${fmtMs(r.p50Ms)} ms  p99 ${fmtMs(r.p99Ms)} ms  (${fmtInt(r.requests)} requests)` +
      `  cpu: redis-server ${cpu.serverPct ?? '-'}% generator (redis-benchmark) ${cpu.generatorPct}% other ${cpu.otherPct ?? '-'}%`
  )
  return { id: test === 'get' ? 'redis-ceiling-get' : 'redis-ceiling-set', label, connections, stats, cpu, expect: '2xx', ratio: null }
}

/**
 * The Redis part (issue 10): the bench's own redis-server, and, for get-redis and
 * put-redis, a Simple KV server on the Redis engine with one project `redis` holding
 * --keys keys. At each connection count a row is preceded by the bare Redis round trip
 * it is bounded by (redis-benchmark GET or SET, when redis-ceiling runs) and by its
 * paired bare Fastify run. The server CPU of those rows is Simple KV's and redis-server's.
 */
async function runRedis (opts: Options, tmp: string, rows: Row[], pair: BareServer | null): Promise<RedisPart> {
  const dir = join(tmp, 'redis')
  mkdirSync(dir)
  const redis = await RedisServer.start(opts.redisServer, join(dir, 'redis-data'), serverCpus, 15_000)
  const info = redis.info!
  log(`redis-server ${info.version} ready on 127.0.0.1:${redis.port} (pid ${redis.pid}; appendonly ${info.appendonly}, ` +
    `appendfsync ${info.appendfsync}, save '${info.save}'; log ${redis.logPath})`)
  if (info.appendonly !== 'yes' || info.appendfsync !== 'always') {
    warn(`redis-server runs with appendonly ${info.appendonly}, appendfsync ${info.appendfsync}, not the yes / always it was started with: its numbers are not comparable`)
  }
  const part: RedisPart = { redis: info, server: null, ceilings: [] }
  try {
    const ceiling = opts.only.has('redis-ceiling')
    if (ceiling) {
      await redis.preloadCeilingKeys(opts.keys)
      log(`wrote ${fmtInt(opts.keys)} keys x 100 B into database 1 for redis-benchmark's GETs`)
    }
    const engine = opts.only.has('get-redis') || opts.only.has('put-redis')
    const keys: Keys = { system: newApiKey(), disk: newApiKey(), mem: newApiKey() }
    const target: RedisTarget = { url: redis.url(0), key: newApiKey() }
    const srv = engine ? await startRealServer(opts, dir, keys, 'server-redis', 30_000, target) : null
    try {
      const headers = bearer(target.key)
      if (srv !== null) {
        const value = makeValueFn()
        const t0 = process.hrtime.bigint()
        const st = await loadKeys(srv.port, 'redis', target.key, opts.keys, value, 32, 120_000)
        checkLoad(`loading ${opts.keys} keys into 'redis'`, st, opts.keys)
        const v = await verifySample(srv.port, 'redis', target.key, opts.keys, value, 100)
        if (v.mismatches > 0) warn(`after loading 'redis': ${v.mismatches} of ${v.checked} sampled keys wrong; first: ${v.firstProblem}`)
        log(`loaded ${fmtInt(opts.keys)} keys into 'redis' (Redis engine) in ${msSince(t0).toFixed(0)} ms (${fmtInt(st.okPerSec)} PUT/s), sample check ${v.checked - v.mismatches}/${v.checked} ok`)
        part.server = { rssAfterPreloadBytes: readMem(srv.child.pid)?.rssBytes ?? null }
      }
      const parts = [
        { id: 'get-redis' as const, test: 'get' as const, spec: (port: number, c: number): MeasureSpec => ({ port, connections: c, headers, poolFor: () => getPool(opts.keys, (k) => storePath('redis', k)) }) },
        { id: 'put-redis' as const, test: 'set' as const, spec: (port: number, c: number): MeasureSpec => ({ port, connections: c, headers, poolFor: () => putPool(opts.keys, 'redis') }) }
      ]
      for (const p of parts) {
        const measured = srv !== null && opts.only.has(p.id)
        if (!measured && !ceiling) continue
        for (const c of opts.connections) {
          const bound = ceiling ? await measureCeiling(opts, redis, p.test, c, part.ceilings) : null
          if (bound !== null) rows.push(bound)
          if (!measured) continue
          const row = await pairedRow(opts, pair, p.id, WORKLOAD_LABELS[p.id], [srv.child.pid, redis.pid], p.spec(srv.port, c))
          if (bound !== null) row.pairedCeiling = { label: bound.label, okPerSec: bound.stats.okPerSec, p99Ms: bound.stats.latencyMs.p99 }
          rows.push(row)
        }
      }
      if (srv !== null) {
        const mem = readMem(srv.child.pid)
        part.server = { ...part.server, rssAfterWorkloadsBytes: mem?.rssBytes ?? null, peakRssBytes: mem?.hwmBytes ?? null }
        if (!srv.child.running) throw new Error(`the Redis engine's server exited during the workloads:\n${srv.child.tail()}`)
      }
      if (!redis.running) throw new Error(`redis-server exited during the workloads:\n${redis.tail()}`)
    } finally {
      if (srv !== null) await stopServer(srv.child, 30_000)
    }
  } finally {
    const r = await redis.stop(10_000)
    if (r.killed) warn('redis-server did not exit within 10 s of SIGTERM and was killed')
    else if (r.code !== 0 && r.code !== null) warn(`redis-server exited with code ${r.code} after SIGTERM`)
  }
  return part
}

function dirSizes (dir: string): { total: number, files: Record<string, number> } {
  const files: Record<string, number> = {}
  let total = 0
  const walk = (d: string, prefix: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p, prefix + e.name + '/')
      else if (e.isFile()) {
        const size = statSync(p).size
        files[prefix + e.name] = size
        total += size
      }
    }
  }
  if (existsSync(dir)) walk(dir, '')
  return { total, files }
}

/** Write storage_data/disk_store.json (contract section 8 format) with keys 0..n-1. */
function writeStoreFile (dir: string, n: number, value: (i: number) => string): void {
  const storage = join(dir, 'storage_data')
  mkdirSync(storage, { recursive: true, mode: 0o700 })
  const path = join(storage, 'disk_store.json')
  const now = Math.floor(Date.now() / 1000)
  writeFileSync(path, '{', { mode: 0o600 })
  for (let start = 0; start < n; start += 10_000) {
    const parts: string[] = []
    for (let i = start; i < Math.min(n, start + 10_000); i++) {
      const v = value(i)
      const rec = { value: v, created_at: now, updated_at: now, size_bytes: Buffer.byteLength(v), type: 'string' }
      parts.push(`${JSON.stringify(keyName(i))}:${JSON.stringify(rec)}`)
    }
    appendFileSync(path, (start === 0 ? '' : ',') + parts.join(','))
  }
  appendFileSync(path, '}')
}

/**
 * The memory and restart part; with `listWith`, the list part then runs on the
 * restarted server (after its RSS is read, so the ordered index it builds is not
 * counted in the memory numbers).
 */
async function runMillion (opts: Options, tmp: string, listWith: { pair: BareServer | null, rows: Row[] } | null): Promise<{ million: MillionResult, list: ListResult | null }> {
  const dir = join(tmp, 'million')
  mkdirSync(dir)
  const n = opts.millionKeys
  const keys: Keys = { system: newApiKey(), disk: newApiKey(), mem: newApiKey() }
  const value = makeValueFn()
  let fileStartMs: number | null = null
  if (opts.millionLoad === 'file') {
    const t0 = process.hrtime.bigint()
    writeStoreFile(dir, n, value)
    log(`memory/restart: wrote ${fmtInt(n)} keys x 100 B to storage_data/disk_store.json in ${msSince(t0).toFixed(0)} ms; starting the server on it`)
  } else {
    log(`memory/restart: loading ${fmtInt(n)} keys x 100 B into on-disk project 'disk' ` +
      `(${opts.millionConnections} connections, one text/plain PUT per key)`)
  }
  let srv: RealServer
  try {
    srv = await startRealServer(opts, dir, keys, 'server-million', opts.millionLoad === 'file' ? 120_000 : 30_000)
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    warn(`memory/restart: the server did not start${opts.millionLoad === 'file' ? ` on ${fmtInt(n)} keys on disk` : ''}: ${msg}`)
    const million: MillionResult = {
      keys: n,
      loadMode: opts.millionLoad,
      loadConnections: null,
      loadSeconds: null,
      loadOkPerSec: null,
      loadNon2xx: 0,
      loadStatusCounts: {},
      loadErrors: 0,
      fileStartMs: null,
      rssEmptyBytes: null,
      rssLoadedBytes: null,
      rssAfterSettleBytes: null,
      peakRssBytes: null,
      shutdownMs: null,
      shutdownExit: null,
      shutdownKilled: false,
      storageBytes: dirSizes(join(dir, 'storage_data')).total,
      storageFiles: dirSizes(join(dir, 'storage_data')).files,
      restartToFirstGetMs: null,
      restartError: `${opts.millionLoad === 'file' ? 'first start on the store file' : 'start'} failed: ${msg.split('\n').slice(0, 3).join(' | ')}`,
      rssAfterRestartBytes: null,
      sampleChecked: 0,
      sampleMismatches: 0
    }
    if (listWith !== null) warn('list: not run, the million part\'s server did not start')
    return { million, list: null }
  }
  let result: MillionResult
  let list: ListResult | null = null
  let restarted: Child | null = null
  try {
    let rssEmpty: number | null = null
    let load: RunStats | null = null
    if (opts.millionLoad === 'put') {
      rssEmpty = readMem(srv.child.pid)?.rssBytes ?? null
      const loadStart = Date.now()
      load = await loadKeys(srv.port, 'disk', keys.disk, n, value, opts.millionConnections, 15 * 60_000, (resp, ok) => {
        const secs = (Date.now() - loadStart) / 1000
        log(`  ... ${fmtInt(ok)} of ${fmtInt(n)} PUTs ok (${fmtInt(resp - ok)} not) after ${secs.toFixed(0)} s, ` +
          `${fmtInt(ok / secs)}/s, server RSS ${fmtMB(readMem(srv.child.pid)?.rssBytes ?? null)}`)
      })
      checkLoad(`loading ${n} keys`, load, n)
      log(`loaded ${fmtInt(load.ok)} keys in ${load.seconds.toFixed(1)} s (${fmtInt(load.okPerSec)} PUT/s)`)
    } else {
      fileStartMs = msSince(srv.child.spawnedAt)
      const v = await verifySample(srv.port, 'disk', keys.disk, n, value, 100)
      if (v.mismatches > 0) warn(`server started on the written store file but ${v.mismatches} of ${v.checked} sampled keys are wrong; first: ${v.firstProblem}`)
      log(`server started on ${fmtInt(n)} keys in ${fileStartMs.toFixed(0)} ms; sample check ${v.checked - v.mismatches}/${v.checked} ok`)
    }
    const rssLoaded = readMem(srv.child.pid)?.rssBytes ?? null
    log(`RSS ${fmtMB(rssLoaded)}; settling 3 s`)
    await sleep(3000)
    const settled = readMem(srv.child.pid)
    if (!srv.child.running) throw new Error(`server exited while loading:\n${srv.child.tail()}`)

    const stop = await stopChild(srv.child, 180_000)
    if (stop.killed) warn('server did not exit within 180 s of SIGTERM after the 1M load and was killed')
    const storage = dirSizes(join(dir, 'storage_data'))
    log(`stopped in ${stop.ms.toFixed(0)} ms (exit ${stop.code ?? stop.signal}); storage_data ${fmtMB(storage.total)} ${JSON.stringify(storage.files)}`)

    // Restart: time from spawn to the first GET of a known key that returns its value.
    const known = n - 1
    const child = spawnChild('server-restart', [...opts.nodeArgs, opts.server, '--config', srv.configPath], {
      cwd: REPO,
      logPath: join(dir, 'server-restart.log'),
      cpuList: serverCpus
    })
    restarted = child
    let restartMs: number | null = null
    let restartError: string | null = null
    try {
      restartMs = await waitForOk(child, srv.port, storePath('disk', keyName(known)), {
        timeoutMs: 120_000,
        intervalMs: 5,
        headers: bearer(keys.disk),
        accept: (body) => {
          try {
            const env = JSON.parse(body) as { data?: { value?: unknown } }
            return env.data?.value === value(known)
          } catch {
            return false
          }
        }
      })
      log(`restart: first GET of ${keyName(known)} answered with its value ${restartMs.toFixed(0)} ms after spawn`)
    } catch (err) {
      restartError = err instanceof Error ? err.message.split('\n')[0]! : String(err)
      warn(`restart failed: ${err instanceof Error ? err.message : String(err)}`)
    }
    let sample = { checked: 0, mismatches: 0, firstProblem: null as string | null }
    if (restartMs !== null) {
      sample = await verifySample(srv.port, 'disk', keys.disk, n, value, 200)
      if (sample.mismatches > 0) warn(`after restart ${sample.mismatches} of ${sample.checked} sampled keys wrong; first: ${sample.firstProblem}`)
      else log(`after restart all ${sample.checked} sampled keys have their values`)
    }
    const rssRestart = readMem(child.pid)?.rssBytes ?? null
    result = {
      keys: n,
      loadMode: opts.millionLoad,
      loadConnections: load === null ? null : opts.millionConnections,
      loadSeconds: load === null ? null : load.seconds,
      loadOkPerSec: load === null ? null : load.okPerSec,
      loadNon2xx: load === null ? 0 : load.non2xx,
      loadStatusCounts: load === null ? {} : load.statusCounts,
      loadErrors: load === null ? 0 : load.errors,
      fileStartMs,
      rssEmptyBytes: rssEmpty,
      rssLoadedBytes: rssLoaded,
      rssAfterSettleBytes: settled?.rssBytes ?? null,
      peakRssBytes: settled?.hwmBytes ?? null,
      shutdownMs: stop.ms,
      shutdownExit: String(stop.code ?? stop.signal),
      shutdownKilled: stop.killed,
      storageBytes: storage.total,
      storageFiles: storage.files,
      restartToFirstGetMs: restartMs,
      restartError,
      rssAfterRestartBytes: rssRestart,
      sampleChecked: sample.checked,
      sampleMismatches: sample.mismatches
    }
    if (listWith !== null) {
      if (restartMs === null) warn('list: not run, the restart of the million part failed')
      else list = await runList(opts, { pid: child.pid, port: srv.port }, keys.disk, n, listWith.pair, listWith.rows)
    }
  } finally {
    if (srv.child.running) await stopServer(srv.child, 60_000)
    if (restarted !== null && restarted.running) await stopServer(restarted, 60_000)
  }
  return { million: result, list }
}

// ---------------------------------------------------------------- listing (issue 11)

const keysPath = (project: string, query: string) => `/api/v1/projects/${encodeURIComponent(project)}/keys?${query}`

interface ListPageBody {
  data?: { items?: Array<{ key?: unknown }>, next_cursor?: unknown, rev?: unknown }
}

/** One listing call; the parsed page, or null when the answer is not a 200 page. */
async function listCall (port: number, apiKey: string, path: string, agent: Agent | undefined, timeoutMs: number): Promise<{ status: number, ms: number, keys: string[], next: string | null, rev: number | null, raw: string }> {
  const t0 = process.hrtime.bigint()
  const res = await httpRequest(port, 'GET', path, bearer(apiKey), undefined, { timeoutMs, ...(agent !== undefined ? { agent } : {}) })
  const ms = msSince(t0)
  let keys: string[] = []
  let next: string | null = null
  let rev: number | null = null
  if (res.status === 200) {
    try {
      const data = (JSON.parse(res.body) as ListPageBody).data
      keys = (data?.items ?? []).map((i) => String(i.key))
      next = typeof data?.next_cursor === 'string' ? data.next_cursor : null
      rev = typeof data?.rev === 'number' ? data.rev : null
    } catch {}
  }
  return { status: res.status, ms, keys, next, rev, raw: res.body }
}

/**
 * Listing pages of 100 keys out of the `n` keys loaded into `disk` on a running
 * server: the first call (it builds the ordered index) timed on its own, a walk
 * over every key in pages of 1,000 that checks order and count and keeps each
 * page's cursor, then pages of 100 from random cursors and, for comparison, GET
 * record of random keys of the same store, each beside a paired bare Fastify run.
 */
async function runList (opts: Options, server: { pid: number, port: number }, apiKey: string, n: number, pair: BareServer | null, rows: Row[]): Promise<ListResult> {
  const { pid, port } = server
  log(`list: ${fmtInt(n)} keys in 'disk'; first listing call (builds the ordered index)`)
  const rssBeforeIndex = readMem(pid)?.rssBytes ?? null
  const first = await listCall(port, apiKey, keysPath('disk', 'limit=100'), undefined, 300_000)
  if (first.status !== 200 || first.keys.length !== Math.min(100, n)) {
    warn(`list: the first listing call answered HTTP ${first.status} with ${first.keys.length} items: ${first.raw.slice(0, 200)}`)
  }
  const second = await listCall(port, apiKey, keysPath('disk', 'limit=100'), undefined, 60_000)
  const rssAfterIndex = readMem(pid)?.rssBytes ?? null
  log(`list: first call ${first.ms.toFixed(0)} ms, the same call again ${second.ms.toFixed(1)} ms; RSS ${fmtMB(rssBeforeIndex)} -> ${fmtMB(rssAfterIndex)}`)

  // The cursors the workload starts from are the walk's own: a cursor is opaque, so only the server makes them.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const cursors: string[] = []
  let walkKeys = 0
  let pages = 0
  let previous: string | null = null
  let problem: string | null = null
  let cursor: string | null = null
  const walkStart = process.hrtime.bigint()
  const walkDeadline = Date.now() + 300_000
  try {
    for (;;) {
      const page = await listCall(port, apiKey, keysPath('disk', `limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`), agent, 60_000)
      pages++
      if (page.status !== 200) {
        problem = `page ${pages}: HTTP ${page.status} ${page.raw.slice(0, 200)}`
        break
      }
      for (const k of page.keys) {
        if (previous !== null && !(previous < k)) {
          problem ??= `page ${pages}: ${JSON.stringify(k)} after ${JSON.stringify(previous)}`
        }
        previous = k
      }
      walkKeys += page.keys.length
      if (page.next === null) break
      cursors.push(page.next)
      cursor = page.next
      if (Date.now() > walkDeadline) {
        problem = `walk stopped after 300 s at ${fmtInt(walkKeys)} keys`
        break
      }
    }
  } finally {
    agent.destroy()
  }
  const walkSeconds = msSince(walkStart) / 1000
  if (problem === null && walkKeys !== n) problem = `the walk saw ${fmtInt(walkKeys)} keys, ${fmtInt(n)} loaded`
  if (problem !== null) warn(`list: ${problem}`)
  log(`list: walked ${fmtInt(walkKeys)} keys in ${fmtInt(pages)} pages of up to 1,000 in ${walkSeconds.toFixed(1)} s; ${fmtInt(cursors.length)} cursors`)

  const h = bearer(apiKey)
  const listLabel = `${WORKLOAD_LABELS.list} (${fmtInt(n)} keys)`
  const getLabel = `GET record (same ${fmtInt(n)} keys)`
  const runs: Array<{ id: Row['id'], label: string, spec: (c: number) => MeasureSpec }> = [
    { id: 'list', label: listLabel, spec: (c) => ({ port, connections: c, headers: h, poolFor: () => listPool('disk', cursors) }) },
    { id: 'list-get-record', label: getLabel, spec: (c) => ({ port, connections: c, headers: h, poolFor: () => getPool(n, (k) => storePath('disk', k)) }) }
  ]
  for (const c of opts.connections) {
    for (const r of runs) {
      rows.push(await pairedRow(opts, pair, r.id, r.label, pid, r.spec(c)))
    }
  }
  return {
    keys: n,
    firstListMs: first.ms,
    firstListStatus: first.status,
    secondListMs: second.ms,
    rssBeforeIndexBytes: rssBeforeIndex,
    rssAfterIndexBytes: rssAfterIndex,
    walkSeconds,
    walkPages: pages,
    walkKeys,
    walkOk: problem === null,
    walkProblem: problem,
    cursors: cursors.length
  }
}

/** The list part on a server of its own (when the million part does not run): load, then runList. */
async function runListAlone (opts: Options, tmp: string, pair: BareServer | null, rows: Row[]): Promise<ListResult | null> {
  const dir = join(tmp, 'list')
  mkdirSync(dir)
  const n = opts.millionKeys
  const keys: Keys = { system: newApiKey(), disk: newApiKey(), mem: newApiKey() }
  const value = makeValueFn()
  if (opts.millionLoad === 'file') writeStoreFile(dir, n, value)
  const srv = await startRealServer(opts, dir, keys, 'server-list', opts.millionLoad === 'file' ? 120_000 : 30_000)
  try {
    if (opts.millionLoad === 'put') {
      log(`list: loading ${fmtInt(n)} keys by PUT (${opts.millionConnections} connections)`)
      const load = await loadKeys(srv.port, 'disk', keys.disk, n, value, opts.millionConnections, 15 * 60_000)
      checkLoad(`list: loading ${n} keys`, load, n)
      log(`list: loaded ${fmtInt(load.ok)} keys in ${load.seconds.toFixed(1)} s`)
    }
    return await runList(opts, { pid: srv.child.pid, port: srv.port }, keys.disk, n, pair, rows)
  } finally {
    await stopServer(srv.child, 180_000)
  }
}

// ---------------------------------------------------------------- mass expiry (issue 11)

/** Keys of the expire part: their own prefix, so one listing shows whether any is left. */
const expireKey = (i: number) => 'x' + String(i).padStart(7, '0')
const EXPIRE_PREFIX = 'x'
/** The engine reclaims at most this many keys per round, one revision per round. */
const RECLAIM_ROUND = 1000
/** How long after expires_at the part waits for every round before it gives up. */
const RECLAIM_WAIT_MS = 90_000

function windowOf (h: LatencyHistogram, non2xx: number): LatencyWindow {
  return { requests: h.count, non2xx, p50Ms: h.quantile(0.5), p99Ms: h.quantile(0.99), maxMs: h.count === 0 ? NaN : h.maxMs }
}

/**
 * The expire part on one project: `--keys` other keys, then `--expire-keys`
 * keys PUT with one `expires_at` a few seconds ahead (chosen from the rate of
 * the first load, so the load ends before it), a GET record loop on the other
 * keys from the end of the load until a second after the last reclaim round,
 * and a poller that lists the expiring prefix (limit=1) every 20 ms: the listing
 * is empty from the instant they expire; the revision it carries grows by one
 * per reclaim round, so the reclaim is done, and persisted, when it has grown
 * by one round per 1,000 keys (no other writes run meanwhile).
 */
async function runExpireOne (opts: Options, srv: RealServer, project: 'disk' | 'mem'): Promise<ExpireResult> {
  const { port } = srv
  const apiKey = srv.keys[project]
  const h = bearer(apiKey)
  const n = opts.expireKeys
  const value = makeValueFn()
  const t0 = process.hrtime.bigint()
  const pre = await loadKeys(port, project, apiKey, opts.keys, value, 64, 120_000)
  checkLoad(`expire: loading ${opts.keys} keys into '${project}'`, pre, opts.keys)
  const rate = Math.max(100, pre.okPerSec)
  // 1.25 x the time the load should take at the rate just seen, plus 3 s of GETs before the expiry;
  // a key PUT after that instant would be refused (400), and the load check reports it.
  const expiresAtMs = Math.ceil(Date.now() + (1.25 * n / rate) * 1000 + 3000)
  const expiresAt = expiresAtMs / 1000
  log(`expire '${project}': ${fmtInt(opts.keys)} other keys in ${msSince(t0).toFixed(0)} ms (${fmtInt(pre.okPerSec)} PUT/s); ` +
    `loading ${fmtInt(n)} keys with expires_at=${expiresAt} (${((expiresAtMs - Date.now()) / 1000).toFixed(1)} s ahead)`)
  let next = 0
  const load = await runLoad({
    port,
    connections: 64,
    amount: n,
    headers: { ...h, 'content-type': 'text/plain; charset=utf-8' },
    requests: [{
      method: 'PUT',
      setupRequest: (req: AcRequest) => {
        const i = next++ % n
        req.path = `${storePath(project, expireKey(i))}?expires_at=${expiresAt}`
        req.body = value(i)
        return req
      }
    }],
    watchdogMs: Math.max(60_000, expiresAtMs - Date.now() + 30_000)
  })
  checkLoad(`expire: loading ${n} expiring keys into '${project}'`, load, n)
  const headroomMs = expiresAtMs - Date.now()
  log(`expire '${project}': loaded ${fmtInt(load.ok)} in ${load.seconds.toFixed(1)} s (${fmtInt(load.okPerSec)} PUT/s); ${(headroomMs / 1000).toFixed(1)} s until they expire`)
  if (headroomMs < 1000) warn(`expire '${project}': the load ended ${(headroomMs / 1000).toFixed(1)} s before expires_at: the "before" window is short or missing`)

  // The GET loop: latencies sorted into windows by the phase the answer arrived in.
  type Phase = 'warm' | 'before' | 'during' | 'after'
  let phase: Phase = 'warm'
  const hists = { before: new LatencyHistogram(), during: new LatencyHistogram(), after: new LatencyHistogram() }
  const bad = { before: 0, during: 0, after: 0 }
  const conns = Math.max(...opts.connections)
  const stop = new AbortController()
  const loopSeconds = (expiresAtMs - Date.now() + RECLAIM_WAIT_MS) / 1000 + 5
  const cpuBefore = cpuSnap(srv.child.pid)
  const loop = runLoad({
    port,
    connections: conns,
    duration: loopSeconds,
    headers: h,
    poolFor: () => getPool(opts.keys, (k) => storePath(project, k)),
    watchdogMs: (loopSeconds + 20) * 1000,
    signal: stop.signal,
    onSample: (ms, status) => {
      if (phase === 'warm') return
      hists[phase].record(ms)
      if (status < 200 || status >= 300) bad[phase]++
    }
  })
  const warmTimer = setTimeout(() => { if (phase === 'warm') phase = 'before' }, Math.min(500, Math.max(0, headroomMs / 4)))
  const expiryTimer = setTimeout(() => { phase = 'during' }, Math.max(0, expiresAtMs - Date.now()))

  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const rounds = Math.ceil(n / RECLAIM_ROUND)
  let baseRev: number | null = null
  let lastRev: number | null = null
  let invisibleAt: number | null = null
  let firstRoundAt: number | null = null
  let reclaimedAt: number | null = null
  let polls = 0
  let pollMs = 0
  let emptyEarly = false
  const listing = keysPath(project, `limit=1&prefix=${EXPIRE_PREFIX}`)
  try {
    while (Date.now() < expiresAtMs + RECLAIM_WAIT_MS) {
      const p = await listCall(port, apiKey, listing, agent, 10_000)
      const at = Date.now()
      polls++
      pollMs += p.ms
      if (p.status !== 200 || p.rev === null) throw new Error(`expire: listing answered HTTP ${p.status}: ${p.raw.slice(0, 200)}`)
      if (baseRev === null) {
        baseRev = p.rev
        if (at >= expiresAtMs) warn(`expire '${project}': the first poll came after expires_at; reclaim rounds may have begun before the base revision was read`)
      }
      if (at >= expiresAtMs && p.keys.length === 0 && invisibleAt === null) invisibleAt = at
      if (at < expiresAtMs && p.keys.length === 0 && !emptyEarly) {
        emptyEarly = true
        warn(`expire '${project}': the listing of the expiring keys was empty before expires_at`)
      }
      if (p.rev !== baseRev && firstRoundAt === null) firstRoundAt = at
      lastRev = p.rev
      if (p.rev >= baseRev + rounds && invisibleAt !== null) {
        reclaimedAt = at
        break
      }
      await sleep(20)
    }
  } finally {
    agent.destroy()
    clearTimeout(warmTimer)
    clearTimeout(expiryTimer)
  }
  phase = 'after'
  await sleep(1000)
  stop.abort()
  const loopStats = await loop
  const cpu = cpuUse(cpuBefore, cpuSnap(srv.child.pid))
  if (reclaimedAt === null) {
    warn(`expire '${project}': not every reclaim round was seen within ${RECLAIM_WAIT_MS / 1000} s of expires_at ` +
      `(revision ${lastRev ?? '-'}, expected ${baseRev === null ? '-' : baseRev + rounds})`)
  }
  if (loopStats.errors > 0) warn(`expire '${project}': ${loopStats.errors} connection errors in the GET loop`)
  const gone = await httpRequest(port, 'GET', storePath(project, expireKey(0)), h, undefined, { timeoutMs: 10_000 })
  if (gone.status !== 404) warn(`expire '${project}': an expired key answered HTTP ${gone.status}, 404 expected`)
  const since = (t: number | null) => (t === null ? null : t - expiresAtMs)
  const result: ExpireResult = {
    project,
    onDisk: project === 'disk',
    keys: n,
    loadConnections: 64,
    loadSeconds: load.seconds,
    loadOkPerSec: load.okPerSec,
    loadNon2xx: load.non2xx,
    loadStatusCounts: load.statusCounts,
    expiresAt,
    headroomMs,
    expectedRounds: rounds,
    baseRev,
    finalRev: lastRev,
    invisibleMs: since(invisibleAt),
    firstRoundMs: since(firstRoundAt),
    reclaimedMs: since(reclaimedAt),
    polls,
    pollMeanMs: polls === 0 ? NaN : pollMs / polls,
    expiredKeyStatus: gone.status,
    getConnections: conns,
    before: windowOf(hists.before, bad.before),
    during: windowOf(hists.during, bad.during),
    after: windowOf(hists.after, bad.after),
    cpu
  }
  log(`expire '${project}': ${describeExpire(result)}`)
  return result
}

function describeWindow (w: LatencyWindow): string {
  return `${fmtInt(w.requests)} GETs, p50 ${fmtMs(w.p50Ms)} / p99 ${fmtMs(w.p99Ms)} / max ${fmtMs(w.maxMs)} ms${w.non2xx > 0 ? `, non-2xx ${w.non2xx}` : ''}`
}

function describeExpire (e: ExpireResult): string {
  const s = (ms: number | null) => (ms === null ? 'not seen' : `${fmtInt(ms)} ms`)
  return `${fmtInt(e.keys)} keys (${e.onDisk ? 'on disk' : 'memory only'}): invisible after ${s(e.invisibleMs)}, first reclaim round after ${s(e.firstRoundMs)}, ` +
    `all ${e.expectedRounds} rounds after ${s(e.reclaimedMs)} (polls every 20 ms + ${fmtMs(e.pollMeanMs)} ms); expired key GET -> ${e.expiredKeyStatus}; ` +
    `GET record @${e.getConnections} before: ${describeWindow(e.before)}; during the reclaim: ${describeWindow(e.during)}; after: ${describeWindow(e.after)}; ` +
    `cpu srv/gen/other ${e.cpu.serverPct ?? '-'}/${e.cpu.generatorPct}/${e.cpu.otherPct ?? '-'}%`
}

/** The expire part: a fresh server, each project of --expire-projects in turn. */
async function runExpire (opts: Options, tmp: string): Promise<ExpireResult[]> {
  const dir = join(tmp, 'expire')
  mkdirSync(dir)
  const keys: Keys = { system: newApiKey(), disk: newApiKey(), mem: newApiKey() }
  const srv = await startRealServer(opts, dir, keys, 'server-expire', 30_000)
  const out: ExpireResult[] = []
  try {
    for (const project of opts.expireProjects) {
      await waitQuiet(opts, `expire '${project}'`)
      out.push(await runExpireOne(opts, srv, project))
    }
    if (!srv.child.running) throw new Error(`server exited during the expire part:\n${srv.child.tail()}`)
  } finally {
    await stopServer(srv.child, 60_000)
  }
  return out
}

// ---------------------------------------------------------------- main

/** Share of a run's answers that were 412 (put-cas: should be 0). */
function share412 (r: Row): number {
  return r.stats.responses === 0 ? NaN : (r.stats.statusCounts['412'] ?? 0) / r.stats.responses
}

async function main (): Promise<void> {
  const opts = parseOptions()
  installCleanupHandlers()
  setKeepTemp(opts.keepTemp)
  const hardStop = setTimeout(() => {
    process.stderr.write(`\n[bench] ERROR: run exceeded --max-minutes ${opts.maxMinutes}; killing servers\n`)
    process.exit(4)
  }, opts.maxMinutes * 60_000)
  hardStop.unref()

  if (!opts.bareOnly && !existsSync(opts.server)) {
    fail(`server entry ${opts.server} not found (run npm run build, or pass --server <file>, or --bare-only)`)
  }
  for (const f of ['bare-http.js', 'bare-fastify.js']) {
    if (!existsSync(join(HERE, f))) fail(`${join(HERE, f)} missing: run npm run build`)
  }
  mkdirSync(opts.tmpdir, { recursive: true })
  if (opts.profileDir !== null) {
    mkdirSync(opts.profileDir, { recursive: true })
    const ignore = join(REPO, 'bench', 'profiles', '.gitignore')
    if (!existsSync(ignore)) writeFileSync(ignore, '# CPU profiles written by npm run bench -- --profile\n*\n!.gitignore\n')
    log(`CPU profiles of the real server go to ${opts.profileDir}`)
  }
  const tmp = makeTempDir('simple-kv-bench-', opts.tmpdir)
  registerTempDir(tmp)

  const machine = machineInfo(opts)
  log(`${machine.cpus} x ${machine.cpuModel}, ${fmtMB(machine.totalMemBytes)} RAM, node ${machine.node}, ` +
    `autocannon ${machine.autocannon}, fastify ${machine.fastify}, load avg ${machine.loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}`)
  log(`${opts.duration} s per run after ${opts.warmup} s warm-up; connections ${opts.connections.join(', ')}; ` +
    `${opts.keys} keys of 100 B; temp ${tmp} (${machine.tmpdirFsType})${opts.keepTemp ? ' (kept)' : ''}`)
  if (machine.tmpdirFsType === 'tmpfs' || machine.tmpdirFsType === 'ramfs') {
    warn(`${opts.tmpdir} is ${machine.tmpdirFsType}: fsync costs nothing there, so on-disk PUT numbers overstate a real disk. Use --tmpdir on a real file system.`)
  }
  if (machine.cpus < 2) warn('fewer than 2 CPUs: server and load generator share one core')
  if (opts.pin) {
    const n = machine.cpus
    const r = spawnSync('taskset', ['-a', '-pc', String(n - 1), String(process.pid)], { encoding: 'utf8', timeout: 5000 })
    if (n < 2 || r.status !== 0) {
      warn(`--pin ignored: ${n < 2 ? 'needs 2 CPUs' : `taskset failed: ${(r.stderr || r.error?.message || '').trim()}`}`)
    } else {
      serverCpus = n === 2 ? '0' : `0-${n - 2}`
      log(`pinned: servers on CPU ${serverCpus}, load generator on CPU ${n - 1}`)
    }
  }
  // The Redis parts need redis-server (and redis-benchmark for the ceiling): a run that did not
  // name them goes on without them; one that did stops here.
  const needs: Array<[WorkloadId, string]> = [['get-redis', opts.redisServer], ['put-redis', opts.redisServer], ['redis-ceiling', opts.redisServer], ['redis-ceiling', opts.redisBenchmark]]
  const checked = new Map<string, boolean>()
  for (const [id, bin] of needs) {
    if (opts.bareOnly || !opts.only.has(id)) continue
    if (!checked.has(bin)) checked.set(bin, haveBinary(bin))
    if (checked.get(bin) === true) continue
    if (opts.named.has(id)) fail(`${id} needs ${bin}, which does not run (${bin} --version failed); install Redis or pass --redis-server / --redis-benchmark`)
    opts.only.delete(id)
    warn(`${id} skipped: ${bin} does not run (${bin} --version failed); install Redis or pass --redis-server / --redis-benchmark`)
  }

  const busy = await machineBusyPct(1000)
  log(`other processes used ${busy}% of one core over the last second`)
  if (busy > 20) warn(`the machine is busy before the run (${busy}% of a core used by other processes): expect noisy numbers`)

  const rows: Row[] = []
  const floods: FloodResult[] = []
  const t0 = Date.now()

  const real = opts.only.has('get-record') || opts.only.has('get-raw') || opts.only.has('put-mem') ||
    opts.only.has('put-disk') || opts.only.has('mixed') || opts.only.has('flood') || opts.only.has('put-cas')
  const listing = !opts.bareOnly && opts.only.has('list')
  const redisEngine = opts.only.has('get-redis') || opts.only.has('put-redis')
  const redisPart = redisEngine || opts.only.has('redis-ceiling')
  if (opts.only.has('bare-http')) await runBare(opts, tmp, 'bare-http', rows)
  // Bare Fastify stays up through the real server's workloads (the listing's and the Redis engine's too), to be measured beside each one.
  const pairWith = opts.only.has('bare-fastify') ? await runBare(opts, tmp, 'bare-fastify', rows, !opts.bareOnly && (real || listing || redisEngine) && opts.pair) : null

  let serverInfo: Record<string, unknown> | null = null
  let million: MillionResult | null = null
  let list: ListResult | null = null
  let expire: ExpireResult[] = []
  let redis: RedisPart | null = null
  if (!opts.bareOnly) {
    try {
      if (real) serverInfo = await runReal(opts, tmp, rows, floods, pairWith)
      if (redisPart) redis = await runRedis(opts, tmp, rows, pairWith)
      if (opts.million) {
        const m = await runMillion(opts, tmp, listing ? { pair: pairWith, rows } : null)
        million = m.million
        list = m.list
      } else if (listing) {
        list = await runListAlone(opts, tmp, pairWith, rows)
      }
    } finally {
      if (pairWith !== null) await stopServer(pairWith.child, 5000)
    }
    if (opts.only.has('expire')) expire = await runExpire(opts, tmp)
  }

  // Ratios to bare Fastify at the same connection count: the paired run beside the row when
  // there is one, else the bare run at the start.
  // The ceiling rows are redis-benchmark's, not HTTP: a ratio to bare Fastify would mean nothing.
  for (const r of rows) {
    if (r.id === 'redis-ceiling-get' || r.id === 'redis-ceiling-set') continue
    const bare = r.pairedBare?.okPerSec ?? rows.find((b) => b.id === 'bare-fastify' && b.connections === r.connections)?.stats.okPerSec
    r.ratio = bare === undefined || bare === 0 ? null : rowRate(r) / bare
    if (r.pairedCeiling !== undefined) r.ceilingRatio = r.pairedCeiling.okPerSec === 0 ? null : rowRate(r) / r.pairedCeiling.okPerSec
  }

  // Control: bare node:http must be clearly faster than bare Fastify, or the load generator is the limit.
  const controls: ControlCheck[] = []
  for (const c of opts.connections) {
    const h = rows.find((r) => r.id === 'bare-http' && r.connections === c)
    const f = rows.find((r) => r.id === 'bare-fastify' && r.connections === c)
    if (h === undefined || f === undefined) continue
    const ratio = h.stats.okPerSec / f.stats.okPerSec
    // One connection is a ping-pong bound by round-trip latency, not by anyone's
    // throughput; the generator-bottleneck test only means something under load.
    const checked = c >= 8
    const ok = !checked || ratio >= opts.controlMargin
    controls.push({ connections: c, bareHttp: h.stats.okPerSec, bareFastify: f.stats.okPerSec, ratio, ok, checked })
    if (!ok) {
      warn(
        `!!! LOAD GENERATOR BOTTLENECK? At ${c} connection(s) bare node:http (${fmtInt(h.stats.okPerSec)} req/s) is only ` +
          `${ratio.toFixed(2)}x bare Fastify (${fmtInt(f.stats.okPerSec)} req/s); it should be >= ${opts.controlMargin.toFixed(2)}x. ` +
          `The load generator, not the server, may be setting the pace: ratios at ${c} connection(s) mean little. !!!`
      )
    }
  }

  for (const r of rows) {
    const p = rowProblems(r)
    if (p !== '') warn(`${r.label} @${r.connections}: ${p}`)
  }
  const noisy = rows.filter((r) => r.id !== 'flood-attack' && r.cpu !== undefined && (r.cpu.otherPct ?? 0) > 25)
  if (noisy.length > 0) {
    warn(`other processes used > 25% of a core during ${noisy.length} run(s) ` +
      `(${noisy.map((r) => `${r.label} @${r.connections}: ${r.cpu?.otherPct}%`).join('; ')}): those numbers are noisy, rerun on a quiet machine`)
  }

  const targets = checkTargets(rows, floods, million, 1_000_000)

  // ---- print
  const out: string[] = []
  out.push('')
  out.push(`Simple KV benchmark  ${machine.date}  ${machine.cpus} x ${machine.cpuModel}, node ${machine.node}, ` +
    `${opts.duration} s/run, autocannon ${machine.autocannon} in-process on the same machine`)
  out.push('req/s counts 2xx answers only (the flood row counts its 401s); ratio = req/s / bare Fastify req/s at the same connections,')
  out.push('measured right before the row when "bare req/s" shows it (paired), else in the bare Fastify row')
  if (rows.length > 0) {
    out.push('')
    out.push(renderTable(rows))
    out.push('cpu% = percent of one core used during the measured run by the server / the load generator (this process) / everything else')
    if (redis !== null) {
      out.push('  (redis rows: server = Simple KV + redis-server; redis-benchmark rows: server = redis-server, generator = redis-benchmark)')
    }
  }
  out.push('')
  for (const c of controls) {
    out.push(`control @${c.connections}: bare node:http / bare Fastify = ${c.ratio.toFixed(2)} ` +
      (!c.checked
        ? '(not checked: one connection is latency-bound)'
        : c.ok
          ? `(ok, >= ${opts.controlMargin.toFixed(2)})`
          : `!!! below ${opts.controlMargin.toFixed(2)}: load generator may be the bottleneck, ratios unreliable !!!`))
  }
  if (redis !== null) {
    const r = redis.redis
    out.push('')
    out.push(`Redis engine: redis-server ${r.version} on 127.0.0.1:${r.port}, appendonly ${r.appendonly}, appendfsync ${r.appendfsync}, save '${r.save}'` +
      (rows.some((x) => x.pairedCeiling !== undefined)
        ? '; each row against the bare Redis round trip measured right before it on the same redis-server ' +
          `(redis-benchmark -c <conns> -d 100 -r ${opts.keys}, no pipelining):`
        : ''))
    for (const x of rows.filter((y) => y.pairedCeiling !== undefined)) {
      const c = x.pairedCeiling!
      out.push(`  ${x.label} @${x.connections}: ${fmtInt(x.stats.okPerSec)} req/s, p99 ${fmtMs(x.stats.latencyMs.p99)} ms = ` +
        `${fmtRatio(x.ceilingRatio ?? null)} of ${c.label} ${fmtInt(c.okPerSec)} req/s, p99 ${fmtMs(c.p99Ms)} ms`)
    }
  }
  if (million !== null) {
    out.push('')
    out.push(`memory/restart (${fmtInt(million.keys)} keys x 100 B, on-disk project): ` +
      (million.loadMode === 'put'
        ? `loaded by PUT in ${(million.loadSeconds ?? NaN).toFixed(1)} s (${fmtInt(million.loadOkPerSec ?? NaN)} PUT/s, non-2xx ${million.loadNon2xx}, errors ${million.loadErrors}); `
        : `loaded from a written store file, first start ${(million.fileStartMs ?? NaN).toFixed(0)} ms; `) +
      `RSS empty ${fmtMB(million.rssEmptyBytes)}, loaded ${fmtMB(million.rssLoadedBytes)}, settled ${fmtMB(million.rssAfterSettleBytes)}, peak ${fmtMB(million.peakRssBytes)}; ` +
      `shutdown ${million.shutdownMs === null ? '-' : `${million.shutdownMs.toFixed(0)} ms`}; store files ${fmtMB(million.storageBytes)}; ` +
      `restart to first GET ${million.restartToFirstGetMs === null ? 'FAILED' : `${million.restartToFirstGetMs.toFixed(0)} ms`}; ` +
      `RSS after restart ${fmtMB(million.rssAfterRestartBytes)}; sample ${million.sampleChecked - million.sampleMismatches}/${million.sampleChecked} ok`)
  }
  for (const r of rows.filter((x) => x.id === 'put-cas')) {
    out.push(`put-cas @${r.connections}: ${fmtInt(r.stats.statusCounts['412'] ?? 0)} of ${fmtInt(r.stats.responses)} answers 412 ` +
      `(${(share412(r) * 100).toFixed(3)}%; each connection owns its key, so 0 is expected)`)
  }
  if (list !== null) {
    out.push('')
    out.push(`listing (${fmtInt(list.keys)} keys on disk): first call ${list.firstListMs.toFixed(0)} ms (builds the ordered index; HTTP ${list.firstListStatus}), ` +
      `again ${fmtMs(list.secondListMs)} ms; RSS ${fmtMB(list.rssBeforeIndexBytes)} -> ${fmtMB(list.rssAfterIndexBytes)}; ` +
      `full walk in pages of 1,000: ${fmtInt(list.walkKeys)} keys, ${fmtInt(list.walkPages)} pages, ${list.walkSeconds.toFixed(1)} s ` +
      `(${list.walkOk ? 'in order, each once' : `PROBLEM: ${list.walkProblem}`})`)
    for (const c of opts.connections) {
      const l = rows.find((r) => r.id === 'list' && r.connections === c)
      const g = rows.find((r) => r.id === 'list-get-record' && r.connections === c)
      if (l === undefined || g === undefined) continue
      out.push(`  @${c}: page of 100 ${fmtInt(l.stats.okPerSec)} req/s, p99 ${fmtMs(l.stats.latencyMs.p99)} ms; ` +
        `GET record ${fmtInt(g.stats.okPerSec)} req/s, p99 ${fmtMs(g.stats.latencyMs.p99)} ms; page / GET = ${fmtRatio(l.stats.okPerSec / g.stats.okPerSec)}`)
    }
  }
  if (expire.length > 0) {
    out.push('')
    for (const e of expire) out.push(`expire '${e.project}': ${describeExpire(e)}`)
  }
  const genBound = rows.filter((r) => r.id !== 'flood-attack' && (r.cpu?.generatorPct ?? 0) >= 90)
  if (genBound.length > 0) {
    out.push(`note: the load generator used >= 90% of a core in ${genBound.length} run(s) ` +
      `(${genBound.map((r) => `${r.label} @${r.connections}`).join('; ')}): their req/s may be capped by the generator, not the server`)
  }
  out.push('')
  out.push('targets (issue 4):')
  out.push(renderTargets(targets))
  const failedControl = controls.filter((c) => !c.ok)
  if (failedControl.length > 0) {
    out.push(`!!! the control failed at ${failedControl.map((c) => c.connections).join(', ')} connection(s): ` +
      'ratio verdicts there are not trustworthy (see the warning above) !!!')
  }
  if (warnings.length > 0) {
    out.push('')
    out.push(`${warnings.length} warning(s):`)
    for (const w of warnings) out.push(`  - ${w}`)
  }
  process.stdout.write(out.join('\n') + '\n')

  // ---- JSON
  const report = {
    schema: 3,
    machine: { ...machine, pinned: serverCpus !== null },
    options: { ...opts, only: [...opts.only], named: [...opts.named], server: opts.bareOnly ? null : opts.server },
    wallSeconds: (Date.now() - t0) / 1000,
    workloads: rows.map((r) => ({
      id: r.id,
      label: r.label,
      reqPerSec: rowRate(r),
      ratioToBareFastify: r.ratio,
      ...(r.pairedBare !== undefined ? { pairedBare: r.pairedBare } : {}),
      ...(r.pairedCeiling !== undefined ? { pairedCeiling: r.pairedCeiling, ratioToRedisCeiling: r.ceilingRatio ?? null } : {}),
      expect: r.expect,
      cpuPercentOfOneCore: r.cpu ?? null,
      ...(r.id === 'put-cas' ? { share412: share412(r) } : {}),
      ...r.stats
    })),
    control: controls,
    flood: floods,
    server: serverInfo,
    million,
    list,
    expire,
    redis,
    targets,
    warnings,
    processes: spawnHistory()
  }
  mkdirSync(RESULTS_DIR, { recursive: true })
  const stamp = machine.date.replace(/[:.]/g, '-')
  const json = JSON.stringify(report, null, 2) + '\n'
  writeFileSync(join(RESULTS_DIR, `${stamp}.json`), json)
  writeFileSync(join(RESULTS_DIR, 'latest.json'), json)
  log(`results written to bench/results/${stamp}.json and bench/results/latest.json (${((Date.now() - t0) / 1000).toFixed(0)} s)`)

  if (opts.strict && targets.some((t) => t.verdict === 'MISS')) process.exitCode = 3
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(`\n[bench] ERROR: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  }
)
