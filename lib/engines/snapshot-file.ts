import { randomBytes } from 'node:crypto'
import { open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { StorageError } from '../errors.js'
import { FILE_MODE, fsyncDir } from '../fsutil.js'
import { recordFromFile, type KvRecord } from '../record.js'

export function storeFileName (dir: string, projectId: string): string {
  return join(dir, `${projectId}_store.json`)
}

/**
 * The store file in Simple-PyKV's format, one record per line so a person can
 * read and diff it: `{ "<key>": <record>, … }`.
 */
export function snapshotText (entries: Iterable<[string, KvRecord]>): string {
  const lines: string[] = []
  for (const [key, record] of entries) lines.push(snapshotLine(key, record))
  return lines.length === 0 ? '{}\n' : `{\n${lines.join(',\n')}\n}\n`
}

function snapshotLine (key: string, record: KvRecord): string {
  return `  ${JSON.stringify(key)}: ${JSON.stringify(record)}`
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

/** Where a snapshot landed: its size, and its inode so a later check can tell it was replaced. */
export interface SnapshotStat {
  bytes: number
  ino: number
}

/** Entries serialized per write, so a large store never holds the event loop for long. */
const CHUNK_ENTRIES = 1000

/**
 * Write `entries` as `file` (the same text as snapshotText) so that a crash
 * leaves either the old file or the new one: temporary file in the same
 * folder, fsync, rename, fsync of the folder. The text is produced a chunk at
 * a time between writes, so reads keep being served while a big store is written.
 */
export async function writeSnapshotAtomic (file: string, entries: ReadonlyArray<[string, KvRecord]>): Promise<SnapshotStat> {
  const dir = dirname(file)
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  let bytes = 0
  let ino: number
  try {
    const handle = await open(tmp, 'wx', FILE_MODE)
    try {
      if (entries.length === 0) {
        bytes += (await handle.write('{}\n')).bytesWritten
      }
      for (let i = 0; i < entries.length; i += CHUNK_ENTRIES) {
        const lines: string[] = []
        for (const [key, record] of entries.slice(i, i + CHUNK_ENTRIES)) lines.push(snapshotLine(key, record))
        const end = i + CHUNK_ENTRIES >= entries.length ? '\n}\n' : ''
        const text = `${i === 0 ? '{\n' : ',\n'}${lines.join(',\n')}${end}`
        const buffer = Buffer.from(text)
        let written = 0
        while (written < buffer.length) written += (await handle.write(buffer, written)).bytesWritten
        bytes += buffer.length
      }
      await handle.sync()
      ino = (await handle.stat()).ino
    } finally {
      await handle.close()
    }
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fsyncDir(dir)
  return { bytes, ino }
}

/** Temporary files a crash left behind while writing `file` (by writeSnapshotAtomic or writeFileAtomic). */
export function isSnapshotTemp (name: string, file: string): boolean {
  const prefix = `.${basename(file)}.`
  return name.startsWith(prefix) && /^[0-9a-f]+\.tmp$/.test(name.slice(prefix.length))
}
