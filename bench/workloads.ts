// Request pools for each workload. Every connection gets its own shuffled pool,
// built once, so the load generator does no per-request encoding work (except the
// wrong-key flood, which builds a fresh random key for every request on purpose).

import { VALUE_BYTES, keyName, randomAscii } from './common.js'
import type { AcRequest } from './load.js'

export const POOL_SIZE = 250

export const WORKLOAD_IDS = [
  'bare-http',
  'bare-fastify',
  'get-record',
  'get-raw',
  'put-mem',
  'put-disk',
  'mixed',
  'flood',
  'put-cas',
  'list',
  'expire',
  'get-redis',
  'put-redis',
  'redis-ceiling'
] as const
export type WorkloadId = (typeof WORKLOAD_IDS)[number]

export const WORKLOAD_LABELS: Record<WorkloadId, string> = {
  'bare-http': 'bare node:http GET (control)',
  'bare-fastify': 'bare Fastify GET (ceiling)',
  'get-record': 'GET record (R10)',
  'get-raw': 'GET raw value (R11)',
  'put-mem': 'PUT in-memory (R9)',
  'put-disk': 'PUT on-disk (R9)',
  mixed: 'mixed 90% GET rec / 10% PUT, on-disk',
  flood: 'wrong-key flood beside good GETs',
  'put-cas': 'PUT If-Match (CAS loop), on-disk',
  list: 'list page of 100 keys',
  expire: 'GET record through a mass expiry',
  'get-redis': 'GET record (redis)',
  'put-redis': 'PUT (redis, appendfsync always)',
  'redis-ceiling': 'bare Redis round trip (redis-benchmark)'
}

/** The rows of the redis-ceiling part: one redis-benchmark test each. */
export const CEILING_LABELS = {
  get: 'bare Redis GET (redis-benchmark)',
  set: 'bare Redis SET, appendfsync always (redis-benchmark)'
} as const

export const storePath = (project: string, key: string) =>
  `/api/v1/projects/${encodeURIComponent(project)}/store/${encodeURIComponent(key)}`

const TEXT = { 'content-type': 'text/plain; charset=utf-8' }

function randomIndex (n: number): number {
  return Math.floor(Math.random() * n)
}

/** GETs of random existing keys; `pathOf` maps a key to a request path. */
export function getPool (keys: number, pathOf: (key: string) => string): AcRequest[] {
  const pool: AcRequest[] = []
  for (let i = 0; i < POOL_SIZE; i++) pool.push({ method: 'GET', path: pathOf(keyName(randomIndex(keys))) })
  return pool
}

/** PUTs overwriting random existing keys with fresh random 100-byte text values. */
export function putPool (keys: number, project: string): AcRequest[] {
  const pool: AcRequest[] = []
  for (let i = 0; i < POOL_SIZE; i++) {
    pool.push({ method: 'PUT', path: storePath(project, keyName(randomIndex(keys))), headers: TEXT, body: randomAscii(VALUE_BYTES) })
  }
  return pool
}

/** Exactly 10% PUTs at random positions, the rest GET record, all on one project. */
export function mixedPool (keys: number, project: string): AcRequest[] {
  const puts = new Set<number>()
  while (puts.size < POOL_SIZE / 10) puts.add(randomIndex(POOL_SIZE))
  const pool: AcRequest[] = []
  for (let i = 0; i < POOL_SIZE; i++) {
    const path = storePath(project, keyName(randomIndex(keys)))
    pool.push(puts.has(i) ? { method: 'PUT', path, headers: TEXT, body: randomAscii(VALUE_BYTES) } : { method: 'GET', path })
  }
  return pool
}

/**
 * The attacker: GET record of a real key with a brand-new random 43-character key
 * on every request, so no cache of previously seen wrong keys can help the server.
 */
export function floodRequests (keys: number, project: string): AcRequest[] {
  return [
    {
      method: 'GET',
      path: storePath(project, keyName(0)),
      setupRequest: (req: AcRequest) => {
        req.path = storePath(project, keyName(randomIndex(keys)))
        req.headers = { ...req.headers, authorization: `Bearer ${randomAscii(43)}` }
        return req
      }
    }
  ]
}

/** The key connection i of the compare-and-set workload owns: same length as keyName. */
export function casKey (i: number): string {
  return 'c' + String(i).padStart(7, '0')
}

/** Case-insensitive lookup of a response header as autocannon hands it over (name → value or values). */
function headerOf (headers: AcRequest['headers'], name: string): string | undefined {
  if (headers === undefined) return undefined
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== name) continue
    const value: unknown = v
    return Array.isArray(value) ? String(value[0]) : String(value)
  }
  return undefined
}

/**
 * One connection's compare-and-set loop on its own key: every PUT carries the
 * ETag of the answer before it (`*` first, the key being preloaded). The ETag
 * lives in this closure, not in autocannon's `context`: with a one-request list
 * autocannon resets the context before building every request. A 412 (which
 * should not happen, the key being this connection's alone) takes the current
 * ETag from the answer's `data.etag`, so one conflict does not derail the loop.
 */
export function casRequests (project: string, connectionIndex: number): AcRequest[] {
  const path = storePath(project, casKey(connectionIndex))
  const bodies: string[] = []
  for (let i = 0; i < 16; i++) bodies.push(randomAscii(VALUE_BYTES))
  let etag = '*'
  let n = 0
  return [
    {
      method: 'PUT',
      path,
      headers: TEXT,
      body: bodies[0],
      setupRequest: (req: AcRequest) => {
        req.headers = { ...req.headers, 'if-match': etag }
        req.body = bodies[n++ % bodies.length]
        return req
      },
      onResponse: (status: number, body: string, _context: object, headers: AcRequest['headers']) => {
        if (status === 200 || status === 201) {
          // An answer without an ETag makes the next PUT fail with 412, so the share shows it.
          etag = headerOf(headers, 'etag') ?? '"no-etag-in-the-answer"'
        } else if (status === 412) {
          try {
            const current = (JSON.parse(body) as { data?: { etag?: unknown } }).data?.etag
            etag = typeof current === 'string' ? current : '*'
          } catch {
            etag = '*'
          }
        }
      }
    }
  ]
}

/** GETs of listing pages of 100 keys, each starting at a cursor drawn at random from `cursors`. */
export function listPool (project: string, cursors: string[]): AcRequest[] {
  const pool: AcRequest[] = []
  const base = `/api/v1/projects/${encodeURIComponent(project)}/keys?limit=100`
  for (let i = 0; i < POOL_SIZE; i++) {
    const cursor = cursors[randomIndex(cursors.length)]
    pool.push({ method: 'GET', path: cursor === undefined ? base : `${base}&cursor=${encodeURIComponent(cursor)}` })
  }
  return pool
}
