import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { compiledServer } from './compiled.js'
import { HOST, httpRequest } from './net.js'
import { ROOT } from './root.js'
import type { Teardown } from './temp.js'

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface SpawnOptions {
  /** Default: the repository's root. */
  cwd?: string
  /** Added to the environment; SIMPLE_KV_CONFIG from the shell never leaks in unless given here. */
  env?: NodeJS.ProcessEnv
  /** Keep colours (NO_COLOR is set otherwise). */
  color?: boolean
  /** Where stdout and stderr go: kept in memory (default), stderr only kept, appended to a file, or dropped. */
  output?: 'pipe' | 'stderr' | 'ignore' | { file: string }
  /** Keep a pipe on stdin (a child that exits when its stdin ends needs it). */
  stdin?: 'ignore' | 'pipe'
  /** Run under `taskset -c <cpus>` (taskset execs node, so the pid stays node's). */
  cpus?: string | null
  /** Names the process in errors. */
  name?: string
}

export interface HealthOptions {
  /** Generous by default: a loaded machine can be ten times slower than an idle one. */
  timeoutMs?: number
  path?: string
  headers?: Record<string, string>
  /** Also require this of the body of a 200. */
  accept?: (body: string) => boolean
  intervalMs?: number
}

/** Environment for a child: no SIMPLE_KV_CONFIG leaking in from the shell, no colours unless `color`. */
export function childEnv (extra: NodeJS.ProcessEnv = {}, color = false): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra }
  if (extra.SIMPLE_KV_CONFIG === undefined) delete env.SIMPLE_KV_CONFIG
  if (color) delete env.NO_COLOR
  return env
}

function msSince (t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6
}

/**
 * A node process (the compiled server, or any script), killed when `t` tears
 * down whatever happened: the one harness of the tests and the bench.
 */
/** CPU seconds (user + system) process `pid` has used, from Linux's /proc; null where that cannot be read. */
export function cpuSeconds (pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime (fields 14 and 15 of the line), in clock ticks of 1/100 s.
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}

/**
 * A start costs the server about a second of CPU, which on a loaded machine
 * stretches to many seconds of wall time (3 to 10 s seen at load average 16
 * to 20 on 2 cores): a fixed wall-clock wait fails at random there. So a
 * server is given up on when it has burnt this much CPU without answering...
 */
const START_CPU_BUDGET_S = 20
/** ...or, stuck without using CPU at all (or without /proc), after this long. */
const START_WALL_BOUND_MS = 240_000

export class ServerProcess {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  /** When spawn() was called. */
  readonly spawnedAt: bigint
  readonly logPath: string | null
  /** Set by `waitForListening` or `waitForHealth`. */
  url = ''
  readonly #exit: Promise<Exit>
  readonly #out = { stdout: '', stderr: '' }

