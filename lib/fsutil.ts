import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export const FILE_MODE = 0o600
export const DIR_MODE = 0o700

export async function fsyncDir (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Create the storage folder if needed, and keep it private to this user (0700). */
export async function ensureDir (dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: DIR_MODE })
  // A folder made by someone else (say, Simple-PyKV) keeps its owner's choice if we may not change it.
  await chmod(dir, DIR_MODE).catch(() => {})
}

/**
 * Replace `file` with what `write` puts into a fresh handle, so that a reader
 * (or a crash) sees either the old or the new content, never a mix: temp file
 * in the same folder (mode 0600), fsync, rename, fsync of the folder.
 */
export async function replaceFileAtomic<T> (file: string, write: (handle: FileHandle) => Promise<T>): Promise<T> {
  const dir = dirname(file)
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  let result: T
  try {
    const handle = await open(tmp, 'wx', FILE_MODE)
    try {
      result = await write(handle)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fsyncDir(dir)
  return result
}

/** Replace `file` with `data`, atomically (see replaceFileAtomic). */
export async function writeFileAtomic (file: string, data: string | Uint8Array): Promise<void> {
  await replaceFileAtomic(file, async handle => { await handle.writeFile(data) })
}
