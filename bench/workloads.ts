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
  'flood'
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
  flood: 'wrong-key flood beside good GETs'
}

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
