import type { Durability } from '../../../schemas/config.js'
import { DirLock } from '../../lock.js'
import { Journal, type JournalOptions } from './journal.js'
import { memoryOnly, type Persistence } from './changes.js'
import { LocalEngine } from './engine.js'
import { removeProjectFiles } from './files.js'
import type { KvEngine, StorageBackend, StorageEvents, StoreLimits } from '../types.js'

export interface LocalBackendOptions {
  /** Folder of the store files. */
  dir: string
  durability: Durability
  journalMaxBytes: number
  limits: StoreLimits
  events?: StorageEvents
}

/**
 * The embedded engine: every store a Map in this process, an on-disk project
 * also kept as a snapshot and a journal in `dir`. One process owns the folder
 * at a time (a lock file), so two servers never write the same files.
 */
export class LocalBackend implements StorageBackend {
  readonly name = 'local'
  readonly #options: LocalBackendOptions
  #lock: DirLock | null

  private constructor (options: LocalBackendOptions, lock: DirLock) {
    this.#options = options
    this.#lock = lock
  }

  /** Take the folder's lock; throws when another process holds it. */
  static async open (options: LocalBackendOptions): Promise<LocalBackend> {
    return new LocalBackend(options, await DirLock.acquire(options.dir))
  }

  async open (projectId: string, { persistent, fresh = false }: { persistent: boolean, fresh?: boolean }): Promise<{ engine: KvEngine, warnings: string[] }> {
    const { limits } = this.#options
    const persistenceFor = async (onDisk: boolean): Promise<Persistence> => await this.#persistenceFor(projectId, onDisk)
    // A memory-only store starts a new epoch each time it is opened: nothing of its history survived.
    if (!persistent) return { engine: new LocalEngine(projectId, new Map(), memoryOnly, { limits, persistenceFor }), warnings: [] }
    if (fresh) await removeProjectFiles(this.#options.dir, projectId)
    const opened = await Journal.open(this.#options.dir, projectId, this.#journalOptions(projectId))
    return { engine: new LocalEngine(projectId, opened.data, opened.persistence, { limits, persistenceFor, revision: opened.revision }), warnings: opened.warnings }
  }

  async close (): Promise<void> {
    await this.#lock?.release()
    this.#lock = null
  }

  async #persistenceFor (projectId: string, onDisk: boolean): Promise<Persistence> {
    return onDisk ? await Journal.create(this.#options.dir, projectId, this.#journalOptions(projectId)) : memoryOnly
  }

  #journalOptions (projectId: string): JournalOptions {
    const { durability, journalMaxBytes, events } = this.#options
    const report = events?.onCompactionError
    return {
      durability,
      maxBytes: journalMaxBytes,
      onCompactionError: report === undefined ? undefined : (err, failures) => { report(projectId, err, failures) }
    }
  }
}
