import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DirLock, LOCK_FILE_NAME, processAlive, processStartTime } from '../../lib/lock.js'
import { tempDir } from '../support/temp.js'

function writeLock (dir: string, owner: unknown): string {
  const file = join(dir, LOCK_FILE_NAME)
  writeFileSync(file, typeof owner === 'string' ? owner : JSON.stringify(owner) + '\n')
  return file
}

/** A process that stays alive until the test ends. */
async function liveProcess (t: Test): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  await new Promise(resolve => child.once('spawn', resolve))
  return child as ChildProcess & { pid: number }
}

async function deadPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise(resolve => child.once('exit', resolve))
  return child.pid as number
}

t.test('the lock holds our pid; a second taker in the same process is refused; release frees it', async t => {
  const dir = tempDir(t)
  const lock = await DirLock.acquire(dir)
  const owner = JSON.parse(readFileSync(join(dir, LOCK_FILE_NAME), 'utf8'))
  t.equal(owner.pid, process.pid)
  t.equal(owner.host, hostname())
  await t.rejects(DirLock.acquire(dir), { name: 'StorageError', message: new RegExp(`${dir}.*pid ${process.pid}`) })
  await lock.release()
  await lock.release()
  t.notOk(existsSync(join(dir, LOCK_FILE_NAME)))
  const again = await DirLock.acquire(dir)
  await again.release()
})

t.test('a lock held by a live process: refused with a message naming the folder and the pid', async t => {
  const dir = tempDir(t)
  const child = await liveProcess(t)
  const owner = { pid: child.pid, start: await processStartTime(child.pid), host: hostname() }
  const file = writeLock(dir, owner)
  const before = readFileSync(file, 'utf8')
  const err = await DirLock.acquire(dir).then(() => null, (e: unknown) => e as Error)
  t.ok(err, 'refused')
  t.match(err?.message, `The storage folder ${dir} is in use by another Simple KV process (pid ${child.pid}; lock file ${file})`)
  t.equal(readFileSync(file, 'utf8'), before, 'the live lock is left alone')
})

t.test('a lock left by a dead process is taken over', async t => {
  const dir = tempDir(t)
  const pid = await deadPid()
  t.notOk(processAlive(pid))
  const file = writeLock(dir, { pid, start: '1', host: hostname() })
  const lock = await DirLock.acquire(dir)
  t.equal(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid)
  await lock.release()
})

t.test('a live pid that started at another time is a reused pid: the lock is stale', { skip: existsSync('/proc/self/stat') ? false : 'needs /proc' }, async t => {
  const dir = tempDir(t)
  const child = await liveProcess(t)
  writeLock(dir, { pid: child.pid, start: '1', host: hostname() })
  const lock = await DirLock.acquire(dir)
  t.equal(JSON.parse(readFileSync(lock.path, 'utf8')).pid, process.pid)
  await lock.release()
})

t.test('our own pid in a lock we do not hold was left by an earlier process (a container\'s pid 1): stale', async t => {
  const dir = tempDir(t)
  writeLock(dir, { pid: process.pid, start: null, host: hostname() })
  const lock = await DirLock.acquire(dir)
  await lock.release()
})

t.test('an unreadable lock file has no live owner', async t => {
  const dir = tempDir(t)
  writeLock(dir, '')
  const lock = await DirLock.acquire(dir)
  t.equal(JSON.parse(readFileSync(lock.path, 'utf8')).pid, process.pid)
  await lock.release()
})

t.test('a lock from another machine cannot be checked: refused, naming that host', async t => {
  const dir = tempDir(t)
  writeLock(dir, { pid: 4242, start: null, host: 'elsewhere.example' })
  await t.rejects(DirLock.acquire(dir), { message: /pid 4242 on elsewhere\.example/ })
})

t.test('release leaves a lock that is no longer ours', async t => {
  const dir = tempDir(t)
  const lock = await DirLock.acquire(dir)
  const other = writeLock(dir, { pid: 4242, start: null, host: 'elsewhere.example' })
  await lock.release()
  t.ok(existsSync(other))
})

t.test('two takers racing for a stale lock: exactly one wins', async t => {
  const dir = tempDir(t)
  writeLock(dir, { pid: await deadPid(), start: null, host: hostname() })
  const results = await Promise.allSettled([DirLock.acquire(dir), DirLock.acquire(dir), DirLock.acquire(dir)])
  const won = results.filter(r => r.status === 'fulfilled')
  t.equal(won.length, 1)
  for (const r of won) await (r as PromiseFulfilledResult<DirLock>).value.release()
})
