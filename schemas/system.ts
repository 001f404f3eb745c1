import { Type, type Static } from '@sinclair/typebox'

export const SystemInfoSchema = Type.Object({
  memory_usage_bytes: Type.Integer({ description: 'Resident set size of the server process.' }),
  number_of_projects: Type.Integer({ description: 'Projects the server holds.' }),
  storage_usage_bytes: Type.Integer({ description: 'Bytes the project store files occupy on disk.' }),
  uptime: Type.Integer({ description: 'Whole seconds since the server started.' }),
  version: Type.String({ description: 'Server version.' })
}, { $id: 'SystemInfo', description: 'Server information, sent only on system-key routes.' })

export type SystemInfo = Static<typeof SystemInfoSchema>
