import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Mutex } from 'async-mutex'
import { ensureDir, fsyncDir, writeFileAtomic } from '../../fsutil.js'
import type { KvRecord } from '../../../schemas/record.js'
import type { Appender } from './appender.js'
import type { Revision } from '../types.js'
import type { StoreView } from './changes.js'
import { errnoCode, listProjectFiles, metaFileName, removeFile, rotatedFileName, storeFileName } from './files.js'
import type { Generation, StoreFiles } from './recovery.js'
import { entriesCopy, writeSnapshotAtomic, type SnapshotStat } from './snapshot-file.js'

export interface CompactionOptions {
  /** Compact once the journal passes this many bytes and the size of the snapshot. */
  maxBytes: number
  /** Writes a compacted snapshot. Tests wrap it to make compaction fail. */
  writeSnapshot?: typeof writeSnapshotAtomic
  /**
   * Told each time a background compaction fails, with how many have failed in
   * a row. Nothing is lost: the journals keep every change, and compaction is
   * tried again after a pause that doubles with each failure (1 s up to 1 min).
   */
  onCompactionError?: (err: unknown, failures: number) => void
  /** The clock for that pause, in ms (default Date.now). Tests pass their own. */
  now?: () => number
}

/** Pause before the first retry of a failed compaction; it doubles up to RETRY_MAX_MS. */
const RETRY_MS = 1000
const RETRY_MAX_MS = 60_000

/**
 * The files behind the active journal, the snapshot and the rotated
 * journals, and the folding of journals into the snapshot: in the background
 * once the journal has grown (rotation, so writes go on), or at once when the
 * files must hold exactly what memory holds (rewrite).
 *
 * Rotation and rewrite run under the owner's I/O mutex; the snapshot of a
 * background compaction is written outside it.
 */
export class Compaction {
  readonly #dir: string
  readonly #projectId: string
  readonly #snapshotFile: string
  readonly #options: CompactionOptions
  readonly #appender: Appender
  readonly #io: Mutex
  #snapshot: SnapshotStat | null = null
  /** The snapshot was read whole (another layout): a clean close rewrites it in ours, which the next start reads line by line. */
  #foreignLayout = false
  /** Rotated journals still on disk, ascending. */
  #rotated: Generation[] = []
  #running: Promise<void> | null = null
  /** Why the last background compaction failed, if it did (reported to onCompactionError, never thrown). */
  lastError: unknown = null
  /** Background compactions failed in a row, and when the next may start (clock ms). */
  #failures = 0
  #retryAt = 0

  constructor (dir: string, projectId: string, options: CompactionOptions, appender: Appender, io: Mutex) {
    this.#dir = dir
    this.#projectId = projectId
    this.#snapshotFile = storeFileName(dir, projectId)
    this.#options = options
    this.#appender = appender
    this.#io = io
  }

  /** Take over the files start-up found. */
  resume (found: StoreFiles): void {
    this.#snapshot = found.snapshot
    this.#foreignLayout = found.foreignLayout
    this.#rotated = found.rotated
  }

