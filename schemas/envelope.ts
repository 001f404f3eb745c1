import { Type, type SchemaOptions, type Static, type TSchema, type TUnknown } from '@sinclair/typebox'
import { SystemInfoSchema, type SystemInfo } from './system.js'

/**
 * A `$ref` to a schema registered under its `$id`, typed as that schema, so a
 * route's reply keeps its inferred type while OpenAPI generators see one named
 * component instead of a copy per route.
 */
export function ref<T extends TSchema> (schema: T, options?: SchemaOptions) {
  if (schema.$id === undefined) throw new Error('ref() needs a schema with an $id')
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id, options))
}

const SystemOrNull = Type.Union([ref(SystemInfoSchema), Type.Null()], { description: 'Server information on system-key routes once the key check passed; null otherwise.' })

/** The four-member envelope every JSON response has, around `data`. */
export function EnvelopeSchema<D extends TSchema> (data: D, opts: { system: boolean, description: string, $id?: string, error?: boolean }) {
  return Type.Object({
    status_code: opts.error === true
      ? Type.Integer({ minimum: 400, maximum: 599, description: 'Equals the HTTP status.' })
      : Type.Integer({ minimum: 200, maximum: 299, description: 'Equals the HTTP status.' }),
    message: Type.String({ description: 'What happened, for a person.' }),
    System: opts.system ? SystemOrNull : Type.Null({ description: 'Always null on project routes.' }),
    data
  }, { additionalProperties: false, description: opts.description, ...(opts.$id === undefined ? {} : { $id: opts.$id }) })
}

/** An envelope as code builds it; `data` is typed by the route. */
export type Envelope<T = null> = Omit<Static<ReturnType<typeof EnvelopeSchema<TUnknown>>>, 'data' | 'System'> & { System: SystemInfo | null, data: T }

/** Success without data, on a project route or /health. */
export const OkEnvelopeSchema = EnvelopeSchema(Type.Null(), { system: false, $id: 'OkEnvelope', description: 'Success; data is null.' })

/** Success without data on a system-key route: System holds the server information. */
export const SystemOkEnvelopeSchema = EnvelopeSchema(Type.Null(), { system: true, $id: 'SystemOkEnvelope', description: 'Success on a system-key route; data is null.' })

/** Any error on a project route or /health: data is null. */
export const ErrorEnvelopeSchema = EnvelopeSchema(Type.Null(), { system: false, error: true, $id: 'ErrorEnvelope', description: 'An error; the message names the problem and data is null.' })

/** Any error on a system-key route: System is set once the key check passed. */
export const SystemErrorEnvelopeSchema = EnvelopeSchema(Type.Null(), { system: true, error: true, $id: 'SystemErrorEnvelope', description: 'An error on a system-key route; data is null.' })
