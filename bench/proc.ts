// The bench's side of the shared process harness (test/support/process.ts):
// every server it starts is tracked here and killed on exit, error, SIGINT or
// SIGTERM, and its temp folder removed. Only 127.0.0.1 is ever used.

import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { ServerProcess, type HealthOptions } from '../test/support/process.js'
import { removeDir, type Teardown } from '../test/support/temp.js'

export type Child = ServerProcess

const live = new Set<Child>()
/** Children that are not node processes (redis-server, redis-benchmark), each with its own way to stop. */
const others = new Set<(timeoutMs: number) => Promise<unknown>>()
const history: Array<{ name: string, pid: number, args: string[] }> = []
/** Run on any way out of the process; each sends its SIGKILL synchronously. */
const exitTasks: Array<() => unknown> = []
const onExit: Teardown = { teardown: fn => { exitTasks.push(fn) } }

/** Every child started so far (name, pid, node arguments): maps --cpu-prof files to runs. */
export function spawnHistory (): ReadonlyArray<{ name: string, pid: number, args: string[] }> {
  return history
}

let keepTemp = false

export function setKeepTemp (keep: boolean): void {
  keepTemp = keep
}

export function registerTempDir (dir: string): void {
  onExit.teardown(() => { if (!keepTemp) removeDir(dir) })
}

/** Last in, first out, as teardowns go: the servers die before their temp folder is removed. */
function killAllNow (): void {
  for (const task of exitTasks.splice(0).reverse()) {
    try {
      void Promise.resolve(task()).catch(() => {})
    } catch {
      // best effort: the process is on its way out
    }
  }
}

let handlersInstalled = false
let shuttingDown = false

/** Kill every child on any way out of the process. */
export function installCleanupHandlers (): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', killAllNow)
  const onSignal = (sig: NodeJS.Signals): void => {
    if (shuttingDown) {
      killAllNow()
      process.exit(130)
    }
    shuttingDown = true
    process.stderr.write(`\n[bench] ${sig}: stopping ${live.size + others.size} child process(es)\n`)
    void stopAll(3000).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  process.on('uncaughtException', (err) => {
    process.stderr.write(`[bench] uncaught exception: ${err.stack ?? String(err)}\n`)
    killAllNow()
    process.exit(1)
  })
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`[bench] unhandled rejection: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    killAllNow()
    process.exit(1)
  })
}

export interface SpawnOptions {
  cwd: string
  /** File receiving the child's stdout and stderr; null discards them. */
  logPath: string | null
  /** Keep a pipe on the child's stdin (bare servers exit when it closes). */
  stdinPipe?: boolean
  /** Run under `taskset -c <cpuList>`. */
  cpuList?: string | null
  /** Added to the environment. */
  env?: NodeJS.ProcessEnv
}

export function spawnChild (name: string, args: string[], opts: SpawnOptions): Child {
  const child = ServerProcess.spawn(onExit, args, {
    name,
    cwd: opts.cwd,
    output: opts.logPath === null ? 'ignore' : { file: opts.logPath },
    stdin: opts.stdinPipe === true ? 'pipe' : 'ignore',
    cpus: opts.cpuList,
    env: { NODE_ENV: 'production', ...opts.env }
  })
  live.add(child)
  history.push({ name, pid: child.pid, args })
  const gone = (): void => { live.delete(child) }
  void child.exited().then(gone, gone)
  return child
}

/**
 * Track a child that is not a node process: `stop` (graceful, bounded) runs with the
 * others on a signal, and a SIGKILL is sent on any way out if it is still running.
 */
export function trackProcess (name: string, child: ChildProcess, stop: (timeoutMs: number) => Promise<unknown>): void {
  if (child.pid === undefined) return
  onExit.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  others.add(stop)
  const gone = (): void => { others.delete(stop) }
  child.once('close', gone)
  child.once('error', gone)
  history.push({ name, pid: child.pid, args: child.spawnargs })
}

export interface StopResult {
  ms: number
  code: number | null
  signal: NodeJS.Signals | null
  killed: boolean
}

/** SIGTERM, wait for exit; SIGKILL after timeoutMs. */
export async function stopChild (child: Child, timeoutMs: number): Promise<StopResult> {
  const t0 = process.hrtime.bigint()
  const exit = await child.stop('SIGTERM', timeoutMs)
  return { ms: msSince(t0), code: exit.code, signal: exit.signal, killed: exit.killed }
}

export async function stopAll (timeoutMs: number): Promise<void> {
  await Promise.all([
    ...[...live].map(async (c) => await stopChild(c, timeoutMs)),
    ...[...others].map(async (stop) => await stop(timeoutMs).catch(() => {}))
  ])
}

/**
 * Poll `path` until it answers 200 (and `accept` agrees), the child exits, or the
 * deadline passes. Returns ms from the child's spawn to the first good answer.
 */
export async function waitForOk (child: Child, port: number, path: string, opts: HealthOptions & { timeoutMs: number }): Promise<number> {
  return await child.waitForHealth(port, { intervalMs: 10, ...opts, path })
}

export function msSince (t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6
}

export interface MemInfo {
  rssBytes: number
  hwmBytes: number
}

/** VmRSS and VmHWM of a process from /proc (Linux). */
export function readMem (pid: number): MemInfo | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (field: string): number => {
      const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)
      return m === null ? NaN : Number(m[1]) * 1024
    }
    const rss = kb('VmRSS')
    if (Number.isNaN(rss)) return null
    return { rssBytes: rss, hwmBytes: kb('VmHWM') }
  } catch {
    return null
  }
}
