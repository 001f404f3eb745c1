import { Type, type Static } from '@sinclair/typebox'

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

export const JSON_TYPES = ['string', 'number', 'boolean', 'null', 'object', 'array'] as const

export const JsonTypeSchema = Type.Union(JSON_TYPES.map(t => Type.Literal(t)), { description: 'JSON type of the value.' })
export type JsonType = Static<typeof JsonTypeSchema>

/**
 * A stored value with its metadata: the one definition of a record. Engines,
 * store files and responses all carry this shape; `version` and `expires_at`
 * are present once the engine tracks revisions and expiry.
 */
export const RecordSchema = Type.Object({
  value: Type.Unsafe<JsonValue>(Type.Unknown({ description: 'The stored JSON value: string, number, boolean, null, object or array.' })),
  created_at: Type.Integer({ description: 'When the key was first set, epoch seconds.' }),
  updated_at: Type.Integer({ description: 'When the key was last set, epoch seconds.' }),
  size_bytes: Type.Integer({ description: 'UTF-8 bytes of the string, or of the compact JSON of any other value.' }),
  type: JsonTypeSchema,
  version: Type.Optional(Type.Integer({ minimum: 0, description: 'The project revision of the write that last set this key (0: loaded from a store file that had no versions).' })),
  expires_at: Type.Optional(Type.Union([Type.Number(), Type.Null()], { description: 'When the key expires, epoch seconds (possibly fractional); null: never.' }))
}, { $id: 'Record', description: 'A stored value with its metadata.' })

/**
 * A record as engines and store files keep it: the record plus `tag`, the
 * opaque part of its ETag (which is the tag in double quotes). Responses use
 * RecordSchema, which leaves the tag out.
 */
export const StoredRecordSchema = Type.Composite([RecordSchema, Type.Object({
  tag: Type.Optional(Type.String({ description: 'The entity tag without its quotes.' }))
})])

export type KvRecord = Static<typeof StoredRecordSchema>

/** The record's fields in the order files and responses write them. */
export const RECORD_FIELDS = Object.keys(RecordSchema.properties) as Array<keyof KvRecord>

/** The body of PUT …/store/:key/ttl. */
export const TtlChangeSchema = Type.Object({
  ttl: Type.Optional(Type.Number({ description: 'Seconds from now, 0.001 to 315360000.' })),
  expires_at: Type.Optional(Type.Number({ description: 'Epoch seconds, in the future.' })),
  persist: Type.Optional(Type.Literal(true, { description: 'Remove the expiry.' }))
}, { $id: 'TtlChange', additionalProperties: false, description: 'Exactly one of ttl, expires_at and persist.' })
