import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import fp from 'fastify-plugin'

/**
 * Security headers on every response of the app, with a content security
 * policy Swagger UI works under, and CORS only for the origins the config names.
 */
export default fp(async (fastify) => {
  await fastify.register(helmet, {
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
    // Swagger UI's assets are same-origin; the API itself is meant to be called cross-origin only when CORS allows it.
    crossOriginResourcePolicy: { policy: 'same-origin' },
    hsts: false
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
