import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import t from 'tap'
import app, { serverOptions } from '../app.js'
import { defaultConfig } from '../lib/config.js'
import { headOperationId } from '../plugins/docs.js'
import { openApiDocument } from '../scripts/openapi-document.js'
import { tempDir } from './support/temp.js'

const KEY_SCHEMES = [{ bearerAuth: [] }, { apiKeyHeader: [] }, { apiKeyLegacyHeader: [] }]

t.test('openapi/openapi.json is the document of the running app (run npm run gen:openapi)', async t => {
  const committed = JSON.parse(readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8'))
  t.same(committed, await openApiDocument())
})

t.test('every API operation is documented with an operationId, tags, summary, security and responses', async t => {
  const doc = await openApiDocument() as any
  t.equal(doc.openapi, '3.1.0')
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  t.equal(doc.info.license.identifier, pkg.license, 'the license of package.json')
  t.ok(doc.info.contact.url)
  t.same(doc.servers.map((s: { url: string }) => s.url), ['/'], 'a relative server: wherever the document is served')
  const operations: string[] = []
  const ids = new Set<string>()
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      const name = `${method.toUpperCase()} ${path}`
      operations.push(name)
      t.match(op.operationId, /^[a-z][A-Za-z]+$/, `${name} has a camelCase operationId`)
      t.notOk(ids.has(op.operationId), `${name}: ${op.operationId} is unique`)
      ids.add(op.operationId)
      t.ok(op.tags?.length > 0, `${name} has tags`)
      t.ok(op.summary, `${name} has a summary`)
      t.ok(op.responses?.['200'] ?? op.responses?.['201'], `${name} documents success`)
      t.ok(op.responses['400'] && op.responses['500'], `${name} documents 400 (a malformed URL) and 500`)
      if (method !== 'get' && method !== 'head') t.ok(op.responses['413'], `${name} documents 413`)
      if (path === '/health') {
        t.same(op.security, [], `${name} needs no key`)
        continue
      }
      const project = path.startsWith('/api/v1/projects/{id}') && !path.includes('regenerate') && !(path === '/api/v1/projects/{id}' && method === 'delete')
      t.same(op.security, project ? [{}, ...KEY_SCHEMES] : KEY_SCHEMES, `${name} security`)
      for (const code of ['401', '429', '503']) t.ok(op.responses[code], `${name} documents ${code}`)
      for (const code of ['429', '503']) t.ok(op.responses[code].headers['Retry-After'], `${name}: ${code} has Retry-After`)
      if (method === 'head') {
        t.equal(op.operationId, headOperationId(item.get.operationId), `${name} is named after its GET`)
        for (const [code, r] of Object.entries<any>(op.responses)) t.notOk(r.content, `${name} ${code} has no body`)
      }
    }
  }
  const gets = operations.filter(o => o.startsWith('GET ')).length
  t.equal(operations.length, 17 + gets, 'R1-R13, /health, the TTL route, listing and transactions, and HEAD for every GET')
  t.same(Object.keys(doc.components.securitySchemes).sort(), ['apiKeyHeader', 'apiKeyLegacyHeader', 'bearerAuth'])
  t.notOk(doc.paths['/openapi.json'], 'the document route itself is hidden')
})

t.test('shapes are named components, each referenced, with nulls as JSON Schema 2020-12 has them', async t => {
  const doc = await openApiDocument() as any
  const text = JSON.stringify(doc)
  const schemas = Object.keys(doc.components.schemas)
  for (const name of ['Record', 'ProjectSettings', 'SystemInfo', 'ErrorEnvelope', 'SystemErrorEnvelope', 'RecordEnvelope', 'ListingPage', 'ListingItem', 'TxnRequest', 'TxnResult', 'PreconditionFailed', 'PreconditionFailedEnvelope']) {
    t.ok(schemas.includes(name), `${name} is a named component`)
  }
  t.notOk(schemas.some(name => name.startsWith('def-')), 'no anonymous def-N component')
  for (const name of schemas) t.ok(text.includes(`"#/components/schemas/${name}"`), `${name} is referenced`)
  t.notOk(text.includes('"nullable"'), 'no OpenAPI 3.0 nullable')
  t.notOk(/"enum":\[null\]/.test(text), 'no enum: [null]')
  t.same(doc.components.schemas.Record.properties.expires_at.anyOf.map((s: { type: string }) => s.type), ['number', 'null'])
  const raw = doc.paths['/api/v1/projects/{id}/store/{key}/value'].get.responses
  t.same(Object.keys(raw['200'].content).sort(), ['application/json', 'text/plain'], 'the raw value: text for strings, JSON otherwise')
  t.equal(raw['200'].content['text/plain'].schema.type, 'string')
  for (const code of ['400', '401', '404', '500']) t.same(Object.keys(raw[code].content), ['application/json'], `the raw value's ${code} is a JSON envelope`)
  const put = doc.paths['/api/v1/projects/{id}/store/{key}'].put.requestBody.content
  t.same(Object.keys(put), ['application/json', 'text/plain', '*/*'], 'a value of any content type')
})

t.test('an embedded app\'s document has the host\'s prefix as its server', async t => {
  const host = Fastify({ ...serverOptions() })
  t.teardown(async () => { await host.close() })
  const config = defaultConfig()
  config.system = { ...config.system, authentication: { enabled: false } }
  await host.register(app, { prefix: '/kv', config, baseDir: tempDir(t) })
  const doc = (await host.inject({ method: 'GET', url: '/kv/openapi.json' })).json()
  t.same(doc.servers.map((s: { url: string }) => s.url), ['/kv'])
  t.ok(doc.paths['/api/v1/projects/{id}/store/{key}'], 'paths are relative to the server')
})
