import { randomBytes } from 'node:crypto'
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { StorageError } from './errors.js'
import { FILE_MODE, ensureDir } from './fsutil.js'

export const LOCK_FILE_NAME = 'simple-kv.lock'

/** What a lock file holds: enough to tell whether its writer still runs. */
export interface LockOwner {
  pid: number
  /** The process's start time as the kernel counts it (Linux), so a reused pid is not mistaken for the owner. */
  start: string | null
  host: string
}

/** Lock files this process holds, so a second registry in the same process is refused too. */
const heldHere = new Set<string>()

/** Start time of `pid` from /proc (field 22 of /proc/<pid>/stat), or null where there is no /proc. */
export async function processStartTime (pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[19] ?? null
  } catch {
    return null
  }
}

export function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function parseOwner (text: string): LockOwner | null {
  try {
    const raw = JSON.parse(text) as Partial<LockOwner>
    if (!Number.isInteger(raw.pid) || (raw.pid as number) <= 0 || typeof raw.host !== 'string') return null
    return { pid: raw.pid as number, start: typeof raw.start === 'string' ? raw.start : null, host: raw.host }
  } catch {
    return null
  }
}

async function isStale (path: string, owner: LockOwner | null): Promise<boolean> {
  // Our writers fill the file before it appears, so an unreadable one has no live owner.
  if (owner === null) return true
  // Another machine (a shared folder): its processes cannot be checked from here.
  if (owner.host !== hostname()) return false
  // Our own pid without our own hold: left by an earlier process that had this pid (a container's pid 1).
  if (owner.pid === process.pid) return !heldHere.has(path)
  if (!processAlive(owner.pid)) return true
  if (owner.start === null) return false
  const start = await processStartTime(owner.pid)
  return start !== null && start !== owner.start
}

function code (err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code
}

/**
 * One writer per storage folder: a lock file holding the owner's pid. It is
 * created whole and atomically (written under a temporary name, then hard
 * linked into place, which fails when the name exists); a lock whose process
 * is gone is taken over.
 */
export class DirLock {
  readonly dir: string
  readonly path: string
  readonly #text: string
  #released = false

  private constructor (dir: string, path: string, text: string) {
    this.dir = dir
    this.path = path
    this.#text = text
  }

  /** Take the lock of `dir`, creating the folder. Throws StorageError naming the folder and the pid when a live process holds it. */
  static async acquire (dir: string): Promise<DirLock> {
    await ensureDir(dir)
    const path = join(dir, LOCK_FILE_NAME)
    const owner: LockOwner = { pid: process.pid, start: await processStartTime(process.pid), host: hostname() }
    const text = JSON.stringify(owner) + '\n'
    for (let attempt = 0; attempt < 10; attempt++) {
      if (await DirLock.#create(dir, path, text)) {
        heldHere.add(path)
        return new DirLock(dir, path, text)
      }
      let existing: string
      try {
        existing = await readFile(path, 'utf8')
      } catch (err) {
        if (code(err) === 'ENOENT') continue
        throw new StorageError(`Cannot read the lock file ${path}: ${(err as Error).message}`, { cause: err })
      }
      const holder = parseOwner(existing)
      if (!await isStale(path, holder)) {
        const who = holder as LockOwner
        throw new StorageError(
          `The storage folder ${dir} is in use by another Simple KV process (pid ${who.pid}${who.host === hostname() ? '' : ` on ${who.host}`}; lock file ${path}). ` +
          'Stop that process or point this server at another folder.' +
          // A process on another host (or in another container) cannot be checked from here.
          (who.host === hostname() ? '' : ` If no server runs on ${who.host} any more (a replaced container, say), delete the lock file.`)
        )
      }
      await DirLock.#removeStale(path, existing)
    }
    throw new StorageError(`Could not take the lock file ${path}: other processes keep taking it`)
  }

  /** Create the lock file whole; false when one already exists. */
  static async #create (dir: string, path: string, text: string): Promise<boolean> {
    const tmp = join(dir, `.${LOCK_FILE_NAME}.${randomBytes(6).toString('hex')}.tmp`)
    await writeFile(tmp, text, { mode: FILE_MODE, flag: 'wx' })
    try {
      await link(tmp, path)
      return true
    } catch (err) {
      if (code(err) === 'EEXIST') return false
      if (code(err) !== 'EPERM' && code(err) !== 'ENOTSUP' && code(err) !== 'ENOSYS') throw err
      // A file system without hard links: fall back to an exclusive create.
      try {
        await writeFile(path, text, { mode: FILE_MODE, flag: 'wx' })
        return true
      } catch (err2) {
        if (code(err2) === 'EEXIST') return false
        throw err2
      }
    } finally {
      await unlink(tmp).catch(() => {})
    }
  }

  /**
   * Move a stale lock aside, then check that what was moved is the lock judged
   * stale; if another process had meanwhile replaced it with a live one, put it back.
   */
  static async #removeStale (path: string, judged: string): Promise<void> {
    const aside = `${path}.${randomBytes(6).toString('hex')}.stale`
    try {
      await rename(path, aside)
    } catch (err) {
      if (code(err) === 'ENOENT') return
      throw err
    }
    const moved = await readFile(aside, 'utf8').catch(() => judged)
    if (moved !== judged) await link(aside, path).catch(() => {})
    await unlink(aside).catch(() => {})
  }

  /** Give the lock up; only removes the file while it is still ours. */
  async release (): Promise<void> {
    if (this.#released) return
    this.#released = true
    heldHere.delete(this.path)
    const current = await readFile(this.path, 'utf8').catch(() => null)
    if (current === this.#text) await unlink(this.path).catch(() => {})
  }
}
