import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { Type, type TSchema } from '@sinclair/typebox'
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'
import { BODY_NOT_JSON } from '../lib/registry.js'
import { EnvelopeSchema } from '../schemas/envelope.js'

/**
 * For bodies the registry checks itself, in the order the contract gives its
 * messages: the body schema documents the body and is not applied here;
 * params and the rest are validated as usual.
 */
export const registryChecksBody: FastifySchemaCompiler<TSchema> = (route) =>
  route.httpPart === 'body' ? () => true : TypeBoxValidatorCompiler(route)

/** Project bodies must be JSON objects; anything else gets the contract's one message. */
export function projectBodyParsers (fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, JSON.parse(body as string))
    } catch {
      done(fastify.httpErrors.badRequest(BODY_NOT_JSON), undefined)
    }
  })
  fastify.addContentTypeParser('*', { parseAs: 'string' }, (_request, _body, done) => {
    done(fastify.httpErrors.badRequest(BODY_NOT_JSON), undefined)
  })
}

export const ProjectIdParams = Type.Object({
  id: Type.String({ description: 'Project id.' })
})

export const KeyParams = Type.Object({
  id: Type.String({ description: 'Project id.' }),
  key: Type.String({ description: 'Store key, percent-encoded in the path (a%2Fb is the key a/b).' })
})

export const ETagHeader = Type.Object({
  etag: Type.String({ description: 'The strong entity tag of the key\'s current state, quotes included.' })
})

const ENTITY_TAGS = 'A comma-separated list of quoted entity tags, or *.'

export const ConditionalReadHeaders = Type.Object({
  'if-none-match': Type.Optional(Type.String({ description: `304 when the current ETag is listed (weak comparison). ${ENTITY_TAGS}` }))
})

export const ConditionalWriteHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ description: `412 unless the key exists and its current ETag is listed (strong comparison; W/ tags never match). ${ENTITY_TAGS}` })),
  'if-none-match': Type.Optional(Type.String({ description: `412 when the current ETag is listed; * makes the write create-only. ${ENTITY_TAGS}` }))
})

export const SetQuery = Type.Object({
  ttl: Type.Optional(Type.Number({ minimum: 0.001, maximum: 315360000, description: 'Expire the key this many seconds from now (rounded up to whole milliseconds).' })),
  expires_at: Type.Optional(Type.Number({ description: 'Expire the key at this instant, epoch seconds, in the future.' })),
  keep_ttl: Type.Optional(Type.Boolean({ description: 'Keep the key\'s current expiry (without any of the three, a write clears it).' }))
})

export const TtlBody = Type.Object({
  ttl: Type.Optional(Type.Number({ description: 'Seconds from now, 0.001 to 315360000.' })),
  expires_at: Type.Optional(Type.Number({ description: 'Epoch seconds, in the future.' })),
  persist: Type.Optional(Type.Literal(true, { description: 'Remove the expiry.' }))
}, { additionalProperties: false, description: 'Exactly one of ttl, expires_at and persist.' })

export const PreconditionFailedSchema = EnvelopeSchema(Type.Object({
  etag: Type.Union([Type.String(), Type.Null()], { description: 'The key\'s current ETag, or null when it does not exist.' })
}), { system: false, description: 'A precondition failed; data carries the current ETag so a compare-and-set loop needs no extra read.' })

const errorText: Record<number, string> = {
  400: 'Bad request: the message names the problem.',
  401: 'Invalid or missing API key.',
  403: 'Forbidden by the project\'s or server\'s settings.',
  404: 'Not found.',
  409: 'Conflict with the current settings.',
  413: 'Request body or value too large.',
  415: 'Unsupported content type.',
  428: 'The project requires If-Match or If-None-Match on this write.',
  500: 'Internal server error.',
  507: 'The change could not be written to disk; nothing was changed.'
}

/** Error envelopes for the given statuses (data is always null). */
export function errorResponses (codes: number[], system = false): Record<number, TSchema> {
  const out: Record<number, TSchema> = {}
  for (const code of codes) out[code] = EnvelopeSchema(Type.Null(), { system, description: errorText[code] ?? 'Error.' })
  return out
}

/** Security requirement: any one of the three key headers. */
export const keySecurity: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { apiKeyHeader: [] }, { apiKeyLegacyHeader: [] }]
