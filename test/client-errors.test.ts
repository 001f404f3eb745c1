import { connect, type Socket } from 'node:net'
import Fastify, { type ConnectionError, type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import app, { clientErrorHandler, serverOptions } from '../app.js'
import { ConfigStore } from '../lib/config.js'
import { SYSTEM_KEY, build, proj, sys, testConfig } from './support/app.js'
import { tempDir } from './support/temp.js'

/*
 * Requests Node's HTTP parser rejects, sent byte for byte over a raw socket to
 * a listening app: each gets the envelope with Connection: close and the
 * connection closed (or, where HTTP allows no answer, only the close), never
 * Fastify's default {"error","message","statusCode"} body, never a 500.
 */

interface RawReply {
  /** Everything the server sent before it closed the connection. */
  raw: Buffer
  /** The connection ended (closed by the server) before the test's bound. */
  closed: boolean
}

/** Write `chunks` (with `gapMs` between them) and read until the server closes the connection, at most `boundMs`. */
async function exchange (port: number, chunks: Array<string | Buffer>, opts: { gapMs?: number, boundMs?: number } = {}): Promise<RawReply> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    const received: Buffer[] = []
    let closed = false
    const finish = (): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ raw: Buffer.concat(received), closed })
    }
    socket.on('data', (chunk: Buffer) => { received.push(chunk) })
    // A reset after the answer is a close too; what matters is what arrived before it.
    socket.on('error', () => { closed = true; finish() })
    socket.on('close', () => { closed = true; finish() })
    const timer = setTimeout(finish, opts.boundMs ?? 10_000)
    socket.on('connect', () => {
      const send = (i: number): void => {
        if (i >= chunks.length || socket.destroyed) return
        socket.write(chunks[i], () => { setTimeout(() => { send(i + 1) }, opts.gapMs ?? 0) })
      }
      send(0)
    })
  })
}

interface Parsed {
  status: number
  headers: Record<string, string>
  body: string
}

/** The first response in `raw`; null when nothing (or no complete head) arrived. */
function parseResponse (raw: Buffer): Parsed | null {
  const text = raw.toString('latin1')
  const end = text.indexOf('\r\n\r\n')
  if (end < 0) return null
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine)
  if (match === null) return null
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const length = Number(headers['content-length'] ?? 0)
  const body = Buffer.from(text.slice(end + 4), 'latin1').subarray(0, length).toString('utf8')
  return { status: Number(match[1]), headers, body }
}

/** The reply is the envelope (or nothing at all) and the connection is closed. */
function checkEnvelopeOrClose (t: Test, reply: RawReply, expected: number | number[], what: string): void {
  t.ok(reply.closed, `${what}: the server closes the connection`)
  const parsed = parseResponse(reply.raw)
  if (parsed === null) {
    t.equal(reply.raw.length, 0, `${what}: no answer at all, or a whole HTTP/1.1 response`)
    return
  }
  const statuses = Array.isArray(expected) ? expected : [expected]
  t.ok(statuses.includes(parsed.status), `${what}: status ${parsed.status} is one of ${statuses.join(', ')}`)
  t.not(parsed.status, 500, `${what}: never a 500`)
  t.match(parsed.headers['content-type'], /^application\/json/, `${what}: a JSON answer`)
  const body = JSON.parse(parsed.body) as Record<string, unknown>
  t.same(Object.keys(body).sort(), ['System', 'data', 'message', 'status_code'], `${what}: the envelope, not Fastify's default body`)
  t.equal(body.status_code, parsed.status, `${what}: status_code is the HTTP status`)
  t.type(body.message, 'string')
  t.equal(body.System, null)
  t.equal(body.data, null)
}

async function listening (t: Test, fastify: FastifyInstance): Promise<number> {
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  const address = fastify.server.address()
  t.ok(typeof address === 'object' && address !== null)
  return typeof address === 'object' && address !== null ? address.port : 0
}

const HEAD = 'Host: 127.0.0.1\r\n'

