// Ceiling server for the benchmark: bare Fastify 5, one route serving a 100-byte
// value from a Map. Every ratio the harness prints is relative to this route.
//   node dist/bench/bare-fastify.js <port> [keys]

import Fastify from 'fastify'
import { HOST } from '../test/support/net.js'
import { bareStore, portFromArgv } from './common.js'

const port = portFromArgv()
const store = bareStore()

const app = Fastify({ logger: false })

app.get<{ Params: { key: string } }>('/k/:key', (request, reply) => {
  const value = store.get(request.params.key)
  if (value === undefined) {
    reply.code(404).type('text/plain; charset=utf-8').send('not found')
    return
  }
  reply.type('text/plain; charset=utf-8').send(value)
})

app.get('/health', (_request, reply) => {
  reply.type('text/plain; charset=utf-8').send('OK')
})

await app.listen({ port, host: HOST })

process.stdin.on('end', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
process.stdin.resume()
process.on('SIGTERM', () => process.exit(0))
