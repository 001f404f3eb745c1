// Control server for the benchmark: plain node:http, one route serving a
// 100-byte value from a Map. If this is not clearly faster than bare Fastify,
// the load generator is the bottleneck.
//   node dist/bench/bare-http.js <port> [keys]

import { createServer } from 'node:http'
import { HOST } from '../test/support/net.js'
import { bareStore, portFromArgv } from './common.js'

const port = portFromArgv()
const store = bareStore()

const server = createServer((req, res) => {
  const url = req.url ?? '/'
  if (req.method === 'GET' && url.startsWith('/k/')) {
    const value = store.get(decodeURIComponent(url.slice(3)))
    if (value !== undefined) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(value) })
      res.end(value)
      return
    }
  } else if (req.method === 'GET' && url === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
    res.end('OK')
    return
  }
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
  res.end('not found')
})
server.keepAliveTimeout = 72_000

server.listen(port, HOST)

// The harness keeps our stdin open; when it goes away (even if it was killed), exit.
process.stdin.on('end', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
process.stdin.resume()
process.on('SIGTERM', () => process.exit(0))