t.test('every request the HTTP parser rejects gets the envelope, then the connection closes', async t => {
  const { app: fastify } = await build(t)
  const port = await listening(t, fastify)
  const body = '{"id":"x"}'
  const projects = `POST /api/v1/projects HTTP/1.1\r\n${HEAD}Authorization: Bearer ${SYSTEM_KEY}\r\nContent-Type: application/json\r\n`
  const cases: Array<[string, Array<string | Buffer>, number]> = [
    ['a 100 KB header', [`GET /health HTTP/1.1\r\n${HEAD}X-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`], 431],
    ['a 100 KB URL', [`GET /health?${'a'.repeat(100 * 1024)} HTTP/1.1\r\n${HEAD}\r\n`], 431],
    ['100 KB of chunk extensions', [`${projects}Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)};x=${'a'.repeat(100 * 1024)}\r\n${body}\r\n0\r\n\r\n`], 413],
    ['a raw space in the path', ['GET /he alth HTTP/1.1\r\n' + HEAD + '\r\n'], 400],
    ['a raw tab in the path', ['GET /he\talth HTTP/1.1\r\n' + HEAD + '\r\n'], 400],
    ['a NUL in the path', ['GET /he\0alth HTTP/1.1\r\n' + HEAD + '\r\n'], 400],
    ['a DEL in the path', ['GET /he\x7Falth HTTP/1.1\r\n' + HEAD + '\r\n'], 400],
    ['a 0xFF byte in the path', [Buffer.concat([Buffer.from('GET /he'), Buffer.from([0xff]), Buffer.from('alth HTTP/1.1\r\n' + HEAD + '\r\n')])], 400],
    ['a raw UTF-8 byte in the path', [Buffer.from('GET /héalth HTTP/1.1\r\n' + HEAD + '\r\n', 'utf8')], 400],
    ['an invalid header name', [`GET /health HTTP/1.1\r\n${HEAD}Bad(Name: 1\r\n\r\n`], 400],
    ['a header name with a space', [`GET /health HTTP/1.1\r\n${HEAD}Bad Name: 1\r\n\r\n`], 400],
    ['a NUL in a header value', [`GET /health HTTP/1.1\r\n${HEAD}X-A: a\0b\r\n\r\n`], 400],
    ['a CR in a header value', [`GET /health HTTP/1.1\r\n${HEAD}X-A: a\rb\r\n\r\n`], 400],
    ['an obs-fold header line', [`GET /health HTTP/1.1\r\n${HEAD}X-A: a\r\n b\r\n\r\n`], 400],
    ['Content-Length with Transfer-Encoding', [`${projects}Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`], 400],
    ['two different Content-Lengths', [`${projects}Content-Length: ${body.length}\r\nContent-Length: 3\r\n\r\n${body}`], 400],
    ['a negative Content-Length', [`${projects}Content-Length: -1\r\n\r\n${body}`], 400],
    ['a bad chunk size', [`${projects}Transfer-Encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n`], 400],
    ['an unknown method', [`FOO /health HTTP/1.1\r\n${HEAD}\r\n`], 400],
    ['a lower-case method', [`get /health HTTP/1.1\r\n${HEAD}\r\n`], 400]
  ]
  for (const [what, chunks, status] of cases) {
    checkEnvelopeOrClose(t, await exchange(port, chunks), status, what)
  }
  // Each case got an answer, so the handler answers rather than only closing.
  const answered = await exchange(port, [`FOO /health HTTP/1.1\r\n${HEAD}\r\n`])
  t.match(parseResponse(answered.raw), { status: 400, headers: { connection: 'close' } }, 'Connection: close on the raw answer')
  t.match(JSON.parse(parseResponse(answered.raw)?.body ?? '{}'), { message: /^Malformed HTTP request: / }, 'the message names the problem')
  // The server is still fine after all of it.
  const health = parseResponse((await exchange(port, [`GET /health HTTP/1.1\r\n${HEAD}Connection: close\r\n\r\n`])).raw)
  t.equal(health?.status, 200, 'the server still answers')
})

