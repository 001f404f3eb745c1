import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { KvError } from '../lib/errors.js'
import { presentedKey, VerifierBusyError, type ScopeAuth } from '../lib/keys.js'
import { FailureLimiter } from '../lib/ratelimit.js'
import { notFound, type Project } from '../lib/registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: the system key, or 401. */
    requireSystemKey: onRequestAsyncHookHandler
    /** onRequest hook: the project in `params.id` exists and the key is its own, or 404/401. */
    requireProjectKey: onRequestAsyncHookHandler
  }
  interface FastifyRequest {
    /** Set once the system key check passed: the response then carries the System object. */
    kvSystem: boolean
    /** The project of a project route, set by requireProjectKey. */
    kvProject: Project | null
  }
}

export const UNAUTHORIZED = 'Invalid or missing API key'

function unauthorized (): KvError {
  return new KvError(401, UNAUTHORIZED)
}

/**
 * Key checks as route hooks. A key that verified before costs a digest and a
 * constant-time compare. Anything needing a slow hash is first subject to the
 * per-address failure limit (429), so guessing is throttled while clients with
 * a good key are never slowed down by someone else's flood.
 */
export default fp(async (fastify) => {
  const settings = fastify.kvConfig.settings
  const limiter = new FailureLimiter({ maxFailures: settings.maxAuthFailures, windowSeconds: settings.authFailureWindowSeconds })

  async function verify (auth: ScopeAuth, request: FastifyRequest): Promise<void> {
    const key = presentedKey(request.headers)
    const fast = auth.checkFast(key)
    if (fast === true) return
    const retryAfter = limiter.retryAfter(request.ip)
    if (retryAfter > 0) {
      throw new KvError(429, 'Too many failed authentication attempts; retry later', { 'retry-after': String(retryAfter) })
    }
    let ok = false
    if (fast === undefined) {
      try {
        ok = await auth.checkSlow(key as string)
      } catch (err) {
        if (err instanceof VerifierBusyError) throw new KvError(503, err.message, { 'retry-after': '1' })
        throw err
      }
    }
    if (!ok) {
      limiter.fail(request.ip)
      throw unauthorized()
    }
  }

  fastify.decorateRequest('kvSystem', false)
  fastify.decorateRequest('kvProject', null)

  fastify.decorate('requireSystemKey', async function (request: FastifyRequest, _reply: FastifyReply) {
    await verify(fastify.kv.systemAuth, request)
    request.kvSystem = true
  })

  fastify.decorate('requireProjectKey', async function (request: FastifyRequest, _reply: FastifyReply) {
    const { id } = request.params as { id: string }
    const project = fastify.kv.project(id)
    if (project === undefined) {
      if (fastify.kv.projectDiscoverable) throw notFound(id)
      // Answer exactly as a wrong key would, failure count included.
      limiter.fail(request.ip)
      throw unauthorized()
    }
    await verify(project.auth, request)
    request.kvProject = project
  })
}, { name: 'kv-auth', fastify: '5.x', dependencies: ['kv-config', 'kv-storage'] })
