import { open, readdir, rename, stat, truncate, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Mutex } from 'async-mutex'
import type { Durability } from '../config.js'
import { StorageError } from '../errors.js'
import { FILE_MODE, ensureDir, fsyncDir } from '../fsutil.js'
import { recordFromFile, type KvRecord } from '../record.js'
import { applyChange, type Change, type Persistence } from './project-store.js'
import { readLineBlocks, type LineBlocksEnd } from './lines.js'
import { entriesCopy, isSnapshotTemp, readSnapshotFile, storeFileName, writeSnapshotAtomic } from './snapshot-file.js'

export interface JournalOptions {
  durability: Durability
  /** Compact once the journal passes this many bytes and the size of the snapshot. */
  maxBytes: number
  /** Opens the journal for appending. Tests wrap it to make the disk fail under a real file. */
  openJournal?: (path: string) => Promise<FileHandle>
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

/** Pause before the first retry of a failed compaction; it doubles up to COMPACTION_RETRY_MAX_MS. */
const COMPACTION_RETRY_MS = 1000
const COMPACTION_RETRY_MAX_MS = 60_000

/** What a project's files held at start-up. */
export interface OpenedJournal {
  persistence: Journal
  data: Map<string, KvRecord>
  /** Problems that did not stop start-up (a torn last line), for the caller to log. */
  warnings: string[]
}

/** The journal being appended to, beside the snapshot. */
export function journalFileName (dir: string, projectId: string): string {
  return join(dir, `${projectId}_store.journal`)
}

/** A journal set aside by a compaction whose snapshot is not yet written: `<id>_store.journal.<n>`. */
function rotatedFileName (dir: string, projectId: string, generation: number): string {
  return `${journalFileName(dir, projectId)}.${generation}`
}

export function journalLine (change: Change): string {
  return JSON.stringify(change) + '\n'
}

const EVERYSEC_MS = 1000
const NEWLINE = 0x0a
const utf8 = new TextDecoder('utf-8', { fatal: true })

function errnoCode (err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code
}

/** Await a removal; a file that is not there (or whose folder is not) is already removed. */
async function ignoreMissing (p: Promise<unknown>): Promise<void> {
  await p.catch((err: unknown) => {
    const code = errnoCode(err)
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err
  })
}

function parseChange (text: string): Change | string {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'not a JSON object'
  const r = raw as Record<string, unknown>
  if (r.op === 'clear') return { op: 'clear' }
  if (typeof r.key !== 'string') return `op ${JSON.stringify(r.op)} without a string "key"`
  if (r.op === 'delete') return { op: 'delete', key: r.key }
  if (r.op !== 'set') return `unknown op ${JSON.stringify(r.op)}`
  const record = recordFromFile(r.record)
  if (record === null) return 'a "set" whose "record" has no "value"'
  return { op: 'set', key: r.key, record }
}

interface Replayed {
  /** Bytes up to the end of the last whole line. */
  goodBytes: number
  totalBytes: number
  ino: number
}

/**
 * Apply every line of a journal to `data`. A last line without its newline is
 * a write a crash interrupted: dropped, with a warning. Any other bad line
 * stops start-up. Returns null when the file does not exist.
 */
async function replay (file: string, data: Map<string, KvRecord>, warnings: string[]): Promise<Replayed | null> {
  let handle: FileHandle
  try {
    handle = await open(file, 'r')
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null
    throw cannotReadJournal(file, err)
  }
  let line = 0
  let end: LineBlocksEnd | null
  let ino: number
  try {
    ino = (await handle.stat()).ino
    // A block of whole lines at a time: the journal is never held whole, and a block is decoded at once.
    end = await readLineBlocks(handle, block => {
      line = replayLines(file, block, line, data)
      return true
    })
  } catch (err) {
    if (err instanceof StorageError) throw err
    throw cannotReadJournal(file, err)
  } finally {
    await handle.close()
  }
  const { rest, bytes } = end as LineBlocksEnd
  if (rest.length > 0) {
    warnings.push(`Journal file ${file} line ${line + 1}: dropped a torn last line (${rest.length} bytes), a write interrupted by a crash`)
  }
  return { goodBytes: bytes - rest.length, totalBytes: bytes, ino }
}

function cannotReadJournal (file: string, err: unknown): StorageError {
  return new StorageError(`Cannot read journal file ${file}: ${(err as Error).message}`, { cause: err })
}

/** Apply whole lines (`block` ends with a newline) numbered from `line` + 1; returns the number of the last one. */
function replayLines (file: string, block: Buffer, line: number, data: Map<string, KvRecord>): number {
  let text: string
  try {
    text = utf8.decode(block)
  } catch {
    // Find the line to name.
    let start = 0
    let n = line
    while (start < block.length) {
      const end = block.indexOf(NEWLINE, start)
      n++
      try {
        utf8.decode(block.subarray(start, end))
      } catch {
        throw new StorageError(`Journal file ${file} line ${n} is not valid UTF-8; start-up stopped and the file was left untouched`)
      }
      start = end + 1
    }
    throw new StorageError(`Journal file ${file} is not valid UTF-8; start-up stopped and the file was left untouched`)
  }
  let start = 0
  while (start < text.length) {
    const end = text.indexOf('\n', start)
    line++
    const lineText = text.slice(start, end)
    start = end + 1
    if (lineText.trim() === '') continue
    const change = parseChange(lineText)
    if (typeof change === 'string') {
      throw new StorageError(`Journal file ${file} line ${line} is ${change}; start-up stopped and the file was left untouched`)
    }
    applyChange(data, change)
  }
  return line
}

interface Loaded {
  data: Map<string, KvRecord>
  warnings: string[]
  snapshot: { ino: number, bytes: number } | null
  /** The snapshot is in another layout than ours (read whole, not line by line). */
  foreignLayout: boolean
  rotated: Array<{ generation: number, bytes: number }>
  active: Replayed | null
  /** Temporary files of interrupted snapshot writes. */
  temps: string[]
}

/** Read a project's files in order: snapshot, rotated journals (oldest first), journal. Writes nothing. */
async function load (dir: string, projectId: string): Promise<Loaded> {
  const snapshotFile = storeFileName(dir, projectId)
  const warnings: string[] = []
  const { data, lineLayout } = await readSnapshotFile(snapshotFile)
  const snapshot = await stat(snapshotFile).then(s => ({ ino: s.ino, bytes: s.size }), () => null)
  const names = await readdir(dir).catch(() => [] as string[])
  const prefix = `${projectId}_store.journal.`
  const generations = names
    .filter(n => n.startsWith(prefix) && /^\d{1,15}$/.test(n.slice(prefix.length)))
    .map(n => Number(n.slice(prefix.length)))
    .sort((a, b) => a - b)
  const rotated: Loaded['rotated'] = []
  for (const generation of generations) {
    const result = await replay(rotatedFileName(dir, projectId, generation), data, warnings)
    if (result !== null) rotated.push({ generation, bytes: result.totalBytes })
  }
  const active = await replay(journalFileName(dir, projectId), data, warnings)
  const temps = names.filter(n => isSnapshotTemp(n, snapshotFile))
  return { data, warnings, snapshot, foreignLayout: !lineLayout, rotated, active, temps }
}

async function writeAllBytes (handle: FileHandle, buffer: Buffer): Promise<void> {
  let written = 0
  while (written < buffer.length) written += (await handle.write(buffer, written)).bytesWritten
}

/**
 * The on-disk engine of one project: the snapshot `<id>_store.json`
 * (Simple-PyKV's format) plus an append-only journal `<id>_store.journal`,
 * one JSON change per line.
 *
 * Appends are serialized by the store (one batch at a time) and here by a
 * mutex shared with rotation, the everysec fsync and close. A failed append
 * truncates the journal back to its last whole batch; when the files are no
 * longer what this engine last wrote (replaced, deleted, an fsync that
 * failed after the reply), the next append first rewrites the snapshot from
 * memory, so the engine recovers by itself once the disk works again.
 */
export class Journal implements Persistence {
  readonly dir: string
  readonly projectId: string
  readonly snapshotFile: string
  readonly journalFile: string
  readonly #options: JournalOptions
  readonly #io = new Mutex()
  #handle: FileHandle | null = null
  /** Bytes of the active journal that hold whole, accepted batches. */
  #size = 0
  /** Inode of the active journal on disk (null: there is none yet). */
  #ino: number | null = null
  #snapshot: { ino: number, bytes: number } | null = null
  /** Generations of rotated journals still on disk, ascending, and their bytes. */
  #rotated: Array<{ generation: number, bytes: number }> = []
  #compaction: Promise<void> | null = null
  /** The files can no longer be trusted to match memory: rewrite them before the next append. */
  #rewrite = false
  /** The snapshot was read whole (another layout): a clean close rewrites it in ours, which the next start reads line by line. */
  #foreignLayout = false
  #dirty = false
  #timer: NodeJS.Timeout | null = null
  #closed = false
  /** Why the last background compaction failed, if it did (reported to onCompactionError, never thrown). */
  lastCompactionError: unknown = null
  /** Background compactions failed in a row, and when the next may start (Date.now() ms). */
  #compactionFailures = 0
  #compactionRetryAt = 0

