import { unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { Mutex } from 'async-mutex'
import { StorageError } from '../../errors.js'
import { ensureDir, fsyncDir } from '../../fsutil.js'
import type { KvRecord } from '../../../schemas/record.js'
import { Appender, type AppenderOptions } from './appender.js'
import { newEpoch } from '../revision.js'
import type { Revision } from '../types.js'
import type { Change, Persistence, RevisionSource, StoreView } from './changes.js'
import { encodeChanges } from './changelog.js'
import { Compaction, type CompactionOptions } from './compaction.js'
import { journalFileName, listProjectFiles, metaFileName, removeFile, storeFileName } from './files.js'
import { readStoreFiles } from './recovery.js'

export type JournalOptions = AppenderOptions & CompactionOptions

/** What a project's files held at start-up. */
export interface OpenedJournal {
  persistence: Journal
  data: Map<string, KvRecord>
  /** Problems that did not stop start-up (a torn last line), for the caller to log. */
  warnings: string[]
  /** The epoch (a new one, already written, for a folder without one) and the highest revision the meta file and journals name. */
  revision: Revision
}

/**
 * The on-disk persistence of one project: the snapshot `<id>_store.json`
 * (Simple-PyKV's format) plus an append-only journal `<id>_store.journal`,
 * one JSON change per line. It composes the parts: recovery reads the files,
 * the appender writes batches to the journal, compaction folds journals into
 * the snapshot.
 *
 * Appends are serialized by the store (one batch at a time) and here by a
 * mutex shared with rotation, the everysec fsync and close. When the files
 * are no longer what this engine last wrote (replaced, deleted, an fsync that
 * failed after the reply), the next append first rewrites the snapshot from
 * the store's view, so the engine recovers by itself once the disk works
 * again.
 */
export class Journal implements Persistence {
  readonly dir: string
  readonly projectId: string
  readonly snapshotFile: string
  readonly journalFile: string
  readonly #io = new Mutex()
  readonly #appender: Appender
  readonly #compaction: Compaction
  #attached: StoreView | null = null
  #revision: RevisionSource | null = null
  /** The meta file of a new epoch could not be written at start-up: write it before the next append. */
  #metaPending = false
  /** The files cannot be trusted to match the view (a new persistence): rewrite them before the next append. */
  #rewrite = false
  #closed = false

  private constructor (dir: string, projectId: string, options: JournalOptions) {
    this.dir = dir
    this.projectId = projectId
    this.snapshotFile = storeFileName(dir, projectId)
    this.journalFile = journalFileName(dir, projectId)
    this.#appender = new Appender(this.journalFile, options, this.#io)
    this.#compaction = new Compaction(dir, projectId, options, this.#appender, this.#io)
  }

  /**
   * Load a project's store: snapshot, then any rotated journals, then the
   * journal. Throws StorageError naming the file and line when one cannot be
   * read; nothing is written in that case.
   */
  static async open (dir: string, projectId: string, options: JournalOptions): Promise<OpenedJournal> {
    await ensureDir(dir)
    const found = await readStoreFiles(dir, projectId)
    const journal = new Journal(dir, projectId, options)
    journal.#compaction.resume(found)
    await journal.#appender.resume(found.active)
    for (const name of found.temps) await unlink(join(dir, name)).catch(() => {})
    const revision = { epoch: found.epoch ?? newEpoch(), rev: found.rev }
    // A folder without an epoch (Simple-PyKV's, 1.0's, a new store) starts one now, before any write can name it.
    // A folder that cannot be written still loads, as in 1.0: the meta file is then written before the first append.
    if (found.epoch === null) await journal.#compaction.writeMeta(revision).catch(() => { journal.#metaPending = true })
    return { persistence: journal, data: found.data, warnings: found.warnings, revision }
  }

  /** A persistence for a project switching to disk: writeAll() writes its first files. */
  static async create (dir: string, projectId: string, options: JournalOptions): Promise<Journal> {
    await ensureDir(dir)
    const journal = new Journal(dir, projectId, options)
    journal.#rewrite = true
    return journal
  }

  get bytesOnDisk (): number {
    return this.#compaction.bytes + this.#appender.size
  }

  /** True while a compaction writes its snapshot in the background. */
  get compacting (): boolean {
    return this.#compaction.running
  }

  /** Why the last background compaction failed, if it did (reported to onCompactionError, never thrown). */
  get lastCompactionError (): unknown {
    return this.#compaction.lastError
  }

  attach (view: StoreView, revision: RevisionSource): void {
    this.#attached = view
    this.#revision = revision
  }

  async append (changes: readonly Change[]): Promise<void> {
    const buffer = encodeChanges(changes)
    await this.#io.runExclusive(async () => {
      if (this.#closed) throw new StorageError(`The journal of project '${this.projectId}' is closed`)
      await this.#ready()
      await this.#appender.write(buffer)
    })
  }

  applied (): void {
    if (this.#closed || this.#attached === null) return
    this.#compaction.maybeStart(this.#attached, this.#currentRevision, () => !this.#closed && !this.#stale)
  }

  async writeAll (): Promise<void> {
    await this.#io.runExclusive(async () => { await this.#rewriteFiles() })
  }

  /** Fold everything into `<id>_store.json` and remove the journals: after this, that one file holds the store. */
  async flush (): Promise<void> {
    await this.#compaction.settle()
    await this.#io.runExclusive(async () => {
      this.#shut()
      await this.#appender.close(false)
      if (!this.#stale && this.#appender.size === 0 && this.#compaction.folded) return
      await this.#rewriteFiles()
    })
  }

  async remove (): Promise<void> {
    await this.#compaction.settle()
    await this.#io.runExclusive(async () => {
      this.#shut()
      await this.#appender.close(false)
      const { rotated, temps } = await listProjectFiles(this.dir, this.projectId)
      for (const name of [...temps, ...rotated]) await removeFile(join(this.dir, name))
      await this.#appender.remove()
      await removeFile(this.snapshotFile)
      await removeFile(metaFileName(this.dir, this.projectId))
      this.#appender.forget()
      this.#compaction.forget()
      await fsyncDir(this.dir).catch(() => {})
    })
  }

  /** The store's records; writing a whole store without them would write an empty one. */
  get #view (): StoreView {
    if (this.#attached === null) throw new Error(`The journal of project '${this.projectId}' has no store attached`)
    return this.#attached
  }

  get #currentRevision (): Revision {
    if (this.#revision === null) throw new Error(`The journal of project '${this.projectId}' has no store attached`)
    return this.#revision()
  }

  get #stale (): boolean {
    return this.#rewrite || this.#appender.lost
  }

  #shut (): void {
    this.#closed = true
    this.#appender.stop()
  }

  /** Have the journal open for the next batch, first making the files again from the view when they cannot be trusted. */
  async #ready (): Promise<void> {
    if (this.#metaPending) {
      await this.#compaction.writeMeta(this.#currentRevision)
      this.#metaPending = false
    }
    if (!this.#stale) {
      if (this.#appender.isOpen) return
      // Someone else's files may stand where ours were (a folder replaced, a file deleted).
      if (await this.#compaction.snapshotIntact() && await this.#appender.open()) return
    }
    await this.#rewriteFiles()
    if (!await this.#appender.open()) throw new StorageError(`The journal ${this.journalFile} changed while it was being started afresh`)
  }

  async #rewriteFiles (): Promise<void> {
    await this.#compaction.rewrite(this.#view, this.#currentRevision)
    this.#rewrite = false
  }
}
