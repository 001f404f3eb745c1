// Table printing and the target check for the benchmark harness.

import { describeNon2xx } from './load.js'
import type { CpuUse } from './cpu.js'
import type { RunStats } from './load.js'
import type { WorkloadId } from './workloads.js'

export interface Row {
  /** Workload id, or a derived id for the flood's three rows. */
  id: WorkloadId | 'flood-undisturbed' | 'flood-good' | 'flood-attack' | 'list-get-record' | 'redis-ceiling-get' | 'redis-ceiling-set'
  label: string
  connections: number
  stats: RunStats
  /** CPU use during the measured run (percent of one core). */
  cpu?: CpuUse
  /** Statuses this row is expected to get; anything else is flagged. */
  expect: '2xx' | '401'
  /** okPerSec (or 401/s for the attack row) over bare Fastify at the same connection count. */
  ratio: number | null
  /** The bare Fastify run measured right before this one, at the same connections (the ratio's denominator). */
  pairedBare?: { okPerSec: number, p99Ms: number, cpu: CpuUse }
  /** Redis engine rows: the bare Redis round trip (redis-benchmark) measured right before, on the same redis-server. */
  pairedCeiling?: { label: string, okPerSec: number, p99Ms: number }
  /** okPerSec over pairedCeiling's. */
  ceilingRatio?: number | null
}

export interface FloodResult {
  connections: number
  floodConnections: number
  undisturbedOkPerSec: number
  disturbedOkPerSec: number
  /** disturbed / undisturbed good-key rate. */
  ratio: number
  disturbedP99Ms: number
  attackPerSec: number
  /** Wrong keys that were answered 2xx: must be 0. */
  wrongKeysAccepted: number
}

export interface ControlCheck {
  connections: number
  bareHttp: number
  bareFastify: number
  ratio: number
  ok: boolean
  /** False where the check does not apply (one connection: latency-bound). */
  checked: boolean
}

export interface MillionResult {
  keys: number
  /** put: every key PUT through the API; file: store file written before the first start. */
  loadMode: 'put' | 'file'
  loadConnections: number | null
  loadSeconds: number | null
  loadOkPerSec: number | null
  loadNon2xx: number
  loadStatusCounts: Record<string, number>
  loadErrors: number
  /** file mode: spawn to ready with the keys, first start. */
  fileStartMs: number | null
  rssEmptyBytes: number | null
  rssLoadedBytes: number | null
  rssAfterSettleBytes: number | null
  peakRssBytes: number | null
  shutdownMs: number | null
  shutdownExit: string | null
  shutdownKilled: boolean
  storageBytes: number
  storageFiles: Record<string, number>
  restartToFirstGetMs: number | null
  restartError: string | null
  rssAfterRestartBytes: number | null
  sampleChecked: number
  sampleMismatches: number
}

/** The listing part: pages of 100 keys out of `keys` (issue 11). */
export interface ListResult {
  keys: number
  /** The first listing call after the keys were loaded: it builds the ordered index. */
  firstListMs: number
  firstListStatus: number
  /** The same call again, the index built. */
  secondListMs: number
  rssBeforeIndexBytes: number | null
  rssAfterIndexBytes: number | null
  /** The walk over every key in pages of 1,000 that collected the cursors the workload starts from. */
  walkSeconds: number
  walkPages: number
  walkKeys: number
  /** Every key seen once, in ascending order, and the walk reached next_cursor null. */
  walkOk: boolean
  walkProblem: string | null
  cursors: number
}

export interface LatencyWindow {
  requests: number
  non2xx: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

/** The mass-expiry part: `keys` keys with one expires_at, a GET record loop on other keys throughout (issue 11). */
export interface ExpireResult {
  project: string
  onDisk: boolean
  keys: number
  loadConnections: number
  loadSeconds: number
  loadOkPerSec: number
  loadNon2xx: number
  loadStatusCounts: Record<string, number>
  /** epoch seconds */
  expiresAt: number
  /** expires_at minus the end of the load (ms): the "before" window has about this much. */
  headroomMs: number
  /** Reclaim rounds expected: one per 1,000 keys (one revision each). */
  expectedRounds: number
  baseRev: number | null
  finalRev: number | null
  /** From expires_at to the first poll whose listing of the expiring prefix was empty. */
  invisibleMs: number | null
  /** From expires_at to the first poll that saw a reclaim round (the revision moved). */
  firstRoundMs: number | null
  /** From expires_at to the first poll that saw every round (revision = base + expected rounds). */
  reclaimedMs: number | null
  polls: number
  /** Mean time a poll took to answer: the precision of the times above. */
  pollMeanMs: number
  /** GET of one expired key after the reclaim: 404 expected. */
  expiredKeyStatus: number
  getConnections: number
  before: LatencyWindow
  during: LatencyWindow
  after: LatencyWindow
  cpu: CpuUse
}

export interface TargetCheck {
  target: string
  actual: string
  verdict: 'PASS' | 'MISS' | 'n/a'
  /** Other processes used > 25% of a core during a run this verdict rests on. */
  noisy?: boolean
}

const NOISY_PCT = 25
const isNoisy = (...rs: (Row | undefined)[]) => rs.some((r) => (r?.cpu?.otherPct ?? 0) > NOISY_PCT)

export const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-')
export const fmtMs = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 3 : 1) : '-')
export const fmtRatio = (n: number | null) => (n === null || !Number.isFinite(n) ? '-' : n.toFixed(2))
export const fmtMB = (b: number | null) => (b === null ? '-' : `${(b / 1e6).toFixed(1)} MB`)

