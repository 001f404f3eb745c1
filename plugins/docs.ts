import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifySchema } from 'fastify'
import { VERSION } from '../lib/version.js'
import { browserSecurity } from './security.js'

export interface DocsPluginOptions {
  /** The prefix the app is mounted under: the document's server, and where Swagger UI finds its assets. */
  prefix?: string
}

type Responses = Record<string, { description?: string, headers?: unknown }>

/** HEAD's operationId from its GET's: getRecord → headRecord, listKeys → headListKeys. */
export function headOperationId (getId: string): string {
  const id = getId.replace(/-head$/, '')
  return id.startsWith('get') ? `head${id.slice(3)}` : `head${id[0].toUpperCase()}${id.slice(1)}`
}

/** Fastify answers HEAD for every GET route: the same statuses and headers, no body. */
function headSchema (schema: FastifySchema & { operationId?: string, summary?: string }): FastifySchema {
  const response: Record<string, unknown> = {}
  for (const [code, r] of Object.entries((schema.response ?? {}) as Responses)) {
    response[code] = { description: r.description ?? 'No body.', ...(r.headers === undefined ? {} : { headers: r.headers }), type: 'null' }
  }
  return {
    ...schema,
    ...(schema.operationId === undefined ? {} : { operationId: headOperationId(schema.operationId) }),
    ...(schema.summary === undefined ? {} : { summary: `${schema.summary} (headers only)` }),
    response
  }
}

/** The OpenAPI document, generated from the route schemas, at /openapi.json, and Swagger UI at /docs. */
export default fp<DocsPluginOptions>(async (fastify, opts) => {
  const prefix = opts.prefix ?? ''
  await fastify.register(swagger, {
    openapi: {
      // 3.1: schemas are JSON Schema 2020-12, so a null is `type: 'null'`, which Ajv, Prism and openapi-typescript all read.
      openapi: '3.1.0',
      info: {
        title: 'Simple KV',
        version: VERSION,
        description: 'A small key-value store server. Projects are isolated namespaces, each with its own API key; the system key manages the server. Send a key as `Authorization: Bearer <key>`, `X-API-Key` or `Api-Key`. Every JSON answer, error or not, is the envelope `{status_code, message, System, data}`. A method a path does not have is answered 405 with an `Allow` header (the `MethodNotAllowed` response).',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
        contact: { name: 'Simple KV', url: 'https://simple-kv.dev' }
      },
      // Relative: it resolves against wherever the document is served, under the host's prefix when embedded.
      servers: [{ url: prefix === '' ? '/' : prefix, description: prefix === '' ? 'This server' : `This server, under the host's prefix ${prefix}` }],
      tags: [
        { name: 'status', description: 'Liveness and server status' },
        { name: 'projects', description: 'Create, inspect, update and delete projects' },
        { name: 'store', description: 'Keys and values of one project' }
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <key> (wins over the other headers)' },
          apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          apiKeyLegacyHeader: { type: 'apiKey', in: 'header', name: 'Api-Key' }
        },
        responses: {
          MethodNotAllowed: {
            description: 'The path exists but not with this method.',
            headers: { Allow: { description: 'The methods the path has, comma-separated.', schema: { type: 'string' } } },
            content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } }
          }
        }
      }
    },
    exposeHeadRoutes: true,
    // Components are named by their $id (Record, RecordEnvelope…), not def-0, def-1…
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` },
    transform: ({ schema, url, route }) => ({ schema: route.method === 'HEAD' && schema !== undefined ? headSchema(schema) : schema, url })
  })
  // Encapsulated, so @fastify/helmet's per-request hooks run on the pages of Swagger UI only.
  await fastify.register(async (pages) => {
    await pages.register(browserSecurity)
    await pages.register(swaggerUi, {
      routePrefix: '/docs',
      indexPrefix: prefix,
      uiConfig: { docExpansion: 'list', deepLinking: false }
    })
  })
  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())
}, { name: 'kv-docs', fastify: '5.x' })
