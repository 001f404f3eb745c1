import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { PROJECT_KEY, testConfig, writeConfig } from '../support/app.js'
import { ServerProcess } from '../support/process.js'
import { tempDir } from '../support/temp.js'

const BODY = 'written while the server was shutting down'

/** A PUT whose headers and first half of the body are sent; `finish()` sends the rest and reads the reply. */
async function startSlowPut (t: Test, url: string, key: string): Promise<{ socket: Socket, finish: () => Promise<string>, closed: Promise<void> }> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  t.teardown(() => { socket.destroy() })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve).once('error', reject) })
  let response = ''
  socket.setEncoding('utf8').on('data', (s: string) => { response += s })
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve => socket.once('close', () => { resolve() }))
  const half = Math.floor(BODY.length / 2)
  socket.write(
    `PUT /api/v1/projects/p1/store/${key} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
    `Authorization: Bearer ${PROJECT_KEY}\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n` +
    BODY.slice(0, half)
  )
  const finish = async (): Promise<string> => {
    socket.write(BODY.slice(half))
    for (let i = 0; i < 200 && !/\r\n\r\n[\s\S]*\}$/.test(response); i++) await sleep(50)
    return response
  }
  return { socket, finish, closed }
}

async function waitFor (what: () => boolean, label: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms
  while (!what()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${label}`)
    await sleep(25)
  }
}

async function connectionRefused (url: string): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return await new Promise(resolve => {
    const socket = connect(Number(port), hostname)
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', (err: NodeJS.ErrnoException) => { resolve(err.code === 'ECONNREFUSED') })
  })
}

async function startServer (t: Test, args: string[] = []): Promise<{ server: ServerProcess, dir: string }> {
  const dir = tempDir(t)
  const file = writeConfig(dir, testConfig(c => { c.server_port = 0 }))
  return { server: await ServerProcess.start(t, ['--config', file, ...args]), dir }
}

t.test('SIGTERM: no new connections, the request in flight completes, its write is on disk, exit 0', async t => {
  const { server, dir } = await startServer(t)
  const put = await startSlowPut(t, server.url, 'late')
  await sleep(300)
  server.child.kill('SIGTERM')
  await waitFor(() => server.stdout.includes('shutting down'), 'the shutdown log line')
  t.ok(await connectionRefused(server.url), 'new connections are refused')
  t.ok(server.running, 'still running while a request is in flight')

  const response = await put.finish()
  t.match(response, /^HTTP\/1\.1 200 /, 'the request in flight got its answer')
  t.match(response, "Key 'late' set successfully in project 'p1' store")
  const exit = await server.exited()
  t.equal(exit.code, 0)
  t.match(exit.stdout, 'stopped: stores flushed and closed')

  const store = JSON.parse(readFileSync(join(dir, 'storage_data', 'p1_store.json'), 'utf8')) as Record<string, { value: unknown }>
  t.equal(store.late?.value, BODY, 'the write is in the store file')
})

t.test('SIGINT with nothing in flight exits 0 at once', async t => {
  const { server } = await startServer(t)
  const started = Date.now()
  const exit = await server.stop('SIGINT')
  t.equal(exit.code, 0)
  t.ok(Date.now() - started < 5000, 'promptly')
  t.match(exit.stdout, '"signal":"SIGINT"')
})

t.test('a second signal exits at once, without waiting', async t => {
  const { server } = await startServer(t)
  await startSlowPut(t, server.url, 'never')
  await sleep(300)
  server.child.kill('SIGTERM')
  await waitFor(() => server.stdout.includes('shutting down'), 'the shutdown log line')
  t.ok(server.running, 'waiting for the request in flight')
  server.child.kill('SIGINT')
  const exit = await server.exited()
  t.equal(exit.code, 130, '128 + SIGINT')
  t.equal(exit.stderr, 'simple-kv: second SIGINT: exiting now without waiting\n')
})

t.test('shutdown is bounded: a request that never finishes is cut off, stores still close, exit 0', async t => {
  const { server } = await startServer(t, ['--shutdown-timeout', '1'])
  const put = await startSlowPut(t, server.url, 'stuck')
  await sleep(300)
  const started = Date.now()
  server.child.kill('SIGTERM')
  const exit = await server.exited()
  const took = Date.now() - started
  t.equal(exit.code, 0)
  t.ok(took >= 900 && took < 6000, `stopped after the 1s bound (${took}ms)`)
  t.match(exit.stdout, 'requests still in flight after 1s: closing their connections')
  t.match(exit.stdout, 'stopped: stores flushed and closed')
  await put.closed
  t.pass('the stuck connection was closed')
})
