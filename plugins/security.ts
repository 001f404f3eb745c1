import type { IncomingMessage, ServerResponse } from 'node:http'
import cors from '@fastify/cors'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

const helmetOptions: HelmetOptions = {
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
 * Helmet's security headers on every response of the app, with a content
 * security policy Swagger UI works under, and CORS only for the origins the
 * config names.
 */
export default fp(async (fastify) => {
  const headers = helmetHeaders()
  fastify.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers)
    done()
  })

  const origins = fastify.kvConfig.settings.corsOrigins
  if (origins.length > 0) {
    await fastify.register(cors, {
      origin: origins.includes('*') ? '*' : origins,
      methods: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'],
      allowedHeaders: ['authorization', 'x-api-key', 'api-key', 'content-type'],
      maxAge: 600
    })
  }
}, { name: 'kv-security', fastify: '5.x', dependencies: ['kv-config'] })
