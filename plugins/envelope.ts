import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { envelope, type Envelope } from '../lib/envelope.js'
import { KvError } from '../lib/errors.js'
import type { SystemInfo } from '../lib/sysinfo.js'

/** Build the envelope for a reply; it carries System once a system key check passed. */
export function respond<T = null> (request: FastifyRequest, reply: FastifyReply, status: number, message: string, data: T = null as T): Envelope<T> {
  reply.code(status)
  return envelope(status, message, data, request.kvSystem ? request.server.kv.systemInfo() : null)
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
    let status = error.statusCode ?? 500
    if (!Number.isInteger(status) || status < 400 || status > 599) status = 500
    let message = error.message
    if (error instanceof KvError) {
      if (error.headers !== undefined) reply.headers(error.headers)
      if (status >= 500) request.log.error({ err: error.cause ?? error }, message)
    } else if (status >= 500) {
      request.log.error({ err: error }, 'unexpected error')
      message = 'Internal server error'
    }
    let system: SystemInfo | null = null
    try {
      if (request.kvSystem) system = fastify.kv.systemInfo()
    } catch (err) {
      request.log.error({ err }, 'cannot read system info')
    }
    reply.code(status)
    return envelope(status, message, null, system)
  })
}, { name: 'kv-envelope', fastify: '5.x', dependencies: ['kv-storage', 'kv-auth'] })
