import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { Type, type TSchema } from '@sinclair/typebox'
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'
import { exceedsJsonDepth, jsonDepthMessage } from '../lib/json-depth.js'
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
  const { maxJsonDepth } = fastify.kvConfig.settings
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    // Too deep a body would overflow the stack of the recursive code that validates and saves it.
    if (exceedsJsonDepth(body as string, maxJsonDepth)) {
      done(fastify.httpErrors.badRequest(jsonDepthMessage(maxJsonDepth)), undefined)
      return
    }
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

const errorText: Record<number, string> = {
  400: 'Bad request: the message names the problem.',
  401: 'Invalid or missing API key.',
  403: 'Forbidden by the project\'s or server\'s settings.',
  404: 'Not found.',
  409: 'Conflict with the current settings.',
  413: 'Request body or value too large.',
  415: 'Unsupported content type.',
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