t.test('a connection that cannot take an answer, or is in the middle of one, is only closed', async t => {
  const fake = (over: Record<string, unknown>): { socket: Socket, calls: string[] } => {
    const calls: string[] = []
    const socket = { destroyed: false, writable: true, destroy: () => { calls.push('destroy') }, end: () => { calls.push('end') }, once: () => {}, ...over }
    return { socket: socket as unknown as Socket, calls }
  }
  const error = (code: string): ConnectionError => Object.assign(new Error(code), { code }) as ConnectionError
  const inFlight = fake({ _httpMessage: { headersSent: true } })
  clientErrorHandler(error('HPE_INVALID_CHUNK_SIZE'), inFlight.socket)
  t.same(inFlight.calls, ['destroy'], 'a response already started: nothing written after it')
  const closed = fake({ writable: false })
  clientErrorHandler(error('HPE_INVALID_METHOD'), closed.socket)
  t.same(closed.calls, ['destroy'], 'not writable: destroyed')
  const reset = fake({})
  clientErrorHandler(error('ECONNRESET'), reset.socket)
  t.same(reset.calls, ['destroy'], 'a reset: destroyed')
  const gone = fake({ destroyed: true })
  clientErrorHandler(error('HPE_INVALID_METHOD'), gone.socket)
  t.same(gone.calls, [], 'already destroyed: nothing to do')
  const fresh = fake({ _httpMessage: { headersSent: false } })
  clientErrorHandler(error('HPE_INVALID_METHOD'), fresh.socket)
  t.same(fresh.calls, ['end'], 'a response not started yet: answered')
  clientErrorHandler(error('HPE_INVALID_METHOD'), fresh.socket)
  t.same(fresh.calls, ['end'], 'answered once only')
})

t.test('a bad request after a good one on a keep-alive connection: the good answer is whole, then the error', async t => {
  const { app: fastify } = await build(t)
  const port = await listening(t, fastify)
  const reply = await exchange(port, [`GET /health HTTP/1.1\r\n${HEAD}\r\n`, `FOO /health HTTP/1.1\r\n${HEAD}\r\n`], { gapMs: 100 })
  const text = reply.raw.toString('latin1')
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/, 'the first request is answered')
  const second = text.indexOf('HTTP/1.1 400 ')
  t.ok(second > 0, 'the bad one gets its own 400 after it')
  const parsed = parseResponse(Buffer.from(text.slice(second), 'latin1'))
  t.match(JSON.parse(parsed?.body ?? '{}'), { status_code: 400, System: null, data: null })
  t.ok(reply.closed)
})

/** `depth` nested arrays or objects around a number. */
function nested (depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + '1' + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
}

t.test('10,000-deep JSON is a 400 in the envelope, as a value and as a project, and nothing is stored', async t => {
  const { app: fastify } = await build(t)
  for (const kind of ['array', 'object'] as const) {
    const put = await fastify.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/deep', headers: { ...proj, 'content-type': 'application/json' }, payload: nested(10_000, kind) })
    t.equal(put.statusCode, 400, `a deep ${kind} value`)
    t.same(put.json(), { status_code: 400, message: 'Request body nests arrays and objects more than 64 levels deep (limit: system.limits.max_json_depth)', System: null, data: null })
    const post = await fastify.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, 'content-type': 'application/json' }, payload: kind === 'object' ? `{"id":"deep","storage":${nested(10_000, kind)}}` : nested(10_000, kind) })
    t.equal(post.statusCode, 400, `a deep ${kind} project`)
    t.match(post.json(), { status_code: 400, message: /more than 64 levels deep/, data: null })
  }
  const get = await fastify.inject({ method: 'GET', url: '/api/v1/projects/p1/store/deep', headers: proj })
  t.equal(get.statusCode, 404, 'no value was stored')
  const list = await fastify.inject({ method: 'GET', url: '/api/v1/projects', headers: sys })
  t.same(Object.keys(list.json().data), ['p1'], 'no project was created')

  const atLimit = await fastify.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/ok', headers: { ...proj, 'content-type': 'application/json' }, payload: nested(64, 'array') })
  t.equal(atLimit.statusCode, 200, '64 levels are accepted')
  const text = await fastify.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/text', headers: { ...proj, 'content-type': 'text/plain' }, payload: nested(10_000, 'array') })
  t.equal(text.statusCode, 200, 'deep brackets in a text value are just text')
})

t.test('max_json_depth is configurable', async t => {
  const { app: fastify } = await build(t, { config: testConfig(c => { c.system!.limits = { max_json_depth: 3 } }) })
  const ok = await fastify.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/k', headers: { ...proj, 'content-type': 'application/json' }, payload: '[[["x"]]]' })
  t.equal(ok.statusCode, 200)
  const deep = await fastify.inject({ method: 'PUT', url: '/api/v1/projects/p1/store/k', headers: { ...proj, 'content-type': 'application/json' }, payload: '[[[["x"]]]]' })
  t.equal(deep.statusCode, 400)
  t.match(deep.json(), { message: /more than 3 levels deep/ })
  const post = await fastify.inject({ method: 'POST', url: '/api/v1/projects', headers: { ...sys, 'content-type': 'application/json' }, payload: '{"id":"x","storage":{"on_disk":[[[1]]]}}' })
  t.equal(post.statusCode, 400)
  t.match(post.json(), { message: /more than 3 levels deep/ })
})

