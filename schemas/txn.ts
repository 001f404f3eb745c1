import { Type } from '@sinclair/typebox'
import { EnvelopeSchema, ref } from './envelope.js'
import { RecordSchema } from './record.js'

const KeyField = Type.String({ description: 'A store key.' })

export const TxnCheckSchema = Type.Union([
  Type.Object({ key: KeyField, etag: Type.String({ description: 'Holds when the key\'s current ETag is exactly this.' }) }, { additionalProperties: false }),
  Type.Object({ key: KeyField, exists: Type.Boolean({ description: 'Holds when the key exists (true) or not (false).' }) }, { additionalProperties: false })
], { description: 'A check on one key, against the state before the transaction.' })

export const TxnOpSchema = Type.Union([
  Type.Object({
    op: Type.Literal('set'),
    key: KeyField,
    value: Type.Unknown({ description: 'Any JSON value.' }),
    ttl: Type.Optional(Type.Number({ description: 'Expire the key this many seconds from now.' })),
    expires_at: Type.Optional(Type.Number({ description: 'Expire the key at this instant, epoch seconds.' })),
    keep_ttl: Type.Optional(Type.Boolean({ description: 'Keep the key\'s current expiry.' }))
  }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('delete'), key: KeyField }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('get'), key: KeyField }, { additionalProperties: false })
], { description: 'One operation of a transaction.' })

export const TxnRequestSchema = Type.Object({
  checks: Type.Optional(Type.Array(TxnCheckSchema, { description: 'Evaluated first, against the state before the transaction.' })),
  ops: Type.Array(TxnOpSchema, { minItems: 1, description: 'Applied in order, as one revision, when every check holds.' })
}, { $id: 'TxnRequest', additionalProperties: false, description: 'Checks and operations applied as one atomic revision.' })

export const TxnOpResultSchema = Type.Union([
  Type.Object({ key: Type.String(), etag: Type.String({ description: 'The new ETag of a set key.' }) }, { additionalProperties: false }),
  Type.Object({ key: Type.String(), deleted: Type.Boolean({ description: 'Whether a delete removed a key.' }) }, { additionalProperties: false }),
  Type.Object({
    key: Type.String(),
    etag: Type.Union([Type.String(), Type.Null()], { description: 'The key\'s ETag when read; null: it does not exist.' }),
    record: Type.Union([ref(RecordSchema), Type.Null()], { description: 'The record a get read; null: the key does not exist.' })
  }, { additionalProperties: false })
], { $id: 'TxnOpResult', description: 'The result of one op: a set, a delete or a get.' })

export const TxnResultSchema = Type.Object({
  rev: Type.Integer({ description: 'The revision the transaction made (the current one for reads only).' }),
  results: Type.Array(ref(TxnOpResultSchema), { description: 'One per op, in order.' })
}, { $id: 'TxnResult', additionalProperties: false, description: 'What an applied transaction did.' })

export const TxnFailureSchema = Type.Object({
  failed: Type.Array(Type.Object({
    index: Type.Integer({ description: 'Position of the check in checks.' }),
    key: Type.String(),
    etag: Type.Union([Type.String(), Type.Null()], { description: 'The key\'s current ETag, or null when it does not exist.' })
  }, { additionalProperties: false }), { description: 'The checks that did not hold.' })
}, { $id: 'TxnFailure', additionalProperties: false, description: 'Why a transaction was not applied.' })

export const TxnEnvelopeSchema = EnvelopeSchema(ref(TxnResultSchema), { system: false, $id: 'TxnEnvelope', description: 'Applied.' })
export const TxnFailedEnvelopeSchema = EnvelopeSchema(ref(TxnFailureSchema), { system: false, error: true, $id: 'TxnFailedEnvelope', description: 'Some checks failed; nothing was applied.' })
