import { Type, type TSchema } from '@sinclair/typebox'
import { SystemInfoSchema } from '../lib/sysinfo.js'

const SystemOrNull = Type.Union([SystemInfoSchema, Type.Null()], { description: 'Server information on system-key routes once the key check passed; null otherwise.' })

/** The four-member envelope every JSON response has. */
export function EnvelopeSchema<D extends TSchema> (data: D, opts: { system: boolean, description: string }) {
  return Type.Object({
    status_code: Type.Integer({ description: 'Equals the HTTP status.' }),
    message: Type.String({ description: 'What happened, for a person.' }),
    System: opts.system ? SystemOrNull : Type.Null({ description: 'Always null on project routes.' }),
    data
  }, { description: opts.description })
}

export const RecordSchema = Type.Object({
  value: Type.Unknown({ description: 'The stored JSON value: string, number, boolean, null, object or array.' }),
  created_at: Type.Integer({ description: 'When the key was first set, epoch seconds.' }),
  updated_at: Type.Integer({ description: 'When the key was last set, epoch seconds.' }),
  size_bytes: Type.Integer({ description: 'UTF-8 bytes of the string, or of the compact JSON of any other value.' }),
  type: Type.Union(['string', 'number', 'boolean', 'null', 'object', 'array'].map(t => Type.Literal(t)), { description: 'JSON type of the value.' })
}, { description: 'A stored value with its metadata.' })

export const ProjectSettingsSchema = Type.Object({
  id: Type.Optional(Type.String()),
  storage: Type.Object({
    on_disk: Type.Boolean(),
    cache_in_memory: Type.Optional(Type.Boolean())
  }),
  authentication: Type.Object({
    enabled: Type.Boolean(),
    save_api_key_to_config: Type.Boolean()
  }),
  security: Type.Object({
    keys_and_values_discoverable: Type.Boolean()
  })
}, { description: 'A project\'s settings, without secrets.' })

export const NewKeySchema = Type.Object({
  new_api_key: Type.String({ description: 'The new key: 43 characters of base64url. Shown only here.' })
})

export const ProjectIdParams = Type.Object({
  id: Type.String({ description: 'Project id.' })
})

export const KeyParams = Type.Object({
  id: Type.String({ description: 'Project id.' }),
  key: Type.String({ description: 'Store key, percent-encoded in the path (a%2Fb is the key a/b).' })
})

const errorText: Record<number, string> = {
  400: 'Bad request: the message names the problem.',
  401: 'Invalid or missing API key.',
  403: 'Forbidden by the project\'s or server\'s settings.',
  404: 'Not found.',
  409: 'Conflict with the current settings.',
  413: 'Request body or value too large.',
  415: 'Unsupported content type.',
  500: 'Internal server error.',
  507: 'The change could not be written to disk; nothing was changed.'
}

/** Error envelopes for the given statuses (data is always null). */
export function errorResponses (codes: number[], system = false): Record<number, TSchema> {
  const out: Record<number, TSchema> = {}
  for (const code of codes) out[code] = EnvelopeSchema(Type.Null(), { system, description: errorText[code] ?? 'Error.' })
  return out
}

/** Security requirement: any one of the three key headers. */
export const keySecurity: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { apiKeyHeader: [] }, { apiKeyLegacyHeader: [] }]
