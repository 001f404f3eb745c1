import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { VERSION } from '../lib/version.js'
import { browserSecurity } from './security.js'

export interface DocsPluginOptions {
  /** The prefix the app is mounted under, so Swagger UI finds its assets. */
  prefix?: string
}

/** The OpenAPI document, generated from the route schemas, at /openapi.json, and Swagger UI at /docs. */
export default fp<DocsPluginOptions>(async (fastify, opts) => {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Simple KV',
        version: VERSION,
        description: 'A small key-value store server. Projects are isolated namespaces, each with its own API key; the system key manages the server. Send a key as `Authorization: Bearer <key>`, `X-API-Key` or `Api-Key`.'
      },
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
        }
      }
    }
  })
  // Encapsulated, so @fastify/helmet's per-request hooks run on the pages of Swagger UI only.
  await fastify.register(async (pages) => {
    await pages.register(browserSecurity)
    await pages.register(swaggerUi, {
      routePrefix: '/docs',
      indexPrefix: opts.prefix ?? '',
      uiConfig: { docExpansion: 'list', deepLinking: false }
    })
  })
  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())
}, { name: 'kv-docs', fastify: '5.x' })
