import type { IncomingMessage, ServerResponse } from 'node:http'
import cors from '@fastify/cors'
import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

/** One set of Helmet options for the API's precomputed headers and for @fastify/helmet on the docs pages. */
export const helmetOptions: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      baseUri: ["'self'"],
      scriptSrc: ["'self'"],
      // Swagger UI sets inline styles on its elements.
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", 'data:'],
      fontSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      objectSrc: ["'none'"],
      frameAncestors: ["'none'"],
      formAction: ["'self'"]
      // No upgrade-insecure-requests: a plain-HTTP deployment on a LAN would break Swagger UI's requests.
    }
  },
  crossOriginResourcePolicy: { policy: 'same-origin' },
  hsts: false
}

/**
 * The headers Helmet sets for these options. They depend on nothing in the
 * request, so they are computed once: @fastify/helmet rebuilds the Helmet
 * middleware on every request, which showed up in the profile of GET.
 */
export function helmetHeaders (options: HelmetOptions = helmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader (name: string, value: string | number) { headers[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { Reflect.deleteProperty(headers, name.toLowerCase()) }
  }
  helmet(options)({} as unknown as IncomingMessage, response as unknown as ServerResponse, () => {})
  return headers
}

/**
 * @fastify/helmet for the context it is registered in (the HTML pages and
 * assets of Swagger UI): the browser header set built per request, with
 * `reply.helmet()` at hand, for the same options as the API.
 */
export const browserSecurity = fp(async (fastify) => {
  const precomputed = Object.keys(helmetHeaders())
  // The app-wide hook has already put the precomputed set on the reply, and a
  // reply's headers win over those Helmet sets on the raw response: take them off.
  fastify.addHook('onRequest', function dropPrecomputedHeaders (_request, reply, done) {
    for (const name of precomputed) reply.removeHeader(name)
    done()
  })
  // The same helmet package, typed once through its CommonJS declarations (for @fastify/helmet) and once through its ES ones.
  await fastify.register(fastifyHelmet, helmetOptions as FastifyHelmetOptions)
}, { name: 'kv-browser-security', fastify: '5.x' })

/**
 * Helmet's security headers on every response of the app, with a content
 * security policy Swagger UI works under, and CORS only for the origins the
 * config names.
 */
export default fp(async (fastify) => {
  const headers = helmetHeaders()
  fastify.addHook('onRequest', function securityHeaders (_request, reply, done) {
    reply.headers(headers)
    done()
  })

  const origins = fastify.kvConfig.settings.corsOrigins
  if (origins.length > 0) {
    await fastify.register(cors, {
      origin: origins.includes('*') ? '*' : origins,
      methods: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'x-api-key', 'api-key', 'content-type', 'if-match', 'if-none-match', 'last-event-id'],
      // A browser client reads these from a cross-origin answer only when they are exposed.
      exposedHeaders: ['etag', 'link', 'retry-after'],
      maxAge: 600
    })
  }
}, { name: 'kv-security', fastify: '5.x', dependencies: ['kv-config'] })
