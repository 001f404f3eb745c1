import { readdir, unlink } from 'node:fs/promises'
import { basename, join } from 'node:path'

/** The snapshot: `<id>_store.json`, in Simple-PyKV's format. */
export function storeFileName (dir: string, projectId: string): string {
  return join(dir, `${projectId}_store.json`)
}

/** The journal being appended to, beside the snapshot. */
export function journalFileName (dir: string, projectId: string): string {
  return join(dir, `${projectId}_store.journal`)
}

/** The store's epoch and a revision it has reached: `<id>_store.meta`, one JSON object; 1.0 readers never look at it. */
export function metaFileName (dir: string, projectId: string): string {
  return join(dir, `${projectId}_store.meta`)
}

/** A journal set aside by a compaction whose snapshot is not yet written: `<id>_store.journal.<n>`. */
export function rotatedFileName (dir: string, projectId: string, generation: number): string {
  return `${journalFileName(dir, projectId)}.${generation}`
}

/** Temporary files a crash left behind while writing `file` (by writeSnapshotAtomic or writeFileAtomic). */
export function isSnapshotTemp (name: string, file: string): boolean {
  const prefix = `.${basename(file)}.`
  return name.startsWith(prefix) && /^[0-9a-f]+\.tmp$/.test(name.slice(prefix.length))
}

/** The files of a project besides its snapshot and active journal, as found in its folder. */
export interface ProjectFiles {
  /** Generations of rotated journals, ascending. */
  generations: number[]
  /** Names of every rotated journal, with any number of digits (for removal). */
  rotated: string[]
  /** Names of temporary files of the snapshot and of the meta file. */
  temps: string[]
}

/** List a project's rotated journals and temporary files; a missing folder holds none. */
export async function listProjectFiles (dir: string, projectId: string): Promise<ProjectFiles> {
  const names = await readdir(dir).catch(() => [] as string[])
  const snapshot = storeFileName(dir, projectId)
  const prefix = `${projectId}_store.journal.`
  const rotated = names.filter(n => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
  const generations = rotated
    .map(n => n.slice(prefix.length))
    .filter(digits => digits.length <= 15)
    .map(Number)
    .sort((a, b) => a - b)
  const meta = metaFileName(dir, projectId)
  // A crash while the meta file was replaced leaves its temporary file too.
  return { generations, rotated, temps: names.filter(n => isSnapshotTemp(n, snapshot) || isSnapshotTemp(n, meta)) }
}

export function errnoCode (err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code
}

/** Remove a file; one that is not there (or whose folder is not) is already removed. */
export async function removeFile (file: string): Promise<void> {
  await unlink(file).catch((err: unknown) => {
    const code = errnoCode(err)
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err
  })
}

/** Remove every file of a project (snapshot, journals, meta, temporary files); missing ones are already gone. */
export async function removeProjectFiles (dir: string, projectId: string): Promise<void> {
  const { rotated, temps } = await listProjectFiles(dir, projectId)
  for (const name of [...temps, ...rotated]) await removeFile(join(dir, name))
  for (const file of [journalFileName(dir, projectId), storeFileName(dir, projectId), metaFileName(dir, projectId)]) await removeFile(file)
}
