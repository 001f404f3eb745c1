import type { SystemInfo } from '../schemas/system.js'
import type { Registry } from './registry.js'
import { VERSION } from './version.js'

/** The System object of system-key responses. */
export function systemInfo (registry: Registry): SystemInfo {
  let storage = 0
  for (const project of registry.projects()) storage += project.store.usage().bytesOnDisk
  return {
    memory_usage_bytes: process.memoryUsage.rss(),
    number_of_projects: registry.projectCount,
    storage_usage_bytes: storage,
    uptime: Math.floor((Date.now() - registry.startedAt) / 1000),
    version: VERSION,
    storage: { engine: registry.storage.engine, durability: registry.storage.durability }
  }
}
