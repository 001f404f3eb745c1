import { Type, type TSchema } from '@sinclair/typebox'
import { EnvelopeSchema, ErrorEnvelopeSchema, OkEnvelopeSchema, SystemErrorEnvelopeSchema, SystemOkEnvelopeSchema, ref } from './envelope.js'
import { ListingEnvelopeSchema, ListingItemSchema, ListingPageSchema } from './listing.js'
import { CreateProjectSchema, NewKeySchema, ProjectSettingsSchema, UpdateProjectSchema } from './project.js'
import { RecordSchema, TtlChangeSchema } from './record.js'
import { SystemInfoSchema } from './system.js'
import { TxnEnvelopeSchema, TxnFailedEnvelopeSchema, TxnFailureSchema, TxnOpResultSchema, TxnRequestSchema, TxnResultSchema } from './txn.js'

export const RecordEnvelopeSchema = EnvelopeSchema(ref(RecordSchema), { system: false, $id: 'RecordEnvelope', description: 'A record.' })

export const StoreEnvelopeSchema = EnvelopeSchema(Type.Record(Type.String(), ref(RecordSchema)), { system: false, $id: 'StoreEnvelope', description: 'Every record of a store, keyed by key.' })

export const PreconditionFailedSchema = Type.Object({
  etag: Type.Union([Type.String(), Type.Null()], { description: 'The key\'s current ETag, or null when it does not exist.' })
}, { $id: 'PreconditionFailed', additionalProperties: false, description: 'The current state of a key whose precondition failed.' })

export const PreconditionFailedEnvelopeSchema = EnvelopeSchema(ref(PreconditionFailedSchema), {
  system: false,
  error: true,
  $id: 'PreconditionFailedEnvelope',
  description: 'A precondition failed; data carries the current ETag so a compare-and-set loop needs no extra read.'
})

export const ProjectSettingsEnvelopeSchema = EnvelopeSchema(ref(ProjectSettingsSchema), { system: false, $id: 'ProjectSettingsEnvelope', description: 'A project\'s settings.' })

export const ProjectListEnvelopeSchema = EnvelopeSchema(Type.Record(Type.String(), ref(ProjectSettingsSchema)), { system: true, $id: 'ProjectListEnvelope', description: 'Every project\'s settings, keyed by id.' })

export const NewKeyEnvelopeSchema = EnvelopeSchema(ref(NewKeySchema), { system: true, $id: 'NewKeyEnvelope', description: 'A new project key, shown only here.' })

export const ProjectCreatedEnvelopeSchema = EnvelopeSchema(Type.Union([ref(NewKeySchema), Type.Null()], { description: 'The new key; null when the project has authentication off.' }), {
  system: true,
  $id: 'ProjectCreatedEnvelope',
  description: 'Created; data holds the new key when authentication is on.'
})

/**
 * Every schema routes reference by `$id`: added once to the app (addSchema),
 * so the serializer resolves the references and the OpenAPI document lists
 * each as one named component.
 */
export const NAMED_SCHEMAS: TSchema[] = [
  SystemInfoSchema, RecordSchema, ProjectSettingsSchema, NewKeySchema, CreateProjectSchema, UpdateProjectSchema,
  TtlChangeSchema, TxnRequestSchema,
  ListingItemSchema, ListingPageSchema, PreconditionFailedSchema, TxnOpResultSchema, TxnResultSchema, TxnFailureSchema,
  OkEnvelopeSchema, SystemOkEnvelopeSchema, ErrorEnvelopeSchema, SystemErrorEnvelopeSchema,
  RecordEnvelopeSchema, StoreEnvelopeSchema, ListingEnvelopeSchema, PreconditionFailedEnvelopeSchema,
  ProjectSettingsEnvelopeSchema, ProjectListEnvelopeSchema, NewKeyEnvelopeSchema, ProjectCreatedEnvelopeSchema,
  TxnEnvelopeSchema, TxnFailedEnvelopeSchema
]
