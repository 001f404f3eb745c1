import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'
import { exceedsJsonDepth, jsonDepthMessage } from '../lib/json-depth.js'
import { BODY_NOT_JSON } from '../lib/registry.js'
import { NAMED_SCHEMAS } from '../schemas/responses.js'
import { ErrorEnvelopeSchema, SystemErrorEnvelopeSchema, ref } from '../schemas/envelope.js'

/**
 * For bodies the registry checks itself, in the order the contract gives its
 * messages: the body schema documents the body and is not applied here;
 * params and the rest are validated as usual.
 */
export const registryChecksBody: FastifySchemaCompiler<TSchema> = (route) =>
  route.httpPart === 'body' ? () => true : TypeBoxValidatorCompiler(route)

/** Registers the schemas routes reference by `$id`; call once on the app, before its routes. */
export function addNamedSchemas (fastify: FastifyInstance): void {
  for (const schema of NAMED_SCHEMAS) fastify.addSchema(schema)
}

/**
 * TypeBoxValidatorCompiler for a body given as ref() to a named schema, which
 * TypeBox resolves against the named schemas; other parts as usual.
 */
export const namedBodyValidator: FastifySchemaCompiler<TSchema> = (route) => {
  if (route.httpPart !== 'body') return TypeBoxValidatorCompiler(route)
  const check = TypeCompiler.Compile(route.schema, NAMED_SCHEMAS)
  return (value: unknown) => check.Check(value)
    ? { value }
    : { error: [...check.Errors(value)].map(e => ({ keyword: '', schemaPath: '', params: {}, message: e.message, instancePath: e.path })) }
}

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

/** Response headers are described as a map from name to schema, as OpenAPI has them. */
export type ResponseHeaders = Record<string, TSchema>

export const ETagHeader: ResponseHeaders = {
  ETag: Type.String({ description: 'The strong entity tag of the key\'s current state, quotes included.' })
}

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

const errorText: Record<number, string> = {
  400: 'Bad request: a malformed URL (a bad percent-escape), header, parameter or body; the message names it.',
  401: 'Invalid or missing API key.',
  403: 'Forbidden by the project\'s or server\'s settings.',
  404: 'Not found.',
  409: 'Conflict with the current settings.',
  413: 'Request body, key or value too large (a body sent to a route that takes none counts against the same limit).',
  428: 'The project requires If-Match or If-None-Match on this write.',
  429: 'Too many failed authentications from this address: retry after Retry-After seconds.',
  500: 'Internal server error.',
  503: 'Too many key verifications are waiting, or the storage server (Redis) is unreachable: retry after Retry-After seconds.',
  507: 'The change could not be stored (a full or failing disk, or Redis at maxmemory); nothing was changed.'
}

export const RetryAfterHeader: ResponseHeaders = {
  'Retry-After': Type.Integer({ minimum: 0, description: 'Seconds to wait before the next attempt.' })
}

/** Who may call an operation: anyone, the system key, or the project key (or anyone, for a project with authentication off). */
export type Access = 'public' | 'system' | 'project'

const KEY_SCHEMES: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { apiKeyHeader: [] }, { apiKeyLegacyHeader: [] }]

/**
 * Security requirement of each access. A project may have authentication off,
 * so a keyless call is valid there (the empty requirement); the system key can
 * only be turned off for the whole server, which the document does not model.
 */
export const SECURITY: Record<Access, Array<Record<string, string[]>>> = {
  public: [],
  system: KEY_SCHEMES,
  project: [{}, ...KEY_SCHEMES]
}

export interface OperationInfo {
  /** Stable camelCase name, the method name of generated clients. */
  operationId: string
  tag: 'status' | 'projects' | 'store'
  summary: string
  description: string
  access: Access
  method: 'GET' | 'PUT' | 'POST' | 'DELETE'
  /** Error statuses particular to this operation; the ones every operation of its access and method can answer are added. */
  errors?: number[]
}

/**
 * operation() for the routes of one file, which share a tag and an access:
 * `op(method, operationId, summary, description, parts, responses, errors)`.
 */
export function operations (tag: OperationInfo['tag'], access: Access) {
  return <const P extends object, const R extends Record<number, unknown>> (
    method: OperationInfo['method'], operationId: string, summary: string, description: string, parts: P, responses: R, errors: number[] = []
  ) => operation({ operationId, tag, summary, description, access, method, errors }, parts, responses)
}

/** A described response: a named schema, with this operation's description and headers. */
export function response<T extends TSchema> (schema: T, description: string, headers?: ResponseHeaders): TUnsafe<Static<T>> & { headers?: ResponseHeaders } {
  return { ...ref(schema, { description }), ...(headers === undefined ? {} : { headers }) }
}

/** The error statuses an operation can answer: before routing, authentication and body parsing, and its own. */
export function errorStatuses (info: Pick<OperationInfo, 'access' | 'method' | 'errors'>): number[] {
  const codes = new Set([400, 500, ...(info.errors ?? [])])
  if (info.method !== 'GET') codes.add(413)
  if (info.access !== 'public') for (const code of [401, 429, 503]) codes.add(code)
  if (info.access === 'project') codes.add(404)
  return [...codes].sort((a, b) => a - b)
}

/**
 * The schema of one route: its OpenAPI identity, security, request parts, its
 * own responses, and an error envelope for every other status it can answer
 * (System is set on system-key routes once the key check passed).
 */
export function operation<const P extends object, const R extends Record<number, unknown>> (info: OperationInfo, parts: P, responses: R) {
  const envelope = info.access === 'system' ? SystemErrorEnvelopeSchema : ErrorEnvelopeSchema
  const errors: Record<number, unknown> = {}
  for (const code of errorStatuses(info)) {
    if (code in responses) continue
    errors[code] = response(envelope, errorText[code] ?? 'Error.', code === 429 || code === 503 ? RetryAfterHeader : undefined)
  }
  return {
    tags: [info.tag],
    operationId: info.operationId,
    summary: info.summary,
    description: info.description,
    security: SECURITY[info.access],
    ...parts,
    response: { ...errors, ...responses } as R & Record<number, TSchema>
  }
}
