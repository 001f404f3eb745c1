import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { respond } from '../plugins/envelope.js'
import { OkEnvelopeSchema, SystemOkEnvelopeSchema } from '../schemas/envelope.js'
import { operation, response } from './schemas.js'

const statusRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    schema: operation({
      operationId: 'getHealth',
      tag: 'status',
      summary: 'Liveness check',
      description: 'Answers 200 while the server is up. Needs no key and reveals nothing.',
      access: 'public',
      method: 'GET'
    }, {}, { 200: response(OkEnvelopeSchema, 'The server is up.') })
  }, async (request, reply) => respond(request, reply, 200, 'OK'))

  fastify.get('/status', {
    onRequest: fastify.requireSystemKey,
    schema: operation({
      operationId: 'getStatus',
      tag: 'status',
      summary: 'Server status',
      description: 'Confirms the server works and returns the System object. Needs the system key.',
      access: 'system',
      method: 'GET'
    }, {}, { 200: response(SystemOkEnvelopeSchema, 'The server is fully operational.') })
  }, async (request, reply) => respond(request, reply, 200, 'Simple PyKV server is fully operational.'))
}

export default statusRoutes
