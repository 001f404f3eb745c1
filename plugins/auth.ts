import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { ForbiddenError, PreconditionRequiredError, projectNotFound, StaleProjectError } from '../lib/errors.js'
import { presentedKey, type ScopeAuth } from '../lib/keys.js'
import { FailureLimiter } from '../lib/ratelimit.js'
import type { Project } from '../lib/registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: the system key, or 401. */
    requireSystemKey: onRequestHookHandler
    /** onRequest hook: the project in `params.id` exists and the key is its own, or 404/401. */
    requireProjectKey: onRequestHookHandler
    /** The request's project read again from the storage and the request admitted again (withProject). */
    kvRecheck: (request: FastifyRequest) => Promise<Project>
  }
  interface FastifyRequest {
    /** Set once the system key check passed: the response then carries the System object. */
    kvSystem: boolean
    /** The project of a project route, set by requireProjectKey; read it with projectOf(). */
    kvProject: Project | null
  }
}

export const UNAUTHORIZED = 'Invalid or missing API key'

/** The project a request was authenticated for: the one way from a route behind requireProjectKey to its project. */
export function projectOf (request: FastifyRequest): Project {
  const project = request.kvProject
  if (project === null) throw new Error(`route ${request.routeOptions.url ?? request.url} runs without the requireProjectKey hook`)
  return project
}

/**
 * Run `fn` with the request's project. When the store refuses because the
 * project changed since the request was admitted (a new key, new settings,
 * deleted: on this instance or another one sharing Redis), the request is
 * admitted again against the project as it is now (401, 404 as the hook would
 * answer) and `fn` runs once more with it. `fn` must decide everything from
 * the project it gets (settings included), since it may run twice.
 */
export async function withProject<T> (request: FastifyRequest, fn: (project: Project) => Promise<T>): Promise<T> {
  const project = projectOf(request)
  try {
    return await fn(project)
  } catch (err) {
    if (!(err instanceof StaleProjectError)) {
      // A refusal decided on settings this instance may hold from before a change made elsewhere:
      // confirmed against the project as Redis holds it before it is answered.
      const bySettings = err instanceof ForbiddenError || err instanceof PreconditionRequiredError
      if (!bySettings || !request.server.kv.shared) throw err
      const { id } = request.params as { id: string }
      if (await request.server.kv.reload(id) === project) throw err
    }
  }
  return await fn(await request.server.kvRecheck(request))
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
  const { httpErrors } = fastify

  /** Answers 429 when the client address is over its failure limit. */
  function limited (request: FastifyRequest, done: (err?: Error) => void): boolean {
    const retryAfter = limiter.retryAfter(request.ip)
    if (retryAfter === 0) return false
    // Closing the connection makes a flooding client pay for a new one before its next guess.
    done(httpErrors.createError(429, 'Too many failed authentication attempts; retry later', {
      headers: { 'retry-after': String(retryAfter), connection: 'close' }
    }))
    return true
  }

  /** A failed authentication: counted, then 401 (or 429 once over the limit). */
  function fail (request: FastifyRequest, done: (err?: Error) => void): void {
    if (limited(request, done)) return
    limiter.fail(request.ip)
    done(httpErrors.unauthorized(UNAUTHORIZED))
  }

  /**
   * Calls `done` with nothing when the key opens `auth`, else with the error to
   * answer. The common cases finish synchronously; only a slow hash waits.
   */
  function verify (auth: ScopeAuth, request: FastifyRequest, done: (err?: Error) => void): void {
    const key = presentedKey(request.headers)
    const fast = auth.checkFast(key)
    if (fast === true) {
      done()
      return
    }
    if (fast === false) {
      fail(request, done)
      return
    }
    if (limited(request, done)) return
    auth.checkSlow(key as string).then(ok => {
      if (ok) done()
      else fail(request, done)
    }, (err: unknown) => { done(err as Error) })
  }

  fastify.decorateRequest('kvSystem', false)
  fastify.decorateRequest('kvProject', null)

  /** Keyed answers differ per key: no cache may keep one or hand it to another client. */
  function keyed (reply: FastifyReply): void {
    reply.header('cache-control', 'no-store')
    reply.header('vary', 'Authorization, X-API-Key, Api-Key, Origin')
  }

  fastify.decorate('requireSystemKey', function (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    keyed(reply)
    verify(fastify.kv.systemAuth, request, err => {
      if (err === undefined) request.kvSystem = true
      done(err)
    })
  })

  fastify.decorate('kvRecheck', async function (request: FastifyRequest): Promise<Project> {
    const { id } = request.params as { id: string }
    const project = await fastify.kv.reload(id, true)
    request.kvProject = null
    await new Promise<void>((resolve, reject) => {
      admit(project, id, request, err => { if (err === undefined || err === null) resolve(); else reject(err) })
    })
    return projectOf(request)
  })

  fastify.decorate('requireProjectKey', function (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    keyed(reply)
    const { id } = request.params as { id: string }
    const found = fastify.kv.resolve(id)
    // Not seen here yet (shared registry): read from Redis first.
    if (found instanceof Promise) {
      found.then(project => { admit(project, id, request, done) }, (err: unknown) => { done(err as Error) })
      return
    }
    if (found === undefined || !fastify.kv.shared) {
      admit(found, id, request, done)
      return
    }
    // As this instance last saw the project, the key is good: the request's script confirms that
    // version is still current. Anything else (a wrong key, a key that needs a slow hash) may be a
    // key changed elsewhere since: read the project again before answering.
    if (found.auth.checkFast(presentedKey(request.headers)) === true) {
      request.kvProject = found
      done()
      return
    }
    // An address over its failure limit gets 429 without costing Redis a read.
    if (limited(request, done)) return
    fastify.kv.reload(id).then(project => { admit(project, id, request, done) }, (err: unknown) => { done(err as Error) })
  })

  /** Admit the request to `project` (or answer 404/401 as a wrong key would), with the failure limit. */
  function admit (project: Project | undefined, id: string, request: FastifyRequest, done: HookHandlerDoneFunction): void {
    if (project === undefined) {
      if (fastify.kv.projectDiscoverable) {
        done(projectNotFound(id))
        return
      }
      // Answer exactly as a wrong key would, failure count and limit included.
      fail(request, done)
      return
    }
    verify(project.auth, request, err => {
      if (err === undefined) request.kvProject = project
      done(err)
    })
  }
}, { name: 'kv-auth', fastify: '5.x', dependencies: ['kv-config', 'kv-storage', '@fastify/sensible'] })