function pad (s: string, w: number, right = false): string {
  return right ? s.padStart(w) : s.padEnd(w)
}

export function rowRate (row: Row): number {
  return row.expect === '401' ? row.stats.respPerSec : row.stats.okPerSec
}

/** Problems with a row's answers: unexpected statuses, connection errors, timeouts. */
export function rowProblems (row: Row): string {
  const s = row.stats
  const parts: string[] = []
  if (row.expect === '2xx') {
    if (s.non2xx > 0) parts.push(`non-2xx ${describeNon2xx(s)}`)
  } else {
    const other = Object.entries(s.statusCounts).filter(([c]) => c !== '401')
    if (other.length > 0) parts.push(`not 401: ${other.map(([c, n]) => `${c}:${n}`).join(' ')}`)
  }
  if (s.errors > 0) parts.push(`conn errors ${s.errors}${s.timeouts > 0 ? ` (timeouts ${s.timeouts})` : ''}`)
  if (s.watchdogStopped) parts.push('stopped by watchdog')
  return parts.join('; ')
}

export function renderTable (rows: Row[]): string {
  const head = ['workload', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'bare req/s', 'ratio', 'non-2xx', 'cpu% srv/gen/other', 'problems']
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : String(Math.round(x)))
  const body = rows.map((r) => [
    r.label + (r.expect === '401' ? ' [401/s]' : ''),
    String(r.connections),
    fmtInt(rowRate(r)),
    fmtMs(r.stats.latencyMs.p50),
    fmtMs(r.stats.latencyMs.p99),
    r.pairedBare === undefined ? '' : fmtInt(r.pairedBare.okPerSec),
    fmtRatio(r.ratio),
    fmtInt(r.stats.non2xx),
    r.cpu === undefined ? '-' : `${pct(r.cpu.serverPct)}/${pct(r.cpu.generatorPct)}/${pct(r.cpu.otherPct)}`,
    rowProblems(r) === '' ? '' : `!! ${rowProblems(r)}`
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const rightAligned = [false, true, true, true, true, true, true, true, true, false]
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!, rightAligned[i])).join('  ').trimEnd()
  const sep = widths.map((w) => '-'.repeat(w)).join('  ')
  return [line(head), sep, ...body.map(line)].join('\n')
}

function find (rows: Row[], id: Row['id'], connections: number): Row | undefined {
  return rows.find((r) => r.id === id && r.connections === connections)
}

const NOT_RUN: Omit<TargetCheck, 'target'> = { actual: 'not run', verdict: 'n/a' }