  /** Bytes of the snapshot and the rotated journals. */
  get bytes (): number {
    let bytes = this.#snapshot?.bytes ?? 0
    for (const r of this.#rotated) bytes += r.bytes
    return bytes
  }

  /** True while a compaction writes its snapshot in the background. */
  get running (): boolean {
    return this.#running !== null
  }

  /** The snapshot alone, in our layout, holds everything older than the active journal. */
  get folded (): boolean {
    return !this.#foreignLayout && this.#rotated.length === 0 && this.#snapshot !== null
  }

  /** The snapshot on disk is still the one last written or found (same inode and size). */
  async snapshotIntact (): Promise<boolean> {
    try {
      const s = await stat(this.#snapshotFile)
      return this.#snapshot !== null && s.ino === this.#snapshot.ino && s.size === this.#snapshot.bytes
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return this.#snapshot === null
      throw err
    }
  }

  /**
   * After a batch reached memory: start a background compaction of `view`
   * when the journal has passed maxBytes and the snapshot's size, unless one
   * runs or a recent failure asks to wait. `mayRotate` is asked under the
   * I/O mutex whether the files may be rotated at all.
   */
  maybeStart (view: StoreView, revision: Revision, mayRotate: () => boolean): void {
    if (this.#running !== null) return
    if (this.#appender.size < Math.max(this.#options.maxBytes, this.#snapshot?.bytes ?? 0)) return
    // After a failure (a full disk, say), retrying on every write would copy the whole store each time.
    const now = this.#options.now ?? Date.now
    if (this.#failures > 0 && now() < this.#retryAt) return
    // Records are never mutated, so a copy of the entries is a consistent snapshot of this moment.
    const entries = entriesCopy(view)
    this.#running = this.#compact(entries, revision, mayRotate)
      .then(() => {
        this.#failures = 0
      }, (err: unknown) => {
        this.lastError = err
        this.#failures++
        this.#retryAt = now() + Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** (this.#failures - 1))
        try {
          this.#options.onCompactionError?.(err, this.#failures)
        } catch {
          // A failing reporter must not turn into an unhandled rejection; lastError keeps the cause.
        }
      })
      .finally(() => { this.#running = null })
  }

  /** Wait for a background compaction, including one that starts while waiting. */
  async settle (): Promise<void> {
    while (this.#running !== null) await this.#running
  }

  /**
   * Make the disk hold exactly `view`: snapshot written atomically, then every
   * journal removed (a crash in between replays journals whose changes the
   * snapshot already holds, which changes nothing). Run under the I/O mutex,
   * with `view` held still meanwhile (close, a switch to disk, an append), so
   * it is read without a copy.
   */
  async rewrite (view: StoreView, revision: Revision): Promise<void> {
    await this.settle()
    await ensureDir(this.#dir)
    await this.writeMeta(revision)
    const written = await writeSnapshotAtomic(this.#snapshotFile, view)
    this.#snapshot = { ino: written.ino, bytes: written.bytes }
    await this.#appender.close(false)
    await this.#dropRotated(Infinity)
    // Rotated journals this instance never knew of (left by a crash before a switch to memory and back) would replay over the new snapshot.
    for (const name of (await listProjectFiles(this.#dir, this.#projectId)).rotated) await removeFile(join(this.#dir, name))
    await this.#appender.remove()
    await fsyncDir(this.#dir)
    this.#appender.forget()
    this.#foreignLayout = false
  }

  /**
   * Remember the epoch and a revision the store has reached (at least that of
   * every change the snapshot will hold), atomically, before journals go.
   */
  async writeMeta (revision: Revision): Promise<void> {
    await writeFileAtomic(metaFileName(this.#dir, this.#projectId), JSON.stringify({ epoch: revision.epoch, rev: revision.rev }) + '\n')
  }

  /** The files are gone (the project was removed). */
  forget (): void {
    this.#rotated = []
    this.#snapshot = null
  }

  /**
   * Compaction without stopping writes: set the journal aside under the next
   * generation number (new appends start a fresh journal), write the snapshot
   * of `entries` (the state at that moment) in the background, then remove
   * the rotated journals it covers.
   */
  async #compact (entries: Iterable<readonly [string, KvRecord]>, revision: Revision, mayRotate: () => boolean): Promise<void> {
    const generation = await this.#io.runExclusive(async () => await this.#rotate(mayRotate))
    if (generation === null) return
    // The journals about to go may hold the only record of the latest revision (a clear, a delete).
    await this.writeMeta(revision)
    const written = await (this.#options.writeSnapshot ?? writeSnapshotAtomic)(this.#snapshotFile, entries)
    this.#snapshot = { ino: written.ino, bytes: written.bytes }
    this.#foreignLayout = false
    await this.#dropRotated(generation)
    this.lastError = null
  }

  async #rotate (mayRotate: () => boolean): Promise<number | null> {
    if (!mayRotate() || !this.#appender.exists) return null
    const generation = (this.#rotated.at(-1)?.generation ?? 0) + 1
    const bytes = await this.#appender.moveTo(rotatedFileName(this.#dir, this.#projectId, generation))
    this.#rotated.push({ generation, bytes })
    await fsyncDir(this.#dir)
    return generation
  }

  /** Remove rotated journals up to `generation`, oldest first, each removal durable before the next. */
  async #dropRotated (generation: number): Promise<void> {
    while (this.#rotated.length > 0 && this.#rotated[0].generation <= generation) {
      await removeFile(rotatedFileName(this.#dir, this.#projectId, this.#rotated[0].generation))
      await fsyncDir(this.#dir)
      this.#rotated.shift()
    }
  }
}
