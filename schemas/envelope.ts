import { Type, type Static, type TSchema, type TUnknown } from '@sinclair/typebox'
import { SystemInfoSchema, type SystemInfo } from './system.js'

const SystemOrNull = Type.Union([SystemInfoSchema, Type.Null()], { description: 'Server information on system-key routes once the key check passed; null otherwise.' })

/** The four-member envelope every JSON response has, around `data`. */
export function EnvelopeSchema<D extends TSchema> (data: D, opts: { system: boolean, description: string }) {
  return Type.Object({
    status_code: Type.Integer({ description: 'Equals the HTTP status.' }),
    message: Type.String({ description: 'What happened, for a person.' }),
    System: opts.system ? SystemOrNull : Type.Null({ description: 'Always null on project routes.' }),
    data
  }, { description: opts.description })
}

/** An envelope as code builds it; `data` is typed by the route. */
export type Envelope<T = null> = Omit<Static<ReturnType<typeof EnvelopeSchema<TUnknown>>>, 'data' | 'System'> & { System: SystemInfo | null, data: T }
