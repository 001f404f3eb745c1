// CPU accounting around each measured run (Linux /proc): how busy the server,
// the load generator (this process) and everything else on the machine were.
// A load generator near 100% of a core, or other processes eating CPU, make the
// numbers of that run suspect; the table shows both.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

let clkTck = 100
{
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 })
  const n = Number(r.stdout?.trim())
  if (r.status === 0 && Number.isInteger(n) && n > 0) clkTck = n
}

export interface CpuSnap {
  t: bigint
  busy: number
  total: number
  /** Ticks of each server process, in the order given. */
  servers: Array<number | null>
  self: NodeJS.CpuUsage
  /** Ticks of this process's children that have ended and been reaped (a load generator run as a child). */
  reaped: number | null
}

export interface CpuUse {
  /** Percent of one core: every server process together. */
  serverPct: number | null
  /** Each server process alone, when there are several (Simple KV, then redis-server). */
  serverPartsPct?: Array<number | null>
  /** This process, plus children that ended during the run (redis-benchmark). */
  generatorPct: number
  otherPct: number | null
}

function systemTicks (): { busy: number, total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f
    const busy = user + nice + system + irq + softirq + steal
    return { busy, total: busy + idle + iowait }
  } catch {
    return { busy: NaN, total: NaN }
  }
}

/** utime + stime of a process (all its threads), in ticks. */
function processTicks (pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // after "pid (comm) ", field 3 (state) is f[0]; utime is field 14, stime field 15
    return Number(f[11]) + Number(f[12])
  } catch {
    return null
  }
}

/** cutime + cstime of this process: what its reaped children used, in ticks. */
function reapedTicks (): number | null {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields 16 and 17 (cutime, cstime), counted as above
    return Number(f[13]) + Number(f[14])
  } catch {
    return null
  }
}

export function cpuSnap (serverPids: number | readonly number[] | null): CpuSnap {
  const s = systemTicks()
  const pids = serverPids === null ? [] : typeof serverPids === 'number' ? [serverPids] : serverPids
  return {
    t: process.hrtime.bigint(),
    busy: s.busy,
    total: s.total,
    servers: pids.map(processTicks),
    self: process.cpuUsage(),
    reaped: reapedTicks()
  }
}

export function cpuUse (a: CpuSnap, b: CpuSnap): CpuUse {
  const wall = Number(b.t - a.t) / 1e9
  const reaped = a.reaped === null || b.reaped === null ? 0 : (b.reaped - a.reaped) / clkTck
  const gen = (b.self.user - a.self.user + b.self.system - a.self.system) / 1e6 + reaped
  const parts = a.servers.map((t, i) => {
    const u = b.servers[i]
    return t === null || u === null || u === undefined ? null : (u - t) / clkTck
  })
  const server = parts.length === 0 || parts.some((x) => x === null) ? null : parts.reduce<number>((sum, x) => sum + (x ?? 0), 0)
  const busy = (b.busy - a.busy) / clkTck
  const other = Number.isFinite(busy) ? Math.max(0, busy - gen - (server ?? 0)) : null
  const pct = (x: number) => Math.round((x / wall) * 1000) / 10
  return {
    serverPct: server === null ? null : pct(server),
    ...(parts.length > 1 ? { serverPartsPct: parts.map((x) => (x === null ? null : pct(x))) } : {}),
    generatorPct: pct(gen),
    otherPct: other === null ? null : pct(other)
  }
}

/** Percent of one core used by everything on the machine over `ms`. */
export async function machineBusyPct (ms: number): Promise<number> {
  const a = systemTicks()
  const self0 = process.cpuUsage()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const b = systemTicks()
  const self = process.cpuUsage(self0)
  const selfS = (self.user + self.system) / 1e6
  const busy = (b.busy - a.busy) / clkTck - selfS
  return Math.max(0, Math.round((busy / (ms / 1000)) * 1000) / 10)
}