  private constructor (dir: string, projectId: string, options: JournalOptions) {
    this.dir = dir
    this.projectId = projectId
    this.snapshotFile = storeFileName(dir, projectId)
    this.journalFile = journalFileName(dir, projectId)
    this.#options = options
    if (options.durability === 'everysec') {
      this.#timer = setInterval(() => { void this.#syncInBackground() }, EVERYSEC_MS)
      this.#timer.unref()
    }
  }

  /**
   * Load a project's store: snapshot, then any rotated journals, then the
   * journal. Throws StorageError naming the file and line when one cannot be
   * read; nothing is written in that case.
   */
  static async open (dir: string, projectId: string, options: JournalOptions): Promise<OpenedJournal> {
    await ensureDir(dir)
    const loaded = await load(dir, projectId)
    const journal = new Journal(dir, projectId, options)
    journal.#snapshot = loaded.snapshot
    journal.#foreignLayout = loaded.foreignLayout
    journal.#rotated = loaded.rotated
    if (loaded.active !== null) {
      journal.#ino = loaded.active.ino
      journal.#size = loaded.active.goodBytes
      // Appending after a torn fragment would glue the next line to it.
      if (loaded.active.goodBytes < loaded.active.totalBytes) await truncate(journal.journalFile, loaded.active.goodBytes).catch(() => {})
    }
    for (const name of loaded.temps) await unlink(join(dir, name)).catch(() => {})
    return { persistence: journal, data: loaded.data, warnings: loaded.warnings }
  }

