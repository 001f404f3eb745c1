// Child-process bookkeeping for the harness: every server it starts is tracked
// here and killed on exit, error, SIGINT or SIGTERM. Only 127.0.0.1 is ever used.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { HOST, sleep } from './common.js';

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  logPath: string | null;
  spawnedAt: bigint;
  exited: boolean;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  exitPromise: Promise<void>;
}

const live = new Set<Child>();
const history: { name: string; pid: number; args: string[] }[] = [];

/** Every child started so far (name, pid, node arguments): maps --cpu-prof files to runs. */
export function spawnHistory(): readonly { name: string; pid: number; args: string[] }[] {
  return history;
}
const tempDirs = new Set<string>();
let keepTemp = false;

export function setKeepTemp(keep: boolean): void {
  keepTemp = keep;
}

export function registerTempDir(dir: string): void {
  tempDirs.add(dir);
}

function killAllNow(): void {
  for (const c of live) {
    if (!c.exited) {
      try {
        c.proc.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  if (!keepTemp) {
    for (const d of tempDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
  }
}

let handlersInstalled = false;
let shuttingDown = false;

/** Kill every child on any way out of the process. */
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllNow);
  const onSignal = (sig: NodeJS.Signals) => {
    if (shuttingDown) {
      killAllNow();
      process.exit(130);
    }
    shuttingDown = true;
    process.stderr.write(`\n[bench] ${sig}: stopping ${live.size} child process(es)\n`);
    void stopAll(3000).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('uncaughtException', (err) => {
    process.stderr.write(`[bench] uncaught exception: ${err.stack ?? String(err)}\n`);
    killAllNow();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`[bench] unhandled rejection: ${err instanceof Error ? err.stack : String(err)}\n`);
    killAllNow();
    process.exit(1);
  });
}

export interface SpawnOptions {
  cwd: string;
  /** File receiving the child's stdout and stderr; null discards them. */
  logPath: string | null;
  /** Keep a pipe on the child's stdin (bare servers exit when it closes). */
  stdinPipe?: boolean;
  /** Run under `taskset -c <cpuList>` (taskset execs node, so the pid is node's). */
  cpuList?: string | null;
}

export function spawnChild(name: string, args: string[], opts: SpawnOptions): Child {
  const fd = opts.logPath === null ? null : openSync(opts.logPath, 'a');
  const out = fd === null ? 'ignore' : fd;
  const spawnedAt = process.hrtime.bigint();
  const pinned = opts.cpuList !== undefined && opts.cpuList !== null;
  const cmd = pinned ? 'taskset' : process.execPath;
  const argv = pinned ? ['-c', opts.cpuList!, process.execPath, ...args] : args;
  const proc = spawn(cmd, argv, {
    cwd: opts.cwd,
    stdio: [opts.stdinPipe === true ? 'pipe' : 'ignore', out, out],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  if (fd !== null) closeSync(fd);
  if (proc.pid === undefined) throw new Error(`could not start ${name}: node ${args.join(' ')}`);
  let resolveExit: () => void = () => {};
  const exitPromise = new Promise<void>((resolve) => {
    resolveExit = resolve;
  });
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    logPath: opts.logPath,
    spawnedAt,
    exited: false,
    exitCode: null,
    exitSignal: null,
    exitPromise,
  };
  live.add(child);
  history.push({ name, pid: proc.pid, args });
  proc.on('exit', (code, signal) => {
    child.exited = true;
    child.exitCode = code;
    child.exitSignal = signal;
    live.delete(child);
    resolveExit();
  });
  proc.on('error', () => {
    /* reported through exit or readiness timeout */
  });
  proc.stdin?.on('error', () => {});
  return child;
}

export interface StopResult {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  killed: boolean;
}

/** SIGTERM, wait for exit; SIGKILL after timeoutMs. */
export async function stopChild(child: Child, timeoutMs: number): Promise<StopResult> {
  const t0 = process.hrtime.bigint();
  if (!child.exited) {
    child.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      child.exitPromise.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    if (timer !== undefined) clearTimeout(timer);
    if (timedOut) {
      child.proc.kill('SIGKILL');
      await child.exitPromise;
      return { ms: msSince(t0), code: child.exitCode, signal: child.exitSignal, killed: true };
    }
  }
  return { ms: msSince(t0), code: child.exitCode, signal: child.exitSignal, killed: false };
}

export async function stopAll(timeoutMs: number): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c, timeoutMs)));
}

export function msSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export function logTail(child: Child, lines = 30): string {
  if (child.logPath === null) return '(no log)';
  try {
    const text = readFileSync(child.logPath, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(log unreadable)';
  }
}

export interface HttpResult {
  status: number;
  body: string;
}

/** One HTTP request to 127.0.0.1 on a fresh connection. */
export function httpRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
  timeoutMs = 5000,
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: HOST, port, method, path, headers, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Poll `path` until it answers 200 (and `accept` agrees), the child exits, or the
 * deadline passes. Returns ms from the child's spawn to the first good answer.
 */
export async function waitForOk(
  child: Child,
  port: number,
  path: string,
  opts: { timeoutMs: number; headers?: Record<string, string>; intervalMs?: number; accept?: (body: string) => boolean },
): Promise<number> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exited) {
      throw new Error(
        `${child.name} exited (code ${child.exitCode}, signal ${child.exitSignal}) before it was ready.\n` +
          `--- last lines of its log (${child.logPath}) ---\n${logTail(child)}`,
      );
    }
    try {
      const res = await httpRequest(port, 'GET', path, opts.headers, undefined, 2000);
      if (res.status === 200 && (opts.accept === undefined || opts.accept(res.body))) {
        return msSince(child.spawnedAt);
      }
      last = `HTTP ${res.status}: ${res.body.slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(opts.intervalMs ?? 10);
  }
  throw new Error(
    `${child.name} not ready after ${opts.timeoutMs} ms (GET ${path}; last: ${last}).\n` +
      `--- last lines of its log (${child.logPath}) ---\n${logTail(child)}`,
  );
}

export interface MemInfo {
  rssBytes: number;
  hwmBytes: number;
}

/** VmRSS and VmHWM of a process from /proc (Linux). */
export function readMem(pid: number): MemInfo | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => {
      const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
      return m === null ? NaN : Number(m[1]) * 1024;
    };
    const rss = kb('VmRSS');
    if (Number.isNaN(rss)) return null;
    return { rssBytes: rss, hwmBytes: kb('VmHWM') };
  } catch {
    return null;
  }
}
