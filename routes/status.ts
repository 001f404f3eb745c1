import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { respond } from '../plugins/envelope.js'
import { OkEnvelopeSchema, SystemOkEnvelopeSchema } from '../schemas/envelope.js'
import { operations, response } from './schemas.js'

const open = operations('status', 'public')
const keyed = operations('status', 'system')

const statusRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    schema: open('GET', 'getHealth', 'Liveness check', 'Answers 200 while the server is up. Needs no key and reveals nothing.', {}, {
      200: response(OkEnvelopeSchema, 'The server is up.')
    })
  }, async (request, reply) => respond(request, reply, 200, 'OK'))

  fastify.get('/status', {
    onRequest: fastify.requireSystemKey,
    schema: keyed('GET', 'getStatus', 'Server status', 'Confirms the server works and returns the System object. Needs the system key.', {}, {
      200: response(SystemOkEnvelopeSchema, 'The server is fully operational.')
    })
  }, async (request, reply) => respond(request, reply, 200, 'Simple PyKV server is fully operational.'))
}

export default statusRoutes