  private constructor (child: ChildProcess, name: string, spawnedAt: bigint, logPath: string | null) {
    if (child.pid === undefined) throw new Error(`could not start ${name}`)
    this.child = child
    this.name = name
    this.pid = child.pid
    this.spawnedAt = spawnedAt
    this.logPath = logPath
    child.stdout?.setEncoding('utf8').on('data', (s: string) => { this.#out.stdout += s })
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { this.#out.stderr += s })
    child.stdin?.on('error', () => {})
    this.#exit = new Promise((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code, signal) => { resolve({ code, signal, ...this.#out }) })
    })
    // A failed spawn is reported by exited() and the waits, not as an unhandled rejection.
    this.#exit.catch(() => {})
  }

  /** `node <args>`: node flags, then the script and its arguments. */
  static spawn (t: Teardown, args: string[], opts: SpawnOptions = {}): ServerProcess {
    const output = opts.output ?? 'pipe'
    const logPath = typeof output === 'object' ? output.file : null
    const fd = logPath === null ? null : openSync(logPath, 'a')
    const stdin = opts.stdin ?? 'ignore'
    let stdio: StdioOptions
    if (fd !== null) stdio = [stdin, fd, fd]
    else if (output === 'stderr') stdio = [stdin, 'ignore', 'pipe']
    else if (output === 'ignore') stdio = [stdin, 'ignore', 'ignore']
    else stdio = [stdin, 'pipe', 'pipe']
    const pinned = opts.cpus !== undefined && opts.cpus !== null
    const spawnedAt = process.hrtime.bigint()
    const child = pinned
      ? spawn('taskset', ['-c', opts.cpus as string, process.execPath, ...args], { cwd: opts.cwd ?? ROOT, env: childEnv(opts.env, opts.color), stdio })
      : spawn(process.execPath, args, { cwd: opts.cwd ?? ROOT, env: childEnv(opts.env, opts.color), stdio })
    if (fd !== null) closeSync(fd)
    t.teardown(async () => { await killChild(child) })
    return new ServerProcess(child, opts.name ?? args.find(a => !a.startsWith('-')) ?? 'node', spawnedAt, logPath)
  }

  /** The compiled standalone server: `simple-kv <args>`. */
  static spawnServer (t: Teardown, args: string[], opts: SpawnOptions = {}): ServerProcess {
    return ServerProcess.spawn(t, [compiledServer(), ...args], { name: 'simple-kv', ...opts })
  }

  /** Start `simple-kv <args>` and wait for the banner's Listening line (or the process's end). */
  static async start (t: Teardown, args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<ServerProcess> {
    const server = ServerProcess.spawnServer(t, args, opts)
    await server.waitForListening(opts.timeoutMs)
    return server
  }

  get stdout (): string {
    return this.#out.stdout
  }

  get stderr (): string {
    return this.#out.stderr
  }

  get running (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** The last lines the process wrote (its log file, or its stderr and stdout), for error messages. */
  tail (lines = 30): string {
    let text = `${this.#out.stderr}${this.#out.stdout}`
    if (this.logPath !== null) {
      try {
        text = readFileSync(this.logPath, 'utf8')
      } catch {
        text = '(log unreadable)'
      }
    }
    return text.split('\n').slice(-lines).join('\n')
  }

  #describeExit (e: Exit): string {
    return `${this.name} exited (${e.code ?? e.signal ?? 'spawn error'})`
  }

  /** Wait for the banner's `Listening http://…` line on stdout. */
  async waitForListening (timeoutMs = 60_000): Promise<string> {
    const child = this.child
    this.url = await new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const match = /Listening\s+(http:\/\/\S+)/.exec(this.#out.stdout)
        if (match === null) return
        clearTimeout(timer)
        child.stdout?.off('data', check)
        resolve(match[1])
      }
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`${this.name} did not start in time\nstdout: ${this.stdout}\nstderr: ${this.stderr}`))
      }, timeoutMs)
      child.stdout?.on('data', check)
      this.#exit.then(e => {
        clearTimeout(timer)
        reject(new Error(`${this.#describeExit(e)} before listening\nstdout: ${e.stdout}\nstderr: ${e.stderr}`))
      }, reject)
      check()
    })
    return this.url
  }

  /**
   * Poll GET `path` on 127.0.0.1:`port` until it answers 200 (and `accept`
   * agrees). Fails at once, with what the process wrote, if it dies first.
   * Resolves with the milliseconds from spawn() to that answer.
   */
  async waitForHealth (port: number, opts: HealthOptions = {}): Promise<number> {
    const path = opts.path ?? '/health'
    const timeoutMs = opts.timeoutMs ?? START_WALL_BOUND_MS
    const deadline = Date.now() + timeoutMs
    let last = 'no answer yet'
    let died: Exit | null = null
    void this.#exit.then(e => { died = e }, () => {})
    while (Date.now() < deadline) {
      if (died !== null || !this.running) {
        const e = died ?? await this.#exit
        throw new Error(`${this.#describeExit(e)} before GET ${path} answered (last: ${last})\n--- its last lines ---\n${this.tail()}`)
      }
      try {
        const res = await httpRequest(port, 'GET', path, opts.headers, undefined, { timeoutMs: 5000 })
        if (res.status === 200 && (opts.accept === undefined || opts.accept(res.body))) {
          this.url = `http://${HOST}:${port}`
          return msSince(this.spawnedAt)
        }
        last = `HTTP ${res.status}: ${res.body.slice(0, 200)}`
      } catch (err) {
        last = err instanceof Error ? err.message : String(err)
      }
      const cpu = cpuSeconds(this.pid)
      if (cpu !== null && cpu > START_CPU_BUDGET_S) {
        throw new Error(`${this.name} used ${cpu} s of CPU without answering GET ${path} (last: ${last})\n--- its last lines ---\n${this.tail()}`)
      }
      await sleep(opts.intervalMs ?? 25)
    }
    throw new Error(`${this.name} did not answer GET ${path} within ${timeoutMs} ms (last: ${last}; ${this.running ? 'still running' : 'exited'})\n--- its last lines ---\n${this.tail()}`)
  }

  /** Resolves when the process has ended. */
  async exited (): Promise<Exit> {
    return await this.#exit
  }

  /** Send `signal`; SIGKILL if it has not ended after `killAfterMs`. */
  async stop (signal: NodeJS.Signals = 'SIGTERM', killAfterMs?: number): Promise<Exit & { killed: boolean }> {
    if (this.running) this.child.kill(signal)
    if (killAfterMs === undefined) return { ...await this.#exit, killed: false }
    let timer: NodeJS.Timeout | undefined
    const late = await Promise.race([
      this.#exit.then(() => false),
      new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(true) }, killAfterMs) })
    ])
    clearTimeout(timer)
    if (late) this.child.kill('SIGKILL')
    return { ...await this.#exit, killed: late }
  }

  /** SIGKILL, and wait for the end. */
  async kill (): Promise<Exit> {
    if (this.running) this.child.kill('SIGKILL')
    return await this.#exit
  }
}

