import type { FastifyReply, FastifyRequest } from 'fastify'
import type { KvRecord } from '../schemas/record.js'
import { etagOf } from '../lib/record.js'
import type { EntityTags, ExpiryChange, Preconditions } from '../lib/engines/types.js'

/** A malformed conditional header or expiry parameter; answered 400. */
export class BadRequestError extends Error {
  readonly statusCode = 400
}

interface EntityTag {
  weak: boolean
  /** The tag with its quotes, as it appears in an ETag header. */
  opaque: string
}

const ENTITY_TAG = /^(W\/)?("[\x21\x23-\x7e\x80-\xff]*")/

/** An If-Match / If-None-Match value (RFC 9110 section 8.8.3): `*` or a list of entity tags; null when malformed. */
export function parseEntityTags (header: string): '*' | EntityTag[] | null {
  const text = header.trim()
  if (text === '*') return '*'
  const tags: EntityTag[] = []
  let rest = text
  for (;;) {
    rest = rest.replace(/^[ \t]*/, '')
    // Empty list elements are allowed and ignored.
    if (rest.startsWith(',')) {
      rest = rest.slice(1)
      continue
    }
    if (rest === '') break
    const match = ENTITY_TAG.exec(rest)
    if (match === null) return null
    tags.push({ weak: match[1] !== undefined, opaque: match[2] })
    rest = rest.slice(match[0].length).replace(/^[ \t]*/, '')
    if (rest !== '' && !rest.startsWith(',')) return null
  }
  return tags.length === 0 ? null : tags
}

function header (request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value.join(',') : value
}

/**
 * The request's preconditions: If-Match compares strongly (a weak tag never
 * matches), If-None-Match weakly (W/ ignored). Throws BadRequestError when a
 * header is malformed.
 */
export function preconditionsOf (request: FastifyRequest): Preconditions {
  const pre: Preconditions = {}
  const ifMatch = header(request, 'if-match')
  if (ifMatch !== undefined) {
    const tags = parseEntityTags(ifMatch)
    if (tags === null) throw new BadRequestError('Malformed If-Match header: expected * or a list of quoted entity tags')
    pre.ifMatch = tags === '*' ? '*' : tags.filter(t => !t.weak).map(t => t.opaque)
  }
  const ifNoneMatch = header(request, 'if-none-match')
  if (ifNoneMatch !== undefined) {
    const tags = parseEntityTags(ifNoneMatch)
    if (tags === null) throw new BadRequestError('Malformed If-None-Match header: expected * or a list of quoted entity tags')
    pre.ifNoneMatch = tags === '*' ? '*' : tags.map(t => t.opaque)
  }
  return pre
}

export function hasPreconditions (pre: Preconditions): boolean {
  return pre.ifMatch !== undefined || pre.ifNoneMatch !== undefined
}

/** If-None-Match on a read (weak comparison): true when the client's copy is current (answer 304). */
export function notModified (tags: EntityTags | undefined, record: KvRecord): boolean {
  if (tags === undefined) return false
  return tags === '*' || tags.includes(etagOf(record))
}

export function sendETag (reply: FastifyReply, record: KvRecord): void {
  reply.header('etag', etagOf(record))
}

/** Longest ttl accepted: ten years, in seconds. */
export const MAX_TTL_SECONDS = 315_360_000

function number (value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null
  if (typeof value !== 'string' || value.trim() === '') return null
  const n = Number(value)
  return Number.isFinite(n) ? n : null
}

/**
 * The expiry a write asks for through `ttl` (seconds from now, rounded up to
 * whole ms), `expires_at` (epoch seconds) or `keep_ttl`; undefined: clear it.
 * Throws BadRequestError naming the parameter.
 */
export function expiryOf (params: { ttl?: unknown, expires_at?: unknown, keep_ttl?: unknown }, now = Date.now()): ExpiryChange | undefined {
  const given = ['ttl', 'expires_at', 'keep_ttl'].filter(name => params[name as keyof typeof params] !== undefined)
  if (given.length > 1) throw new BadRequestError(`Give at most one of ttl, expires_at and keep_ttl (got ${given.join(' and ')})`)
  if (params.keep_ttl !== undefined) {
    if (params.keep_ttl === true || params.keep_ttl === 'true') return { kind: 'keep' }
    if (params.keep_ttl === false || params.keep_ttl === 'false') return undefined
    throw new BadRequestError("Invalid 'keep_ttl': expected true or false")
  }
  if (params.ttl !== undefined) {
    const ttl = number(params.ttl)
    if (ttl === null || ttl < 0.001 || ttl > MAX_TTL_SECONDS) throw new BadRequestError(`Invalid 'ttl': expected a number of seconds from 0.001 to ${MAX_TTL_SECONDS}`)
    return { kind: 'after', ms: Math.ceil(Math.round(ttl * 1e6) / 1000) }
  }
  if (params.expires_at !== undefined) {
    const at = number(params.expires_at)
    if (at === null || at * 1000 <= now) throw new BadRequestError("Invalid 'expires_at': expected epoch seconds in the future")
    if (at * 1000 > now + MAX_TTL_SECONDS * 1000) throw new BadRequestError(`Invalid 'expires_at': at most ${MAX_TTL_SECONDS} seconds from now`)
    return { kind: 'at', ms: Math.ceil(at * 1000) }
  }
  return undefined
}
