import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { KvError } from '../lib/errors.js'
import { exceedsJsonDepth, jsonDepthMessage } from '../lib/json-depth.js'
import type { Project } from '../lib/registry.js'
import type { JsonValue } from '../lib/record.js'
import { respond } from '../plugins/envelope.js'
import { EnvelopeSchema, KeyParams, ProjectIdParams, RecordSchema, errorResponses, keySecurity } from './schemas.js'

export const EMPTY_BODY = 'Request body must be valid JSON or non-empty plain text'

function project (request: FastifyRequest): Project {
  return request.kvProject as Project
}

function keyNotFound (key: string, id: string): KvError {
  return new KvError(404, `Key '${key}' not found in project '${id}' store`)
}

const storeRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { maxKeyBytes, maxBodyBytes, maxJsonDepth } = fastify.kvConfig.settings

  // JSON bodies are parsed (any JSON value); every other body is kept verbatim as text.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') {
      done(new KvError(400, EMPTY_BODY), undefined)
      return
    }
    // Too deep a value would overflow the stack of the recursive code that sizes and saves it.
    if (exceedsJsonDepth(body as string, maxJsonDepth)) {
      done(new KvError(400, jsonDepthMessage(maxJsonDepth)), undefined)
      return
    }
    try {
      done(null, JSON.parse(body as string))
    } catch (err) {
      done(new KvError(400, `Request body is not valid JSON: ${(err as Error).message}`), undefined)
    }
  })
  fastify.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') done(new KvError(400, EMPTY_BODY), undefined)
    else done(null, body)
  })

  fastify.get('/api/v1/projects/:id/store', {
    onRequest: fastify.requireProjectKey,
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
    const p = project(request)
    if (!p.discoverable) throw new KvError(403, 'Retrieving all keys and values is disabled for this project')
    return respond(request, reply, 200, '', Object.fromEntries(p.store.list()))
  })

  fastify.put('/api/v1/projects/:id/store/:key', {
    onRequest: fastify.requireProjectKey,
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
    if (Buffer.byteLength(key) > maxKeyBytes) throw new KvError(413, `Key is longer than the maximum of ${maxKeyBytes} bytes`)
    // Without a content type Fastify skips parsing an empty body, leaving it unset.
    if (request.body === undefined || (request.headers['content-type'] === undefined && typeof request.body !== 'string')) {
      throw new KvError(400, EMPTY_BODY)
    }
    await project(request).store.set(key, request.body as JsonValue)
    return respond(request, reply, 200, `Key '${key}' set successfully in project '${id}' store`)
  })

  fastify.get('/api/v1/projects/:id/store/:key', {
    onRequest: fastify.requireProjectKey,
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
    const record = project(request).store.get(key)
    if (record === undefined) throw keyNotFound(key, id)
    return respond(request, reply, 200, `Key '${key}' fetched successfully from project '${id}' store`, record)
  })

  fastify.get('/api/v1/projects/:id/store/:key/value', {
    onRequest: fastify.requireProjectKey,
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
    const record = project(request).store.get(key)
    if (record === undefined) throw keyNotFound(key, id)
    reply.header('x-content-type-options', 'nosniff')
    if (typeof record.value === 'string') return await reply.type('text/plain; charset=utf-8').send(record.value)
    return await reply.type('application/json; charset=utf-8').send(JSON.stringify(record.value))
  })

  fastify.delete('/api/v1/projects/:id/store/:key', {
    onRequest: fastify.requireProjectKey,
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
    if (!await project(request).store.delete(key)) throw keyNotFound(key, id)
    return respond(request, reply, 200, `Key '${key}' deleted successfully from project '${id}' store`)
  })

  fastify.delete('/api/v1/projects/:id/store', {
    onRequest: fastify.requireProjectKey,
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
    await project(request).store.clear()
    return respond(request, reply, 200, `All key-value pairs deleted successfully from project '${id}' store`)
  })
}

export default storeRoutes
