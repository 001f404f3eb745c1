import { Type, type Static } from '@sinclair/typebox'

export const SystemInfoSchema = Type.Object({
  memory_usage_bytes: Type.Integer({ description: 'Resident set size of the server process.' }),
  number_of_projects: Type.Integer({ description: 'Projects the server holds.' }),
  storage_usage_bytes: Type.Integer({ description: 'Bytes the project store files occupy on disk.' }),
  uptime: Type.Integer({ description: 'Whole seconds since the server started.' }),
  version: Type.String({ description: 'Server version.' }),
  storage: Type.Object({
    engine: Type.String({ description: 'Where the stores live: local (this process and its files) or redis (shared by every instance on the same Redis).' }),
    durability: Type.String({ description: 'What an acknowledged write survives. local: always, everysec or no (system.storage.durability). redis: Redis\'s own appendfsync (always, everysec, no), none (appendonly off) or unknown (its configuration could not be read).' })
  }, { description: 'The storage engine and its durability (1.1).' })
}, { $id: 'SystemInfo', description: 'Server information, sent only on system-key routes.' })

export type SystemInfo = Static<typeof SystemInfoSchema>
