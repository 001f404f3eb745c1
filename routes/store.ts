import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { EnvelopeSchema } from '../schemas/envelope.js'
import { RecordSchema, type JsonValue } from '../schemas/record.js'
import { ForbiddenError, LimitExceededError, NotFoundError } from '../lib/errors.js'
import { exceedsJsonDepth, jsonDepthMessage } from '../lib/json-depth.js'
import { projectOf } from '../plugins/auth.js'
import { respond } from '../plugins/envelope.js'
import { KeyParams, ProjectIdParams, errorResponses, keySecurity } from './schemas.js'

export const EMPTY_BODY = 'Request body must be valid JSON or non-empty plain text'

function keyNotFound (key: string, id: string): NotFoundError {
  return new NotFoundError(`Key '${key}' not found in project '${id}' store`)
}

/** A project's keys and values: registered under /api/v1/projects/:id/store, every route behind the project key. */
const storeRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { maxKeyBytes, maxBodyBytes, maxJsonDepth } = fastify.kvConfig.settings
  const { httpErrors } = fastify
  fastify.addHook('onRequest', fastify.requireProjectKey)

  // JSON bodies are parsed (any JSON value); every other body is kept verbatim as text.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') {
      done(httpErrors.badRequest(EMPTY_BODY), undefined)
      return
    }
    // Too deep a value would overflow the stack of the recursive code that sizes and saves it.
    if (exceedsJsonDepth(body as string, maxJsonDepth)) {
      done(httpErrors.badRequest(jsonDepthMessage(maxJsonDepth)), undefined)
      return
    }
    try {
      done(null, JSON.parse(body as string))
    } catch (err) {
      done(httpErrors.badRequest(`Request body is not valid JSON: ${(err as Error).message}`), undefined)
    }
  })
  fastify.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') done(httpErrors.badRequest(EMPTY_BODY), undefined)
    else done(null, body)
  })

  fastify.get('', {
    schema: {
      tags: ['store'],
      summary: 'List the whole store',
      description: 'Every key with its record. 403 unless the project\'s keys_and_values_discoverable is on.',
      security: keySecurity,
      params: ProjectIdParams,
      response: {
        200: EnvelopeSchema(Type.Record(Type.String(), RecordSchema), { system: false, description: 'Records keyed by key.' }),
        ...errorResponses([401, 403, 404, 500])
      }
    }
  }, async (request, reply) => {
    const { settings, store } = projectOf(request)
    if (!settings.security.keys_and_values_discoverable) throw new ForbiddenError('Retrieving all keys and values is disabled for this project')
    return respond(request, reply, 200, '', Object.fromEntries(await store.entries()))
  })

  fastify.put('/:key', {
    bodyLimit: maxBodyBytes,
    schema: {
      tags: ['store'],
      summary: 'Set a key',
      description: 'With Content-Type application/json the body is parsed and any JSON value is stored; with any other content type the body is stored as a string, verbatim.',
      security: keySecurity,
      consumes: ['application/json', 'text/plain'],
      params: KeyParams,
      body: Type.Unknown({ description: 'The value: any JSON (application/json) or text.' }),
      response: {
        200: EnvelopeSchema(Type.Null(), { system: false, description: 'Stored.' }),
        ...errorResponses([400, 401, 404, 413, 500, 507])
      }
    }
  }, async (request, reply) => {
    const { id, key } = request.params
    if (Buffer.byteLength(key) > maxKeyBytes) throw new LimitExceededError(`Key is longer than the maximum of ${maxKeyBytes} bytes`)
    // Without a content type Fastify skips parsing an empty body, leaving it unset.
    if (request.body === undefined || (request.headers['content-type'] === undefined && typeof request.body !== 'string')) {
      throw httpErrors.badRequest(EMPTY_BODY)
    }
    await projectOf(request).store.set(key, request.body as JsonValue)
    return respond(request, reply, 200, `Key '${key}' set successfully in project '${id}' store`)
  })

  fastify.get('/:key', {
    schema: {
      tags: ['store'],
      summary: 'Get a record',
      description: 'The value with its metadata.',
      security: keySecurity,
      params: KeyParams,
      response: {
        200: EnvelopeSchema(RecordSchema, { system: false, description: 'The record.' }),
        ...errorResponses([401, 404, 500])
      }
    }
  }, async (request, reply) => {
    const { id, key } = request.params
    const record = await projectOf(request).store.get(key)
    if (record === undefined) throw keyNotFound(key, id)
    return respond(request, reply, 200, `Key '${key}' fetched successfully from project '${id}' store`, record)
  })

  fastify.get('/:key/value', {
    schema: {
      tags: ['store'],
      summary: 'Get the raw value',
      description: 'The stored value alone, not in the envelope: strings as text/plain, everything else as application/json.',
      security: keySecurity,
      produces: ['text/plain', 'application/json'],
      params: KeyParams,
      response: {
        200: {
          description: 'The raw value.',
          content: {
            'text/plain': { schema: Type.String({ description: 'A string value, as stored.' }) },
            'application/json': { schema: Type.Unknown({ description: 'Any other value, as JSON.' }) }
          }
        },
        ...errorResponses([401, 404, 500])
      }
    }
  }, async (request, reply) => {
    const { id, key } = request.params
    const record = await projectOf(request).store.get(key)
    if (record === undefined) throw keyNotFound(key, id)
    reply.header('x-content-type-options', 'nosniff')
    if (typeof record.value === 'string') return await reply.type('text/plain; charset=utf-8').send(record.value)
    return await reply.type('application/json; charset=utf-8').send(JSON.stringify(record.value))
  })

  fastify.delete('/:key', {
    schema: {
      tags: ['store'],
      summary: 'Delete a key',
      security: keySecurity,
      params: KeyParams,
      response: {
        200: EnvelopeSchema(Type.Null(), { system: false, description: 'Deleted.' }),
        ...errorResponses([401, 404, 500, 507])
      }
    }
  }, async (request, reply) => {
    const { id, key } = request.params
    if (!await projectOf(request).store.delete(key)) throw keyNotFound(key, id)
    return respond(request, reply, 200, `Key '${key}' deleted successfully from project '${id}' store`)
  })

  fastify.delete('', {
    schema: {
      tags: ['store'],
      summary: 'Clear the store',
      description: 'Deletes every key of the project.',
      security: keySecurity,
      params: ProjectIdParams,
      response: {
        200: EnvelopeSchema(Type.Null(), { system: false, description: 'Cleared.' }),
        ...errorResponses([401, 404, 500, 507])
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    await projectOf(request).store.clear()
    return respond(request, reply, 200, `All key-value pairs deleted successfully from project '${id}' store`)
  })
}

export default storeRoutes
