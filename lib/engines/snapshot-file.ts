import { readFile, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { StorageError } from '../errors.js'
import { ensureDir, fsyncDir, writeFileAtomic } from '../fsutil.js'
import { recordFromFile, type KvRecord } from '../record.js'
import type { Change, Persistence } from './project-store.js'

export function storeFileName (dir: string, projectId: string): string {
  return join(dir, `${projectId}_store.json`)
}

/**
 * The store file in Simple-PyKV's format, one record per line so a person can
 * read and diff it: `{ "<key>": <record>, … }`.
 */
export function snapshotText (entries: Iterable<[string, KvRecord]>): string {
  const lines: string[] = []
  for (const [key, record] of entries) lines.push(`  ${JSON.stringify(key)}: ${JSON.stringify(record)}`)
  return lines.length === 0 ? '{}\n' : `{\n${lines.join(',\n')}\n}\n`
}

/** Read a store file; a missing file is an empty store, an unreadable one stops start-up. */
export async function readSnapshot (file: string): Promise<Map<string, KvRecord>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
    throw new StorageError(`Cannot read store file ${file}: ${(err as Error).message}`, { cause: err })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new StorageError(`Store file ${file} is not valid JSON (${(err as Error).message}); it was left untouched`, { cause: err })
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new StorageError(`Store file ${file} does not hold a JSON object; it was left untouched`)
  }
  const data = new Map<string, KvRecord>()
  for (const [key, raw] of Object.entries(parsed)) {
    const record = recordFromFile(raw)
    if (record === null) throw new StorageError(`Store file ${file}: entry ${JSON.stringify(key)} is not a record with a "value"; the file was left untouched`)
    data.set(key, record)
  }
  return data
}

function * withChange (data: ReadonlyMap<string, KvRecord>, change: Change): Generator<[string, KvRecord]> {
  if (change.op === 'clear') return
  let seen = false
  for (const entry of data) {
    if (entry[0] !== change.key) {
      yield entry
    } else if (change.op === 'set') {
      seen = true
      yield [change.key, change.record]
    }
  }
  if (change.op === 'set' && !seen) yield [change.key, change.record]
}

/**
 * Rewrites the whole store file atomically on every change: simple and
 * correct, at a cost that grows with the store.
 */
export class SnapshotFile implements Persistence {
  readonly file: string
  readonly dir: string
  #bytes: number

  private constructor (dir: string, projectId: string, bytes: number) {
    this.dir = dir
    this.file = storeFileName(dir, projectId)
    this.#bytes = bytes
  }

  /** Open the store file of `projectId` and read what it holds. */
  static async open (dir: string, projectId: string): Promise<{ persistence: SnapshotFile, data: Map<string, KvRecord> }> {
    await ensureDir(dir)
    const file = storeFileName(dir, projectId)
    const data = await readSnapshot(file)
    const bytes = await stat(file).then(s => s.size, () => 0)
    return { persistence: new SnapshotFile(dir, projectId, bytes), data }
  }

  /** A persistence for a project switching to disk; writeAll() writes its first file. */
  static async create (dir: string, projectId: string): Promise<SnapshotFile> {
    await ensureDir(dir)
    return new SnapshotFile(dir, projectId, 0)
  }

  get bytesOnDisk (): number {
    return this.#bytes
  }

  async persist (change: Change, data: ReadonlyMap<string, KvRecord>): Promise<void> {
    await this.#write(withChange(data, change))
  }

  async writeAll (data: ReadonlyMap<string, KvRecord>): Promise<void> {
    await this.#write(data.entries())
  }

  async flush (): Promise<void> {}

  async remove (): Promise<void> {
    await unlink(this.file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
    this.#bytes = 0
    await fsyncDir(this.dir).catch(() => {})
  }

  async #write (entries: Iterable<[string, KvRecord]>): Promise<void> {
    const text = snapshotText(entries)
    await writeFileAtomic(this.file, text)
    this.#bytes = Buffer.byteLength(text)
  }
}
