import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { respond } from '../plugins/envelope.js'
import { EnvelopeSchema } from '../schemas/envelope.js'
import { errorResponses, keySecurity } from './schemas.js'

const statusRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    schema: {
      tags: ['status'],
      summary: 'Liveness check',
      description: 'Answers 200 while the server is up. Needs no key and reveals nothing.',
      response: { 200: EnvelopeSchema(Type.Null(), { system: false, description: 'The server is up.' }) }
    }
  }, async (request, reply) => respond(request, reply, 200, 'OK'))

  fastify.get('/status', {
    onRequest: fastify.requireSystemKey,
    schema: {
      tags: ['status'],
      summary: 'Server status',
      description: 'Confirms the server works and returns the System object. Needs the system key.',
      security: keySecurity,
      response: {
        200: EnvelopeSchema(Type.Null(), { system: true, description: 'The server is fully operational.' }),
        ...errorResponses([401, 500], true)
      }
    }
  }, async (request, reply) => respond(request, reply, 200, 'Simple PyKV server is fully operational.'))
}

export default statusRoutes
