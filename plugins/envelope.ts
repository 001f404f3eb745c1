import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Envelope } from '../schemas/envelope.js'
import type { SystemInfo } from '../schemas/system.js'
import { envelope } from '../lib/envelope.js'
import { KvError, type FailureKind } from '../lib/errors.js'
import { systemInfo } from '../lib/system-info.js'

/** The one mapping from a domain failure to its HTTP status. */
export const STATUS_OF_FAILURE: Record<FailureKind, number> = {
  invalid: 400,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  limit_exceeded: 413,
  precondition_failed: 412,
  precondition_required: 428,
  busy: 503,
  storage_unavailable: 507,
  unreachable: 503
}

/** Build the envelope for a reply; it carries System once a system key check passed. */
export function respond<T = null> (request: FastifyRequest, reply: FastifyReply, status: number, message: string, data: T = null as T): Envelope<T> {
  reply.code(status)
  return envelope(status, message, data, request.kvSystem ? systemInfo(request.server.kv) : null)
}

function toPattern (url: string): RegExp {
  const source = url
    .split('/')
    .map(part => part.startsWith(':') ? '[^/]+' : part === '*' ? '.*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('/')
  return new RegExp(`^${source}$`)
}

/**
 * The one place errors become responses: every error, framework-made or ours,
 * leaves as the envelope. Unknown routes get 404, known paths with another
 * method 405 with an Allow header.
 */
export default fp(async (fastify) => {
  const routes: Array<{ pattern: RegExp, methods: string[] }> = []
  fastify.addHook('onRoute', (route) => {
    // Catch-all routes (the CORS preflight) would make every unknown path look like a wrong method.
    if (route.url.endsWith('*')) return
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    const existing = routes.find(r => r.pattern.source === toPattern(route.url).source)
    if (existing !== undefined) existing.methods.push(...methods)
    else routes.push({ pattern: toPattern(route.url), methods: [...methods] })
  })

  fastify.setNotFoundHandler(async function notFound (request, reply) {
    const path = request.url.split('?')[0]
    const allowed = new Set<string>()
    for (const route of routes) {
      if (route.pattern.test(path)) for (const m of route.methods) allowed.add(m)
    }
    if (allowed.size > 0) {
      reply.header('allow', [...allowed].sort().join(', '))
      return respond(request, reply, 405, `Method ${request.method} is not allowed for ${path}`)
    }
    return respond(request, reply, 404, `Route ${request.method}:${request.url} not found`)
  })

  fastify.setErrorHandler(async function errorHandler (error: FastifyError | KvError, request, reply) {
    let status = error instanceof KvError ? STATUS_OF_FAILURE[error.kind] : error.statusCode ?? 500
    if (!Number.isInteger(status) || status < 400 || status > 599) status = 500
    let message = error.message
    if (error instanceof KvError) {
      if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds))
      if (status >= 500) request.log.error({ err: error.cause ?? error }, message)
    } else if (status >= 500) {
      request.log.error({ err: error }, 'unexpected error')
      message = 'Internal server error'
    }
    let system: SystemInfo | null = null
    try {
      if (request.kvSystem) system = systemInfo(fastify.kv)
    } catch (err) {
      request.log.error({ err }, 'cannot read system info')
    }
    // Errors made with @fastify/sensible's httpErrors may carry headers (Retry-After on 429).
    const headers = (error as { headers?: Record<string, string> }).headers
    if (headers !== undefined && !(error instanceof KvError)) reply.headers(headers)
    reply.code(status)
    return envelope(status, message, error instanceof KvError ? error.details : null, system)
  })
}, { name: 'kv-envelope', fastify: '5.x', dependencies: ['kv-storage', 'kv-auth'] })
