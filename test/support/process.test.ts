import t from 'tap'
import { freePort } from './net.js'
import { ServerProcess } from './process.js'

t.test('waitForHealth fails at once with what the process wrote when it dies first', async t => {
  const port = await freePort()
  const child = ServerProcess.spawn(t, ['-e', 'setTimeout(() => { console.error("cannot open the store"); process.exit(3) }, 200)'])
  const started = Date.now()
  await t.rejects(child.waitForHealth(port, { timeoutMs: 60_000 }), /exited \(3\) before GET \/health answered[^]*cannot open the store/)
  t.ok(Date.now() - started < 30_000, 'long before the deadline')
})

t.test('waitForHealth waits for a server that listens late, and the teardown kills it', async t => {
  const port = await freePort()
  const script = `setTimeout(() => require('node:http').createServer((q, s) => { s.statusCode = q.url === '/health' ? 200 : 404; s.end() }).listen(${port}, '127.0.0.1'), 500)`
  let child: ServerProcess | undefined
  await t.test('start', async t => {
    child = ServerProcess.spawn(t, ['-e', script])
    const ms = await child.waitForHealth(port)
    t.ok(ms >= 400, `answered ${Math.round(ms)} ms after spawn`)
    t.equal(child.url, `http://127.0.0.1:${port}`)
    t.ok(child.running)
  })
  const exit = await (child as ServerProcess).exited()
  t.equal(exit.signal, 'SIGKILL', 'killed when its test ended')
})

t.test('stop sends the signal, and SIGKILL when the process ignores it', async t => {
  const child = ServerProcess.spawn(t, ['-e', 'process.on("SIGTERM", () => {}); console.log("ready"); setInterval(() => {}, 1000)'])
  while (!child.stdout.includes('ready') && child.running) await new Promise(resolve => setTimeout(resolve, 20))
  const exit = await child.stop('SIGTERM', 300)
  t.equal(exit.killed, true)
  t.equal(exit.signal, 'SIGKILL')
})
