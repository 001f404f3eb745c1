import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import type { ConfigStore } from '../lib/config.js'
import { StorageError } from '../lib/errors.js'
import { DirLock, LOCK_FILE_NAME } from '../lib/lock.js'
import { CliError } from './errors.js'

function probeAddress (host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::' || host === '[::]') return '::1'
  return host.replace(/^\[(.*)\]$/, '$1')
}

/** Whether a Simple KV server answers GET /health at host:port (any other program does not count). */
export async function answersHealth (host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return await new Promise(resolve => {
    const req = httpRequest({ host: probeAddress(host), port, path: '/health', method: 'GET', timeout: timeoutMs, agent: false }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { if (body.length < 4096) body += chunk })
      res.on('end', () => {
        try {
          const parsed = JSON.parse(body) as Record<string, unknown>
          resolve(res.statusCode === 200 && parsed.status_code === 200 && parsed.message === 'OK' && 'System' in parsed)
        } catch {
          resolve(false)
        }
      })
      res.on('error', () => { resolve(false) })
    })
    req.on('timeout', () => { req.destroy() })
    req.on('error', () => { resolve(false) })
    req.end()
  })
}

/** The pid in a storage folder's lock file, if it can be read. */
async function lockHolder (dir: string): Promise<number | null> {
  try {
    const owner = JSON.parse(await readFile(join(dir, LOCK_FILE_NAME), 'utf8')) as { pid?: unknown }
    return typeof owner.pid === 'number' ? owner.pid : null
  } catch {
    return null
  }
}

const USE_THE_API = 'stop it first, or use the API while it runs (POST /api/v1/projects/<id>/config/regenerate-api-key)'

/**
 * Run `edit` on the config file only while no server runs on it: a running
 * server keeps the config in memory, so it would go on accepting the old key
 * and overwrite the change on its next save. The one place that decides it:
 * a Simple KV server answering on the config's host and port, or a live
 * process holding the storage folder's lock. The lock is held during the
 * edit, so a server cannot start halfway through it.
 */
export async function whileNoServerRuns<T> (store: ConfigStore, edit: () => Promise<T>): Promise<T> {
  const { host, port, storageDir } = store.settings
  const file = store.file ?? 'this config'
  if (port !== 0 && await answersHealth(host, port)) {
    throw new CliError(`a Simple KV server is running on ${file} (it answers on ${host}:${port}); ${USE_THE_API}`)
  }
  let lock: DirLock
  try {
    lock = await DirLock.acquire(storageDir)
  } catch (err) {
    if (!(err instanceof StorageError)) throw err
    const pid = await lockHolder(storageDir)
    if (pid === null) throw err
    throw new CliError(`a Simple KV server is running on ${file} (pid ${pid} holds ${storageDir}); ${USE_THE_API}`)
  }
  try {
    return await edit()
  } finally {
    await lock.release()
  }
}