t.test('a path with an empty id or key segment is an unknown route', async t => {
  const { app: fastify } = await build(t)
  const cases: Array<[string, string, Record<string, string>]> = [
    ['GET', '/api/v1/projects/', sys],
    ['DELETE', '/api/v1/projects/', sys],
    ['PUT', '/api/v1/projects/', proj],
    ['GET', '/api/v1/projects//store', proj],
    ['DELETE', '/api/v1/projects//store', proj],
    ['GET', '/api/v1/projects/p1/store/', proj],
    ['DELETE', '/api/v1/projects/p1/store/', proj],
    ['GET', '/api/v1/projects//store/k', proj],
    ['GET', '/api/v1/projects/p1/store//value', proj],
    ['POST', '/api/v1/projects//config/regenerate-api-key', sys]
  ]
  for (const [method, url, headers] of cases) {
    const res = await fastify.inject({ method: method as 'GET', url, headers })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.same(res.json(), { status_code: 404, message: `Route ${method}:${url} not found`, System: null, data: null }, `${method} ${url}: route not found`)
  }
  const unknown = await fastify.inject({ method: 'GET', url: '/nowhere' })
  t.same(Object.keys(unknown.json()), ['status_code', 'message', 'System', 'data'], 'the same shape as any unknown route')
  const real = await fastify.inject({ method: 'GET', url: '/api/v1/projects/p1', headers: proj })
  t.equal(real.statusCode, 200, 'a real id still works')
  const unauthenticated = await fastify.inject({ method: 'GET', url: '/api/v1/projects/' })
  t.equal(unauthenticated.statusCode, 404, 'without a key too: no route, no key check')
})

t.test('a client sending one header byte a second is cut off by the headers timeout', async t => {
  const dir = tempDir(t)
  const store = ConfigStore.fromObject(testConfig(c => {
    c.system!.timeouts = { request_timeout_ms: 3000, headers_timeout_ms: 1500, keep_alive_timeout_ms: 1000, connections_check_interval_ms: 250 }
  }), dir)
  t.equal(store.settings.headersTimeoutMs, 1500)
  const fastify = Fastify({ ...serverOptions(store.settings) })
  t.teardown(async () => { await fastify.close() })
  await fastify.register(app, { configStore: store })
  t.equal(fastify.server.headersTimeout, 1500, 'the config reaches the server')
  t.equal(fastify.server.requestTimeout, 3000)
  t.equal(fastify.server.keepAliveTimeout, 1000)
  const port = await listening(t, fastify)
  const request = `GET /health HTTP/1.1\r\n${HEAD}X-Slow: ${'a'.repeat(60)}\r\n\r\n`
  const started = Date.now()
  // 80+ bytes at one a second would take over a minute; the bound is well below that.
  const reply = await exchange(port, request.split(''), { gapMs: 1000, boundMs: 30_000 })
  const elapsed = Date.now() - started
  t.ok(reply.closed, 'the server closed the connection')
  t.ok(elapsed < 30_000, `closed after ${elapsed} ms, long before the request could finish`)
  const parsed = parseResponse(reply.raw)
  t.equal(parsed?.status, 408, 'with a 408')
  t.match(JSON.parse(parsed?.body ?? '{}'), { status_code: 408, message: /timed out/, System: null, data: null })
})

t.test('an idle keep-alive connection is closed after keep_alive_timeout_ms', async t => {
  const store = ConfigStore.fromObject(testConfig(c => {
    c.system!.timeouts = { keep_alive_timeout_ms: 300 }
  }), tempDir(t))
  const fastify = Fastify({ ...serverOptions(store.settings) })
  t.teardown(async () => { await fastify.close() })
  await fastify.register(app, { configStore: store })
  const port = await listening(t, fastify)
  const reply = await exchange(port, [`GET /health HTTP/1.1\r\n${HEAD}\r\n`], { boundMs: 20_000 })
  t.ok(reply.closed, 'closed by the server, not by the bound')
  t.equal(parseResponse(reply.raw)?.status, 200)
})
