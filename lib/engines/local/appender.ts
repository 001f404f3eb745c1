import { open, rename, truncate, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Mutex } from 'async-mutex'
import type { Durability } from '../../../schemas/config.js'
import { FILE_MODE, fsyncDir } from '../../fsutil.js'
import { removeFile } from './files.js'
import type { Replayed } from './recovery.js'

export interface AppenderOptions {
  durability: Durability
  /** Opens the journal for appending. Tests wrap it to make the disk fail under a real file. */
  openJournal?: (path: string) => Promise<FileHandle>
}

const EVERYSEC_MS = 1000

/**
 * The active journal of one project, appended to a batch at a time. The store
 * gathers the writes that arrive meanwhile into one batch (group commit), and
 * here a batch costs one write and, under `always`, one fdatasync before it
 * counts; under `everysec` a timer syncs once a second, under `no` the system
 * does when it chooses.
 *
 * Every method runs under the owner's I/O mutex, which the timer takes too.
 * A failed write cuts the file back to its last whole batch.
 */
export class Appender {
  readonly file: string
  readonly #durability: Durability
  readonly #openJournal: (path: string) => Promise<FileHandle>
  readonly #io: Mutex
  #handle: FileHandle | null = null
  #size = 0
  #ino: number | null = null
  /** Written but not yet synced (everysec, no). */
  #dirty = false
  #lost = false
  #timer: NodeJS.Timeout | null = null

  constructor (file: string, options: AppenderOptions, io: Mutex) {
    this.file = file
    this.#durability = options.durability
    this.#openJournal = options.openJournal ?? openForAppend
    this.#io = io
    if (options.durability === 'everysec') {
      this.#timer = setInterval(() => { void this.#syncInBackground() }, EVERYSEC_MS)
      this.#timer.unref()
    }
  }

  /** Bytes of the file that hold whole, accepted batches. */
  get size (): number {
    return this.#size
  }

  /** Whether the file exists as far as this appender knows (it has an inode). */
  get exists (): boolean {
    return this.#ino !== null
  }

  get isOpen (): boolean {
    return this.#handle !== null
  }

  /**
   * An fsync failed after the reply had promised its data: the file may not
   * hold what was acknowledged, so the owner rewrites the files from memory.
   */
  get lost (): boolean {
    return this.#lost
  }

  /** Continue the journal recovery found; a torn last line is cut off, or the next line would be glued to it. */
  async resume (found: Replayed | null): Promise<void> {
    if (found === null) return
    this.#ino = found.ino
    this.#size = found.goodBytes
    if (found.goodBytes < found.totalBytes) await truncate(this.file, found.goodBytes).catch(() => {})
  }

  /**
   * Open the file for appending. False, with nothing opened, when the file is
   * no longer the one this appender last wrote (another inode, or shorter):
   * the owner then makes its files again from memory.
   */
  async open (): Promise<boolean> {
    const handle = await this.#openJournal(this.file)
    try {
      const { ino, size } = await handle.stat()
      const ours = this.#ino === null ? size === 0 : ino === this.#ino && size >= this.#size
      if (!ours) {
        await handle.close()
        return false
      }
      // Bytes past the last whole batch are a write that failed and could not be cut at the time.
      if (size > this.#size) await handle.truncate(this.#size)
      if (this.#ino === null) await fsyncDir(dirname(this.file))
      this.#ino = ino
    } catch (err) {
      await handle.close().catch(() => {})
      throw err
    }
    this.#handle = handle
    return true
  }

  /** Append one batch (whole lines) as the durability promises; on failure nothing of it stays. */
  async write (buffer: Buffer): Promise<void> {
    const handle = this.#handle
    if (handle === null) throw new Error('the journal is not open')
    try {
      let written = 0
      while (written < buffer.length) written += (await handle.write(buffer, written)).bytesWritten
      if (this.#durability === 'always') await handle.datasync()
      else this.#dirty = true
    } catch (err) {
      this.#handle = null
      // If the cut fails too, the next open finds the file longer than expected and cuts it then.
      await handle.truncate(this.#size).catch(() => {})
      await handle.close().catch(() => {})
      throw err
    }
    this.#size += buffer.length
  }

  /** Close the file; `sync` first makes what was written but not yet synced durable. */
  async close (sync: boolean): Promise<void> {
    const handle = this.#handle
    if (handle === null) return
    this.#handle = null
    try {
      if (sync && this.#dirty) await handle.datasync()
      this.#dirty = false
    } catch (err) {
      this.#lost = true
      throw err
    } finally {
      await handle.close().catch(() => {})
    }
  }

  /**
   * Set the file aside under `target` (synced first), so the next batch
   * starts a new one. Returns the bytes it held. The caller syncs the folder.
   */
  async moveTo (target: string): Promise<number> {
    await this.close(this.#durability !== 'always')
    await rename(this.file, target)
    const bytes = this.#size
    this.#size = 0
    this.#ino = null
    return bytes
  }

  /** Remove the file (the snapshot now holds what it had, or the project is gone); the next batch starts a new one. */
  async remove (): Promise<void> {
    await this.close(false)
    await removeFile(this.file)
  }

  /** After remove() and a synced folder: start afresh, with nothing lost. */
  forget (): void {
    this.#size = 0
    this.#ino = null
    this.#lost = false
  }

  stop (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
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
        this.#lost = true
      }
    })
  }
}

async function openForAppend (path: string): Promise<FileHandle> {
  return await open(path, 'a', FILE_MODE)
}
