import { readFileSync } from 'node:fs'
import t from 'tap'
import { openApiDocument } from '../scripts/openapi-document.js'

t.test('openapi/openapi.json is the document of the running app (run npm run gen:openapi)', async t => {
  const committed = JSON.parse(readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8'))
  t.same(committed, await openApiDocument())
})

t.test('every API operation is documented with tags, summary, security and responses', async t => {
  const doc = await openApiDocument() as any
  const operations: string[] = []
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      operations.push(`${method.toUpperCase()} ${path}`)
      t.ok(op.tags?.length > 0, `${method} ${path} has tags`)
      t.ok(op.summary, `${method} ${path} has a summary`)
      t.ok(op.responses?.['200'] ?? op.responses?.['201'], `${method} ${path} documents success`)
      if (path !== '/health') {
        t.same(op.security, [{ bearerAuth: [] }, { apiKeyHeader: [] }, { apiKeyLegacyHeader: [] }], `${method} ${path} security`)
        t.ok(op.responses['401'], `${method} ${path} documents 401`)
      }
    }
  }
  t.equal(operations.length, 17, 'R1-R13, /health, and 1.1: the TTL route, listing, transactions')
  t.same(Object.keys(doc.components.securitySchemes).sort(), ['apiKeyHeader', 'apiKeyLegacyHeader', 'bearerAuth'])
  t.notOk(doc.paths['/openapi.json'], 'the document route itself is hidden')
})
