import { Type, type Static } from '@sinclair/typebox'
import { AuthenticationSchema, ProjectSecuritySchema, ProjectStorageSchema } from './config.js'

/** A project's settings as the API shows them: defaults filled in, no key or hash. */
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
    keys_and_values_discoverable: Type.Boolean(),
    require_conditional_writes: Type.Optional(Type.Boolean())
  })
}, { $id: 'ProjectSettings', description: 'A project\'s settings, without secrets.' })

export type ProjectSettings = Static<typeof ProjectSettingsSchema>

export const CreateProjectSchema = Type.Object({
  id: Type.String({ description: 'New project id: 1 to 64 of A-Z a-z 0-9 _ -.', examples: ['my_app'] }),
  storage: Type.Optional(ProjectStorageSchema),
  authentication: Type.Optional(Type.Omit(AuthenticationSchema, ['api_key', 'api_key_hash'], { additionalProperties: false })),
  security: Type.Optional(ProjectSecuritySchema)
}, { $id: 'CreateProject', additionalProperties: false, description: 'Settings of the new project; omitted settings take the defaults.' })

export type CreateProject = Static<typeof CreateProjectSchema>

export const UpdateProjectSchema = Type.Object({
  storage: Type.Optional(ProjectStorageSchema),
  security: Type.Optional(ProjectSecuritySchema)
}, { $id: 'UpdateProject', additionalProperties: false, description: 'Settings to merge into the project config.' })

export type UpdateProject = Static<typeof UpdateProjectSchema>

export const NewKeySchema = Type.Object({
  new_api_key: Type.String({ description: 'The new key: 43 characters of base64url. Shown only here.' })
}, { $id: 'NewKey', description: 'A project key, shown once.' })

export type NewKey = Static<typeof NewKeySchema>
