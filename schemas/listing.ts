import { Type, type Static } from '@sinclair/typebox'
import { EnvelopeSchema, ref } from './envelope.js'
import { JsonTypeSchema } from './record.js'

/** One key of an ordered listing: its record's metadata, and its value on request. */
export const ListingItemSchema = Type.Object({
  key: Type.String({ description: 'The store key.' }),
  etag: Type.String({ description: 'The key\'s ETag, quotes included.' }),
  version: Type.Integer({ minimum: 0, description: 'The project revision of the write that last set this key.' }),
  created_at: Type.Integer({ description: 'When the key was first set, epoch seconds.' }),
  updated_at: Type.Integer({ description: 'When the key was last set, epoch seconds.' }),
  size_bytes: Type.Integer({ description: 'UTF-8 bytes of the string, or of the compact JSON of any other value.' }),
  type: JsonTypeSchema,
  expires_at: Type.Union([Type.Number(), Type.Null()], { description: 'When the key expires, epoch seconds; null: never.' }),
  value: Type.Optional(Type.Unknown({ description: 'The stored value; present with values=true.' }))
}, { $id: 'ListingItem', additionalProperties: false, description: 'One key of a listing.' })

/** A page of an ordered listing and the cursor of the next one. */
export const ListingPageSchema = Type.Object({
  items: Type.Array(ref(ListingItemSchema), { description: 'Keys in ascending order of their UTF-8 bytes.' }),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null: the listing is complete.' }),
  rev: Type.Integer({ description: 'The project revision when the first page of this walk was read.' })
}, { $id: 'ListingPage', additionalProperties: false, description: 'One page of keys.' })

export type ListingPage = Static<typeof ListingPageSchema>

export const ListingEnvelopeSchema = EnvelopeSchema(ref(ListingPageSchema), { system: false, $id: 'ListingEnvelope', description: 'One page of keys.' })