  /** A persistence for a project switching to disk: writeAll() writes its first files. */
  static async create (dir: string, projectId: string, options: JournalOptions): Promise<Journal> {
    await ensureDir(dir)
    const journal = new Journal(dir, projectId, options)
    journal.#rewrite = true
    return journal
  }

  get bytesOnDisk (): number {
    let bytes = (this.#snapshot?.bytes ?? 0) + this.#size
    for (const r of this.#rotated) bytes += r.bytes
    return bytes
  }

  /** True while a compaction writes its snapshot in the background. */
  get compacting (): boolean {
    return this.#compaction !== null
  }

  async append (changes: readonly Change[], data: ReadonlyMap<string, KvRecord>): Promise<void> {
    const buffer = Buffer.from(changes.map(journalLine).join(''))
    await this.#io.runExclusive(async () => {
      if (this.#closed) throw new StorageError(`The journal of project '${this.projectId}' is closed`)
      const handle = await this.#ready(data)
      try {
        await writeAllBytes(handle, buffer)
        if (this.#options.durability === 'always') await handle.datasync()
        else this.#dirty = true
      } catch (err) {
        await this.#undo(handle)
        throw err
      }
      this.#size += buffer.length
    })
  }

  applied (data: ReadonlyMap<string, KvRecord>): void {
    if (this.#compaction !== null || this.#closed) return
    if (this.#size < Math.max(this.#options.maxBytes, this.#snapshot?.bytes ?? 0)) return
    // After a failure (a full disk, say), retrying on every write would copy the whole store each time.
    const now = this.#options.now ?? Date.now
    if (this.#compactionFailures > 0 && now() < this.#compactionRetryAt) return
    // Records are never mutated, so a copy of the entries is a consistent snapshot of this moment.
    const entries = entriesCopy(data)
    this.#compaction = this.#compact(entries)
      .then(() => {
        this.#compactionFailures = 0
      }, (err: unknown) => {
        this.lastCompactionError = err
        this.#compactionFailures++
        this.#compactionRetryAt = now() + Math.min(COMPACTION_RETRY_MAX_MS, COMPACTION_RETRY_MS * 2 ** (this.#compactionFailures - 1))
        try {
          this.#options.onCompactionError?.(err, this.#compactionFailures)
        } catch {
          // A failing reporter must not turn into an unhandled rejection; lastCompactionError keeps the cause.
        }
      })
      .finally(() => { this.#compaction = null })
  }

  async writeAll (data: ReadonlyMap<string, KvRecord>): Promise<void> {
    await this.#io.runExclusive(async () => { await this.#rewriteFiles(data) })
  }

  /** Fold everything into `<id>_store.json` and remove the journals: after this, that one file holds the store. */
  async flush (data: ReadonlyMap<string, KvRecord>): Promise<void> {
    await this.#settle()
    await this.#io.runExclusive(async () => {
      this.#closed = true
      this.#stopTimer()
      await this.#closeHandle(false)
      if (!this.#rewrite && !this.#foreignLayout && this.#size === 0 && this.#rotated.length === 0 && this.#snapshot !== null) return
      await this.#rewriteFiles(data)
    })
  }

  async remove (): Promise<void> {
    await this.#settle()
    await this.#io.runExclusive(async () => {
      this.#closed = true
      this.#stopTimer()
      await this.#closeHandle(false)
      const prefix = `${this.projectId}_store.journal.`
      const names = await readdir(this.dir).catch(() => [] as string[])
      for (const name of names) {
        if (isSnapshotTemp(name, this.snapshotFile) || (name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))) {
          await ignoreMissing(unlink(join(this.dir, name)))
        }
      }
      await ignoreMissing(unlink(this.journalFile))
      await ignoreMissing(unlink(this.snapshotFile))
      this.#rotated = []
      this.#size = 0
      this.#ino = null
      this.#snapshot = null
      await fsyncDir(this.dir).catch(() => {})
    })
  }

  /** Wait for a background compaction, including one that starts while waiting. */
  async #settle (): Promise<void> {
    while (this.#compaction !== null) await this.#compaction
  }

  /** The handle to append to, reopening (and checking) the journal after a failure or a rotation. */
  async #ready (data: ReadonlyMap<string, KvRecord>): Promise<FileHandle> {
    if (this.#rewrite) {
      await this.#closeHandle(false)
      await this.#rewriteFiles(data)
    }
    if (this.#handle !== null) return this.#handle
    const openJournal = this.#options.openJournal ?? openForAppend
    let handle = await openJournal(this.journalFile)
    try {
      const { ino, size } = await handle.stat()
      const expected = this.#ino === null ? size === 0 : ino === this.#ino && size >= this.#size
      if (!expected || !await this.#snapshotIntact()) {
        // Someone else's files now stand where ours were: make ours again from memory.
        await handle.close()
        await this.#rewriteFiles(data)
        handle = await openJournal(this.journalFile)
        this.#ino = (await handle.stat()).ino
        await fsyncDir(this.dir)
      } else {
        if (size > this.#size) await handle.truncate(this.#size)
        if (this.#ino === null) await fsyncDir(this.dir)
        this.#ino = ino
      }
    } catch (err) {
      await handle.close().catch(() => {})
      throw err
    }
    this.#handle = handle
    return handle
  }

  async #snapshotIntact (): Promise<boolean> {
    try {
      const s = await stat(this.snapshotFile)
      return this.#snapshot !== null && s.ino === this.#snapshot.ino && s.size === this.#snapshot.bytes
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return this.#snapshot === null
      throw err
    }
  }

  /** After a failed append: cut the journal back to its last whole batch and let the next append reopen it. */
  async #undo (handle: FileHandle): Promise<void> {
    this.#handle = null
    // If the cut fails too, the next append finds the file longer than expected and cuts it then.
    await handle.truncate(this.#size).catch(() => {})
    await handle.close().catch(() => {})
  }

  /**
   * Make the disk hold exactly `data`: snapshot written atomically, then every
   * journal removed (a crash in between replays journals whose changes the
   * snapshot already holds, which changes nothing).
   */
  async #rewriteFiles (data: ReadonlyMap<string, KvRecord>): Promise<void> {
    await this.#settle()
    await ensureDir(this.dir)
    // Callers hold `data` still meanwhile (close, a switch to disk, an append): no copy needed.
    const written = await writeSnapshotAtomic(this.snapshotFile, data)
    this.#snapshot = { ino: written.ino, bytes: written.bytes }
    await this.#closeHandle(false)
    await this.#dropRotated(Infinity)
    await ignoreMissing(unlink(this.journalFile))
    await fsyncDir(this.dir)
    this.#size = 0
    this.#ino = null
    this.#rewrite = false
    this.#foreignLayout = false
  }

  /** Remove rotated journals up to `generation`, oldest first, each removal durable before the next. */
  async #dropRotated (generation: number): Promise<void> {
    while (this.#rotated.length > 0 && this.#rotated[0].generation <= generation) {
      await ignoreMissing(unlink(rotatedFileName(this.dir, this.projectId, this.#rotated[0].generation)))
      await fsyncDir(this.dir)
      this.#rotated.shift()
    }
  }

  /**
   * Compaction without stopping writes: set the journal aside under the next
   * generation number (new appends start a fresh journal), write the snapshot
   * of `entries` (the state at that moment) in the background, then remove
   * the rotated journals it covers.
   */
  async #compact (entries: Iterable<readonly [string, KvRecord]>): Promise<void> {
    const generation = await this.#io.runExclusive(async () => await this.#rotate())
    if (generation === null) return
    const written = await (this.#options.writeSnapshot ?? writeSnapshotAtomic)(this.snapshotFile, entries)
    this.#snapshot = { ino: written.ino, bytes: written.bytes }
    this.#foreignLayout = false
    await this.#dropRotated(generation)
    this.lastCompactionError = null
  }

  async #rotate (): Promise<number | null> {
    if (this.#closed || this.#rewrite || this.#ino === null) return null
    await this.#closeHandle(this.#options.durability !== 'always')
    const generation = (this.#rotated.at(-1)?.generation ?? 0) + 1
    await rename(this.journalFile, rotatedFileName(this.dir, this.projectId, generation))
    this.#rotated.push({ generation, bytes: this.#size })
    this.#size = 0
    this.#ino = null
    await fsyncDir(this.dir)
    return generation
  }

  async #closeHandle (sync: boolean): Promise<void> {
    const handle = this.#handle
    if (handle === null) return
    this.#handle = null
    try {
      if (sync && this.#dirty) await handle.datasync()
      this.#dirty = false
    } catch (err) {
      // What the reply already promised may not be on disk: rewrite from memory before the next append.
      this.#rewrite = true
      throw err
    } finally {
      await handle.close().catch(() => {})
    }
  }

  async #syncInBackground (): Promise<void> {
    if (!this.#dirty) return
    await this.#io.runExclusive(async () => {
      const handle = this.#handle
      if (handle === null || !this.#dirty) return
      this.#dirty = false
      try {
        await handle.datasync()
      } catch {
        this.#rewrite = true
      }
    })
  }

  #stopTimer (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }
}

async function openForAppend (path: string): Promise<FileHandle> {
  return await open(path, 'a', FILE_MODE)
}

/** Parse a project's files as start-up does, changing nothing; for tools and tests that check a folder. */
export async function readStoreFiles (dir: string, projectId: string): Promise<{ data: Map<string, KvRecord>, warnings: string[] }> {
  const { data, warnings } = await load(dir, projectId)
  return { data, warnings }
}