export function checkTargets (
  rows: Row[],
  floods: FloodResult[],
  million: MillionResult | null,
  millionTargetKeys: number
): TargetCheck[] {
  const out: TargetCheck[] = []
  const ratioTarget = (id: Row['id'], label: string, conns: number, min: number) => {
    const target = `${label} @${conns}: >= ${min.toFixed(2)} x bare Fastify`
    const r = find(rows, id, conns)
    if (r === undefined || r.ratio === null) {
      out.push({ target, ...NOT_RUN })
      return
    }
    const bareRow = find(rows, 'bare-fastify', conns)
    const bare = rowRate(r) / r.ratio
    out.push({
      target,
      actual: `${r.ratio.toFixed(3)} (${fmtInt(rowRate(r))} vs ${fmtInt(bare)} req/s${r.pairedBare === undefined ? '' : ' paired'})`,
      verdict: r.ratio >= min ? 'PASS' : 'MISS',
      noisy: r.pairedBare === undefined ? isNoisy(r, bareRow) : isNoisy(r) || (r.pairedBare.cpu.otherPct ?? 0) > NOISY_PCT
    })
  }
  const p99Target = (id: Row['id'], label: string, conns: number, maxMs: number) => {
    const target = `${label} @${conns}: p99 <= ${maxMs} ms`
    const r = find(rows, id, conns)
    if (r === undefined) {
      out.push({ target, ...NOT_RUN })
      return
    }
    const p99 = r.stats.latencyMs.p99
    out.push({ target, actual: `${fmtMs(p99)} ms`, verdict: p99 <= maxMs ? 'PASS' : 'MISS', noisy: isNoisy(r) })
  }

  ratioTarget('get-record', 'GET record', 64, 0.8)
  p99Target('get-record', 'GET record', 64, 5)
  ratioTarget('get-raw', 'GET raw value', 64, 0.8)
  p99Target('get-raw', 'GET raw value', 64, 5)
  ratioTarget('put-mem', 'PUT in-memory', 64, 0.7)
  ratioTarget('put-disk', 'PUT on-disk', 64, 0.5)
  ratioTarget('put-disk', 'PUT on-disk', 1, 0.25)

  if (floods.length === 0) {
    out.push({ target: 'wrong-key flood: good GETs >= 0.50 of undisturbed', ...NOT_RUN })
  }
  for (const f of floods) {
    // With one good connection the stream is a latency-bound ping-pong that any second
    // connection roughly halves; the verdict is given where the server is under load.
    const judged = f.connections >= 8
    out.push({
      target: `wrong-key flood (${f.floodConnections} attack conns) beside ${f.connections} good conns: good GETs >= 0.50 of undisturbed`,
      actual:
        `${f.ratio.toFixed(3)} (${fmtInt(f.disturbedOkPerSec)} vs ${fmtInt(f.undisturbedOkPerSec)} req/s, ` +
        `good p99 ${fmtMs(f.disturbedP99Ms)} ms, attack ${fmtInt(f.attackPerSec)} 401/s)` +
        (judged ? '' : ' [information only at one connection]'),
      verdict: !judged ? 'n/a' : f.ratio >= 0.5 && f.wrongKeysAccepted === 0 ? 'PASS' : 'MISS',
      noisy: isNoisy(find(rows, 'flood-undisturbed', f.connections), find(rows, 'flood-good', f.connections))
    })
    if (f.wrongKeysAccepted > 0) {
      out.push({
        target: 'wrong-key flood: no wrong key accepted',
        actual: `${f.wrongKeysAccepted} wrong keys answered 2xx`,
        verdict: 'MISS'
      })
    }
  }

  const rssT = '1,000,000 keys x 100 B: RSS <= 400 MB'
  const rstT = '1,000,000 keys: restart to first served GET <= 5 s'
  if (million === null) {
    out.push({ target: rssT, ...NOT_RUN }, { target: rstT, ...NOT_RUN })
  } else {
    const partial = million.keys < millionTargetKeys ? ` [only ${fmtInt(million.keys)} keys loaded]` : ''
    const loadBroken = million.loadNon2xx > 0 || million.loadErrors > 0 || million.sampleMismatches > 0
    const rss = million.rssAfterSettleBytes
    out.push({
      target: rssT,
      actual:
        rss === null
          ? 'not measured'
          : `${fmtMB(rss)} (right after load ${fmtMB(million.rssLoadedBytes)}, peak ${fmtMB(million.peakRssBytes)}, ` +
            `empty ${fmtMB(million.rssEmptyBytes)}; keys loaded by ${million.loadMode === 'put' ? 'PUT' : 'store file'})${partial}`,
      verdict: rss === null || partial !== '' || loadBroken ? 'n/a' : rss <= 400e6 ? 'PASS' : 'MISS'
    })
    const ms = million.restartToFirstGetMs
    out.push({
      target: rstT,
      actual: ms === null ? `failed: ${million.restartError ?? '?'}` : `${(ms / 1000).toFixed(3)} s${partial}`,
      verdict: partial !== '' || loadBroken ? 'n/a' : ms !== null && ms <= 5000 ? 'PASS' : 'MISS'
    })
  }
  return out
}

export function renderTargets (checks: TargetCheck[]): string {
  const w = Math.max(...checks.map((c) => c.target.length))
  const lines = checks.map(
    (c) => `${(c.verdict + (c.noisy === true && c.verdict !== 'n/a' ? '?' : '')).padEnd(5)}  ${c.target.padEnd(w)}  ${c.actual}`
  )
  if (checks.some((c) => c.noisy === true && c.verdict !== 'n/a')) {
    lines.push(`PASS? / MISS?: other processes used > ${NOISY_PCT}% of a core during a run this rests on; rerun on a quiet machine`)
  }
  return lines.join('\n')
}
