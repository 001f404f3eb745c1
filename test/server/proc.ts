import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { KvConfig } from '../../lib/config.js'
import { compiledServer } from '../compiled.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Environment for a child: no SIMPLE_KV_CONFIG leaking in from the shell, no colours unless `color`. */
function childEnv (extra: NodeJS.ProcessEnv = {}, color = false): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra }
  if (extra.SIMPLE_KV_CONFIG === undefined) delete env.SIMPLE_KV_CONFIG
  if (color) delete env.NO_COLOR
  return env
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
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let shown = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { shown += s })
  return {
    output: () => shown,
    interrupt: () => { child.stdin.write('\x03') },
    exited: collect(child)
  }
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

interface Teardown {
  teardown: (fn: () => unknown) => void
}

/** Run `simple-kv <args>` to completion (killed after `timeoutMs`). */
export async function runCli (t: Teardown, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<Exit> {
  const child = spawn(process.execPath, [compiledServer(), ...args], { cwd: opts.cwd ?? ROOT, env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, opts.timeoutMs ?? 30_000)
  const exit = await collect(child)
  clearTimeout(timer)
  return exit
}

async function collect (child: ChildProcess): Promise<Exit> {
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  return await new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }) })
  })
}

/** A port that was free a moment ago, on 127.0.0.1. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}

export function writeConfig (dir: string, config: KvConfig): string {
  const file = join(dir, 'config.json')
  writeFileSync(file, JSON.stringify(config, null, 2))
  return file
}

/** A real server process, killed when the test ends whatever happened. */
export class ServerProcess {
  readonly child: ChildProcess
  readonly url: string
  readonly #exit: Promise<Exit>
  readonly #out: { stdout: string, stderr: string }

  private constructor (child: ChildProcess, url: string, exit: Promise<Exit>, out: { stdout: string, stderr: string }) {
    this.child = child
    this.url = url
    this.#exit = exit
    this.#out = out
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

  /** Start `simple-kv <args>` and wait for the banner's Listening line (or the process's end). */
  static async start (t: Teardown, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<ServerProcess> {
    const child = spawn(process.execPath, [compiledServer(), ...args], { cwd: opts.cwd ?? ROOT, env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await new Promise(resolve => child.once('close', resolve))
    })
    const out = { stdout: '', stderr: '' }
    child.stdout?.setEncoding('utf8').on('data', (s: string) => { out.stdout += s })
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { out.stderr += s })
    const exit = new Promise<Exit>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code, signal) => { resolve({ code, signal, ...out }) })
    })
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`server did not start in time\nstdout: ${out.stdout}\nstderr: ${out.stderr}`))
      }, opts.timeoutMs ?? 30_000)
      const check = (): void => {
        const match = /Listening\s+(http:\/\/\S+)/.exec(out.stdout)
        if (match !== null) {
          clearTimeout(timer)
          resolve(match[1])
        }
      }
      child.stdout?.on('data', check)
      void exit.then(e => {
        clearTimeout(timer)
        reject(new Error(`server exited (${e.code ?? e.signal}) before listening\nstdout: ${e.stdout}\nstderr: ${e.stderr}`))
      })
    })
    return new ServerProcess(child, url, exit, out)
  }

  /** Resolves when the process has ended. */
  async exited (): Promise<Exit> {
    return await this.#exit
  }

  async stop (signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (this.running) this.child.kill(signal)
    return await this.#exit
  }
}