/** The teardown's SIGKILL; it is sent synchronously, so this also works in a process 'exit' handler. */
async function killChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const closed = new Promise(resolve => child.once('close', resolve))
  child.kill('SIGKILL')
  await closed
}

/** Run `simple-kv <args>` to completion (killed after `timeoutMs`). */
export async function runCli (t: Teardown, args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<Exit> {
  const server = ServerProcess.spawnServer(t, args, opts)
  const timer = setTimeout(() => { server.child.kill('SIGKILL') }, opts.timeoutMs ?? 30_000)
  const exit = await server.exited()
  clearTimeout(timer)
  return exit
}

function shellQuote (arg: string): string {
  return `'${arg.replace(/'/g, "'\\''")}'`
}

/**
 * Run `simple-kv <args>` on a pseudo-terminal (util-linux `script`), as a person
 * at a terminal would: `interrupt()` types Ctrl-C; resolves with everything shown.
 */
export function runInTerminal (t: Teardown, args: string[], opts: { cwd?: string } = {}): { output: () => string, interrupt: () => void, exited: Promise<Exit> } {
  // `exec`: the server itself is the terminal's foreground process. Without it a shell that does
  // not exec its last command (dash, when SHELL is unset or /bin/sh) also gets Ctrl-C and reports 130.
  const command = 'exec ' + [process.execPath, compiledServer(), ...args].map(shellQuote).join(' ')
  // stdin stays an open pipe: `script` ends the session when its input ends.
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: opts.cwd ?? ROOT, env: childEnv({ SHELL: '/bin/sh' }, true), stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(async () => { await killChild(child) })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  return {
    output: () => stdout,
    interrupt: () => { child.stdin.write('\x03') },
    exited: new Promise((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }) })
    })
  }
}
