import { TypeBoxValidatorCompiler, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { OkEnvelopeSchema } from '../schemas/envelope.js'
import { TtlChangeSchema, type JsonValue, type KvRecord } from '../schemas/record.js'
import { ref } from '../schemas/envelope.js'
import { PreconditionFailedEnvelopeSchema, RecordEnvelopeSchema, StoreEnvelopeSchema } from '../schemas/responses.js'
import { preconditionsHold } from '../lib/engines/preconditions.js'
import type { ExpiryChange, Preconditions } from '../lib/engines/types.js'
import type { EffectiveProject } from '../lib/config.js'
import { ForbiddenError, LimitExceededError, NotFoundError, PreconditionFailedError, PreconditionRequiredError } from '../lib/errors.js'
import { etagOf } from '../lib/record.js'
import { exceedsJsonDepth, jsonDepthMessage } from '../lib/json-depth.js'
import { withProject } from '../plugins/auth.js'
import { respond } from '../plugins/envelope.js'
import { BadRequestError, expiryOf, hasPreconditions, notModified, preconditionsOf, sendETag } from './conditional.js'
import {
  ConditionalReadHeaders, ConditionalWriteHeaders, ETagHeader, KeyParams, ProjectIdParams, SetQuery,
  namedBodyValidator, operations, response
} from './schemas.js'

const NotModified = { description: 'The copy named by If-None-Match is current; no body.', headers: ETagHeader, type: 'null' } as const

export const EMPTY_BODY = 'Request body must be valid JSON or non-empty plain text'

function keyNotFound (key: string, id: string): NotFoundError {
  return new NotFoundError(`Key '${key}' not found in project '${id}' store`)
}

/**
 * The checks of a conditional write that come before its body is read, in the
 * contract's order: malformed headers or parameters (400), a precondition the
 * project requires (428), a precondition that already fails (412). The write
 * itself checks the preconditions again, atomically.
 */
async function checkWriteConditions (request: FastifyRequest, expiry: boolean): Promise<void> {
  const { key } = request.params as { key: string }
  const pre = preconditionsOf(request)
  if (expiry) expiryOf(request.query as Record<string, unknown>)
  await withProject(request, async ({ settings, store }) => {
    requireConditional(settings, pre)
    if (!hasPreconditions(pre)) return
    const current = await store.get(key)
    const etag = current === undefined ? null : etagOf(current)
    if (!preconditionsHold(pre, etag)) throw new PreconditionFailedError(key, etag)
  })
}

/** 428 when the project requires a precondition on writes and the request has none. */
function requireConditional (settings: EffectiveProject, pre: Preconditions): void {
  if (!hasPreconditions(pre) && settings.security.require_conditional_writes) {
    throw new PreconditionRequiredError(`Project '${settings.id}' requires If-Match or If-None-Match on every write of a key`)
  }
}

const op = operations('store', 'project')

/**
 * The record a GET of a key answers with, its ETag sent; null when
 * If-None-Match names the current ETag (answer 304). 404 when there is none.
 */
async function readForGet (request: FastifyRequest, reply: FastifyReply): Promise<KvRecord | null> {
  const { id, key } = request.params as { id: string, key: string }
  const { ifNoneMatch } = preconditionsOf(request)
  const record = await withProject(request, async ({ store }) => await store.get(key))
  if (record === undefined) throw keyNotFound(key, id)
  sendETag(reply, record)
  return notModified(ifNoneMatch, record) ? null : record
}

/** A project's keys and values: registered under /api/v1/projects/:id/store, every route behind the project key. */
const storeRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { maxKeyBytes, maxBodyBytes, maxJsonDepth } = fastify.kvConfig.settings
  const { httpErrors } = fastify
  fastify.addHook('onRequest', fastify.requireProjectKey)
  // The conditional headers are parsed (and refused with 400 when malformed) by the handlers
  // themselves; their schemas document them, and checking them again on every request cost time.
  fastify.setValidatorCompiler(route => route.httpPart === 'headers' ? () => true : TypeBoxValidatorCompiler(route as Parameters<typeof TypeBoxValidatorCompiler>[0]))

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
    schema: op('GET', 'listStore', 'List the whole store', 'Every key with its record. 403 unless the project\'s keys_and_values_discoverable is on.', { params: ProjectIdParams }, { 200: response(StoreEnvelopeSchema, 'Records keyed by key.') }, [403])
  }, async (request, reply) => {
    const entries = await withProject(request, async ({ settings, store }) => {
      if (!settings.security.keys_and_values_discoverable) throw new ForbiddenError('Retrieving all keys and values is disabled for this project')
      return await store.entries()
    })
    return respond(request, reply, 200, '', Object.fromEntries(entries))
  })

  fastify.put('/:key', {
    bodyLimit: maxBodyBytes,
    preParsing: async (request) => { await checkWriteConditions(request, true) },
    schema: op('PUT', 'setKey', 'Set a key', 'With Content-Type application/json the body is parsed and any JSON value is stored; with any other content type (text/plain, application/octet-stream, none…) the body is stored as a string, decoded as UTF-8. An empty body is refused (400). `ttl`, `expires_at` or `keep_ttl` set the expiry; without them a write clears it. If-Match / If-None-Match make the write conditional (412 when they fail, in the same atomic step as the write).', {
      params: KeyParams,
      querystring: SetQuery,
      headers: ConditionalWriteHeaders,
      body: {
        description: 'The value.',
        content: {
          'application/json': { schema: Type.Unknown({ description: 'Any JSON value, stored as parsed.' }) },
          'text/plain': { schema: Type.String({ minLength: 1, description: 'Text, stored verbatim as a string.' }) },
          '*/*': { schema: Type.String({ minLength: 1, description: 'Any other body, stored as a string (decoded as UTF-8).' }) }
        }
      }
    }, {
      200: response(OkEnvelopeSchema, 'Stored.', ETagHeader),
      412: response(PreconditionFailedEnvelopeSchema, 'If-Match or If-None-Match does not hold; nothing was written.')
    }, [428, 507])
  }, async (request, reply) => {
    const { id, key } = request.params
    if (Buffer.byteLength(key) > maxKeyBytes) throw new LimitExceededError(`Key is longer than the maximum of ${maxKeyBytes} bytes`)
    // Without a content type Fastify skips parsing an empty body, leaving it unset.
    if (request.body === undefined || (request.headers['content-type'] === undefined && typeof request.body !== 'string')) {
      throw httpErrors.badRequest(EMPTY_BODY)
    }
    const pre = preconditionsOf(request)
    const record = await withProject(request, async ({ settings, store }) => {
      requireConditional(settings, pre)
      return await store.set(key, request.body as JsonValue, { ...pre, expiry: expiryOf(request.query) })
    })
    sendETag(reply, record)
    return respond(request, reply, 200, `Key '${key}' set successfully in project '${id}' store`)
  })

  fastify.put('/:key/ttl', {
    validatorCompiler: namedBodyValidator as never,
    preParsing: async (request) => { await checkWriteConditions(request, false) },
    schema: op('PUT', 'setExpiry', 'Change the expiry of a key', 'Sets (`ttl` seconds from now, or `expires_at` epoch seconds) or removes (`persist: true`) the expiry of an existing key, leaving its value as it is. A revision: the key gets a new version and ETag.', { params: KeyParams, headers: ConditionalWriteHeaders, body: ref(TtlChangeSchema) }, {
      200: response(RecordEnvelopeSchema, 'The record with its new expiry.', ETagHeader),
      412: response(PreconditionFailedEnvelopeSchema, 'If-Match or If-None-Match does not hold; nothing was changed.')
    }, [428, 507])
  }, async (request, reply) => {
    const { id, key } = request.params
    const body = request.body as Record<string, unknown>
    let expiry: ExpiryChange
    if (body.persist === true) {
      if (Object.keys(body).length > 1) throw new BadRequestError('Give one of ttl, expires_at or persist')
      expiry = { kind: 'clear' }
    } else {
      if (body.persist !== undefined) throw new BadRequestError("Invalid 'persist': only true is meaningful")
      const change = expiryOf({ ttl: body.ttl, expires_at: body.expires_at })
      if (change === undefined) throw new BadRequestError('Give one of ttl, expires_at or persist')
      expiry = change
    }
    const pre = preconditionsOf(request)
    const record = await withProject(request, async ({ settings, store }) => {
      requireConditional(settings, pre)
      return await store.setExpiry(key, expiry, pre)
    })
    sendETag(reply, record)
    return respond(request, reply, 200, `Expiry of key '${key}' updated in project '${id}' store`, record)
  })

  fastify.get('/:key', {
    schema: op('GET', 'getRecord', 'Get a record', 'The value with its metadata. With If-None-Match naming the current ETag: 304 and no body.', { params: KeyParams, headers: ConditionalReadHeaders }, {
      200: response(RecordEnvelopeSchema, 'The record.', ETagHeader),
      304: NotModified
    })
  }, async (request, reply) => {
    const { id, key } = request.params
    const record = await readForGet(request, reply)
    if (record === null) return await reply.code(304).send()
    return respond(request, reply, 200, `Key '${key}' fetched successfully from project '${id}' store`, record)
  })

  fastify.get('/:key/value', {
    schema: op('GET', 'getRawValue', 'Get the raw value', 'The stored value alone, not in the envelope: a string as text/plain, any other value as application/json (so a client must choose how to read the body by its Content-Type; errors are JSON envelopes as everywhere). With If-None-Match naming the current ETag: 304 and no body.', { params: KeyParams, headers: ConditionalReadHeaders }, {
      200: {
        description: 'The raw value.',
        headers: ETagHeader,
        content: {
          'text/plain': { schema: Type.String({ description: 'A string value, as stored.' }) },
          'application/json': {
            schema: Type.Union([Type.Number(), Type.Boolean(), Type.Null(), Type.Object({}), Type.Array(Type.Unknown())], { description: 'Any other value, as JSON.' })
          }
        }
      },
      304: NotModified
    })
  }, async (request, reply) => {
    const record = await readForGet(request, reply)
    if (record === null) return await reply.code(304).send()
    reply.header('x-content-type-options', 'nosniff')
    if (typeof record.value === 'string') return await reply.type('text/plain; charset=utf-8').send(record.value)
    return await reply.type('application/json; charset=utf-8').send(JSON.stringify(record.value))
  })

  fastify.delete('/:key', {
    preParsing: async (request) => { await checkWriteConditions(request, false) },
    schema: op('DELETE', 'deleteKey', 'Delete a key', 'If-Match / If-None-Match make the delete conditional (412 when they fail).', { params: KeyParams, headers: ConditionalWriteHeaders }, {
      200: response(OkEnvelopeSchema, 'Deleted.'),
      412: response(PreconditionFailedEnvelopeSchema, 'If-Match or If-None-Match does not hold; nothing was deleted.')
    }, [428, 507])
  }, async (request, reply) => {
    const { id, key } = request.params
    const pre = preconditionsOf(request)
    const deleted = await withProject(request, async ({ settings, store }) => {
      requireConditional(settings, pre)
      return await store.delete(key, pre)
    })
    if (!deleted) throw keyNotFound(key, id)
    return respond(request, reply, 200, `Key '${key}' deleted successfully from project '${id}' store`)
  })

  fastify.delete('', {
    schema: op('DELETE', 'clearStore', 'Clear the store', 'Deletes every key of the project.', { params: ProjectIdParams }, { 200: response(OkEnvelopeSchema, 'Cleared.') }, [507])
  }, async (request, reply) => {
    const { id } = request.params
    await withProject(request, async ({ store }) => { await store.clear() })
    return respond(request, reply, 200, `All key-value pairs deleted successfully from project '${id}' store`)
  })
}

export default storeRoutes
