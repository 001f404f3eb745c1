import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { ValueErrorType } from '@sinclair/typebox/errors'

const cache = new WeakMap<TSchema, TypeCheck<TSchema>>()

export function compile<T extends TSchema> (schema: T): TypeCheck<T> {
  let check = cache.get(schema)
  if (check === undefined) {
    check = TypeCompiler.Compile(schema)
    cache.set(schema, check)
  }
  return check as TypeCheck<T>
}

/** `/projects/0/storage` → `projects[0].storage`, the way a person names a field. */
export function fieldName (path: string, root = ''): string {
  const parts = path.split('/').slice(1).map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  let out = root
  for (const part of parts) {
    out += /^\d+$/.test(part) ? `[${part}]` : (out === '' ? part : `.${part}`)
  }
  return out === '' ? (root === '' ? 'value' : root) : out
}

/**
 * The first reason `value` does not satisfy `schema`, as one sentence naming the
 * field, or null when it does.
 */
export function firstError<T extends TSchema> (schema: T, value: unknown, root = ''): string | null {
  const check = compile(schema)
  if (check.Check(value)) return null
  const error = check.Errors(value).First()
  if (error === undefined) return `Invalid ${root === '' ? 'value' : root}`
  const field = fieldName(error.path, root)
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    return `Unknown field '${field}'`
  }
  if (error.type === ValueErrorType.ObjectRequiredProperty) {
    return `Missing required field '${field}'`
  }
  return `Invalid field '${field}': ${error.message}`
}
