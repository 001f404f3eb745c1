import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { KvError } from '../lib/errors.js'
import { presentedKey } from '../lib/keys.js'
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

export default fp(async (fastify) => {
  fastify.decorateRequest('kvSystem', false)
  fastify.decorateRequest('kvProject', null)

  fastify.decorate('requireSystemKey', async function (request: FastifyRequest, _reply: FastifyReply) {
    if (!await fastify.kv.systemAuth.check(presentedKey(request.headers))) throw unauthorized()
    request.kvSystem = true
  })

  fastify.decorate('requireProjectKey', async function (request: FastifyRequest, _reply: FastifyReply) {
    const { id } = request.params as { id: string }
    const project = fastify.kv.project(id)
    if (project === undefined) throw fastify.kv.projectDiscoverable ? notFound(id) : unauthorized()
    if (!await project.auth.check(presentedKey(request.headers))) throw unauthorized()
    request.kvProject = project
  })
}, { name: 'kv-auth', fastify: '5.x', dependencies: ['kv-storage'] })
