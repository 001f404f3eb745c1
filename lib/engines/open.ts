import type { EffectiveSettings } from '../config.js'
import { LocalBackend } from './local/backend.js'
import type { StorageBackend, StorageEvents } from './types.js'

/** The one place that chooses the storage engine from the settings. */
export async function openBackend (settings: Readonly<EffectiveSettings>, events: StorageEvents = {}): Promise<StorageBackend> {
  return await LocalBackend.open({
    dir: settings.storageDir,
    durability: settings.durability,
    journalMaxBytes: settings.journalMaxBytes,
    limits: { maxValueBytes: settings.maxValueBytes, maxKeys: settings.maxKeysPerProject, maxBytes: settings.maxBytesPerProject },
    events
  })
}
