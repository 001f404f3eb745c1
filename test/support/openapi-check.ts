import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import formats from 'ajv-formats'
import type { Test } from 'tap'

/** What a check needs of a request and its answer (inject()'s or fetch()'s). */
export interface Exchange {
  method: string
  /** Path and query, as sent. */
  url: string
  status: number
  headers: Record<string, string | string[] | number | undefined>
  body: string
}

interface Response {
  description: string
  headers?: Record<string, { schema: Record<string, unknown> }>
  content?: Record<string, { schema: unknown }>
}

type Doc = { paths: Record<string, Record<string, { operationId: string, responses: Record<string, Response> }>>, components: { responses: Record<string, Response> } }

function escape (part: string): string {
  return part.replace(/~/g, '~0').replace(/\//g, '~1')
}

/**
 * Validates answers against the response the document gives for their path,
 * method, status and content type, with Ajv's JSON Schema 2020-12 (OpenAPI
 * 3.1's schema dialect). A status, content type or header the document does
 * not describe is a failure. Records which operation answered which status.
 */
export function responseChecker (doc: unknown) {
  const spec = doc as Doc
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  formats.default(ajv)
  ajv.addSchema(spec as object, 'openapi.json')
  const compiled = new Map<string, ValidateFunction>()
  const paths = Object.keys(spec.paths).map(template => ({ template, pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`) }))
  /** operationId → statuses seen. */
  const seen = new Map<string, Set<string>>()

  function validate (t: Test, label: string, pointer: string[], value: unknown): void {
    const ref = `openapi.json#/${pointer.map(escape).join('/')}`
    let v = compiled.get(ref)
    if (v === undefined) {
      v = ajv.compile({ $ref: ref })
      compiled.set(ref, v)
    }
    t.ok(v(value), `${label} matches ${pointer.join(' ')}`, { errors: v.errors, value })
  }

  function check (t: Test, ex: Exchange): void {
    const path = ex.url.split('?')[0]
    const method = ex.method.toLowerCase()
    const label = `${ex.method} ${ex.url.length > 90 ? ex.url.slice(0, 90) + '…' : ex.url} → ${ex.status}`
    const found = paths.find(p => p.pattern.test(path))
    if (found === undefined) {
      t.fail(`${label}: no path of the document matches`)
      return
    }
    const operation = spec.paths[found.template][method]
    let base: string[]
    let response: Response | undefined
    if (operation === undefined) {
      t.equal(ex.status, 405, `${label}: a method the path does not have is 405`)
      base = ['components', 'responses', 'MethodNotAllowed']
      response = spec.components.responses.MethodNotAllowed
      t.ok(ex.headers.allow, `${label} has Allow`)
    } else {
      base = ['paths', found.template, method, 'responses', String(ex.status)]
      response = operation.responses[String(ex.status)]
      if (!seen.has(operation.operationId)) seen.set(operation.operationId, new Set())
      seen.get(operation.operationId)?.add(String(ex.status))
    }
    if (response === undefined) {
      t.fail(`${label}: the document does not list ${ex.status} for ${method} ${found.template}`)
      return
    }
    if (ex.status === 429 || ex.status === 503) t.ok(ex.headers['retry-after'], `${label} has Retry-After`)
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      const raw = ex.headers[name.toLowerCase()]
      if (raw === undefined) continue
      const value = header.schema.type === 'integer' ? Number(raw) : raw
      validate(t, `${label} header ${name}`, [...base, 'headers', name, 'schema'], value)
    }
    if (ex.body === '') {
      t.ok(ex.method === 'HEAD' || response.content === undefined, `${label}: no body, and the document promises none`)
      return
    }
    const type = String(ex.headers['content-type'] ?? '').split(';')[0].trim()
    const media = response.content?.[type] !== undefined ? type : undefined
    if (media === undefined) {
      t.fail(`${label}: the document gives no ${type} body for it`, { documented: Object.keys(response.content ?? {}) })
      return
    }
    let value: unknown = ex.body
    if (media === 'application/json') {
      try {
        value = JSON.parse(ex.body)
      } catch {
        t.fail(`${label}: the body is not JSON`)
        return
      }
    }
    validate(t, `${label} body`, [...base, 'content', media, 'schema'], value)
  }

  return { check, seen }
}
