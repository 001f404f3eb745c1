import { open, readFile, stat, type FileHandle } from 'node:fs/promises'
import { StorageError } from '../../errors.js'
import type { KvRecord } from '../../../schemas/record.js'
import { applyChange, revisionOf } from './changes.js'
import { decodeChange } from './changelog.js'
import { errnoCode, journalFileName, listProjectFiles, metaFileName, rotatedFileName, storeFileName } from './files.js'
import { readLineBlocks, type LineBlocksEnd } from './lines.js'
import { readSnapshotFile, type SnapshotStat } from './snapshot-file.js'

const NEWLINE = 0x0a
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A journal as replayed. */
export interface Replayed {
  /** Bytes up to the end of the last whole line. */
  goodBytes: number
  totalBytes: number
  ino: number
}

/** A rotated journal found at start-up: its generation and size. */
export interface Generation {
  generation: number
  bytes: number
}

/** What a project's files hold, read in the order start-up reads them. */
export interface StoreFiles {
  data: Map<string, KvRecord>
  /** Problems that did not stop the read (a torn last line), for the caller to log. */
  warnings: string[]
  snapshot: SnapshotStat | null
  /** The snapshot is in another layout than ours (read whole, not line by line). */
  foreignLayout: boolean
  rotated: Generation[]
  /** The active journal, null when there is none. */
  active: Replayed | null
  /** Temporary files of interrupted snapshot writes. */
  temps: string[]
  /** The epoch in the meta file; null for a folder without one (Simple-PyKV's, 1.0's, or a new store). */
  epoch: string | null
  /** The highest revision the meta file and the journals name (record versions are not read here). */
  rev: number
}

/** What `<id>_store.meta` holds. */
export interface StoreMeta {
  epoch: string
  rev: number
}

/** The meta file, or null when there is none. Throws StorageError when it exists but is not ours. */
export async function readMeta (file: string): Promise<StoreMeta | null> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null
    throw new StorageError(`Cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  try {
    const meta = JSON.parse(text) as Partial<StoreMeta>
    if (typeof meta.epoch === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(meta.epoch) && Number.isSafeInteger(meta.rev) && (meta.rev as number) >= 0) {
      return { epoch: meta.epoch, rev: meta.rev as number }
    }
  } catch {}
  throw new StorageError(`${file} is not a store meta file ({"epoch":…,"rev":…}); start-up stopped and the file was left untouched`)
}

interface Replay {
  data: Map<string, KvRecord>
  warnings: string[]
  /** The highest revision seen in a journal line. */
  rev: number
}

/**
 * Read a project's files as start-up does: the snapshot, the rotated
 * journals (oldest first), then the journal. Writes nothing. Throws
 * StorageError naming the file (and the line) that cannot be read.
 */
export async function readStoreFiles (dir: string, projectId: string): Promise<StoreFiles> {
  const snapshotFile = storeFileName(dir, projectId)
  const warnings: string[] = []
  const meta = await readMeta(metaFileName(dir, projectId))
  const { data, lineLayout } = await readSnapshotFile(snapshotFile)
  const state: Replay = { data, warnings, rev: meta?.rev ?? 0 }
  const snapshot = await stat(snapshotFile).then(s => ({ ino: s.ino, bytes: s.size }), () => null)
  const { generations, temps } = await listProjectFiles(dir, projectId)
  const rotated: Generation[] = []
  for (const generation of generations) {
    const result = await replay(rotatedFileName(dir, projectId, generation), state)
    if (result !== null) rotated.push({ generation, bytes: result.totalBytes })
  }
  const active = await replay(journalFileName(dir, projectId), state)
  return { data, warnings, snapshot, foreignLayout: !lineLayout, rotated, active, temps, epoch: meta?.epoch ?? null, rev: state.rev }
}

/**
 * Apply every line of a journal to `data`. A last line without its newline is
 * a write a crash interrupted: dropped, with a warning. Any other bad line
 * stops start-up. Returns null when the file does not exist.
 */
async function replay (file: string, state: Replay): Promise<Replayed | null> {
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
      line = replayLines(file, block, line, state)
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
    state.warnings.push(`Journal file ${file} line ${line + 1}: dropped a torn last line (${rest.length} bytes), a write interrupted by a crash`)
  }
  return { goodBytes: bytes - rest.length, totalBytes: bytes, ino }
}

function cannotReadJournal (file: string, err: unknown): StorageError {
  return new StorageError(`Cannot read journal file ${file}: ${(err as Error).message}`, { cause: err })
}

/** Apply whole lines (`block` ends with a newline) numbered from `line` + 1; returns the number of the last one. */
function replayLines (file: string, block: Buffer, line: number, state: Replay): number {
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
    const change = decodeChange(lineText)
    if (typeof change === 'string') {
      throw new StorageError(`Journal file ${file} line ${line} is ${change}; start-up stopped and the file was left untouched`)
    }
    applyChange(state.data, change)
    const rev = revisionOf(change)
    if (rev !== undefined && rev > state.rev) state.rev = rev
  }
  return line
}
