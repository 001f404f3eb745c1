import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { PROJECT_KEY, SYSTEM_KEY, testConfig, writeConfig } from '../support/app.js'
import { type Exit, runInTerminal, ServerProcess } from '../support/process.js'
import { tempDir } from '../support/temp.js'

/** The stdout lines that are JSON log records (the banner is plain text between them). */
function records (stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
}

/** A few requests carrying a key in each header the server reads it from. */
async function traffic (url: string): Promise<void> {
  const calls: Array<[string, Record<string, string>, number]> = [
    ['/health', { authorization: 'Bearer not-a-real-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaa' }, 200],
    ['/status', { 'x-api-key': SYSTEM_KEY }, 200],
    ['/api/v1/projects/p1?secret=query-text', { 'api-key': PROJECT_KEY }, 200],
    ['/nowhere', { authorization: `Bearer ${PROJECT_KEY}` }, 404]
  ]
  for (const [path, headers, status] of calls) {
    const res = await fetch(url + path, { headers })
    await res.arrayBuffer()
    if (res.status !== status) throw new Error(`${path}: ${res.status}`)
  }
}

async function runWith (t: Test, args: string[], verbose = false): Promise<Exit> {
  const dir = tempDir(t)
  const file = writeConfig(dir, testConfig(c => {
    c.server_port = 0
    if (verbose) c.system = { ...c.system, debugging: { verbose_mode: true } }
  }))
  const server = await ServerProcess.start(t, ['--config', file, ...args])
  await traffic(server.url)
  return await server.stop()
}

t.test('stdout that is not a terminal gets JSON lines, no request lines at info', async t => {
  const exit = await runWith(t, [])
  t.equal(exit.code, 0)
  const logs = records(exit.stdout)
  const listening = logs.find(r => typeof r.msg === 'string' && r.msg.startsWith('Server listening at http://127.0.0.1:'))
  t.ok(listening, 'the listen line is a JSON record')
  t.equal(listening?.level, 30)
  t.ok(logs.some(r => r.msg === 'stopped: stores flushed and closed'))
  t.notOk(logs.some(r => r.path !== undefined), 'no per-request lines at info level')
  t.match(exit.stdout, /\n {2}Simple KV /, 'the banner is there too')
})

t.test('--log-level debug logs each request with method, path, status and time, never a key', async t => {
  const exit = await runWith(t, ['--log-level', 'debug'])
  t.equal(exit.code, 0)
  const requests = records(exit.stdout).filter(r => r.path !== undefined)
  t.same(requests.map(r => [r.level, r.method, r.path, r.status]), [
    [20, 'GET', '/health', 200],
    [20, 'GET', '/status', 200],
    [20, 'GET', '/api/v1/projects/p1', 200],
    [20, 'GET', '/nowhere', 404]
  ])
  for (const r of requests) {
    t.type(r.ms, 'number')
    t.equal(r.msg, `${r.method as string} ${r.path as string} ${r.status as number} ${r.ms as number}ms`)
  }
  const all = exit.stdout + exit.stderr
  for (const secret of [SYSTEM_KEY, PROJECT_KEY, 'not-a-real-key', 'query-text']) t.notOk(all.includes(secret), `no ${secret.slice(0, 14)}… in the output`)
})

t.test('verbose_mode in the config turns the request lines on', async t => {
  const exit = await runWith(t, [], true)
  t.equal(exit.code, 0)
  t.equal(records(exit.stdout).filter(r => r.path !== undefined).length, 4)
  t.notOk((exit.stdout + exit.stderr).includes(PROJECT_KEY))
})

t.test('--log-format pretty gives readable lines, uncoloured off a terminal', async t => {
  const exit = await runWith(t, ['--log-format', 'pretty', '--log-level', 'debug'])
  t.equal(exit.code, 0)
  t.same(records(exit.stdout), [], 'no JSON records')
  t.match(exit.stdout, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Server listening at http:\/\/127\.0\.0\.1:\d+$/m)
  t.match(exit.stdout, /^\[\d\d:\d\d:\d\d\.\d{3}\] DEBUG: \[req-\w+\] GET \/status 200 [\d.]+ms$/m)
  t.notMatch(exit.stdout, '\x1b[')
  t.notOk((exit.stdout + exit.stderr).includes(SYSTEM_KEY))
})

t.test('on a terminal: coloured pretty logs and banner, chosen automatically; Ctrl-C stops it cleanly', async t => {
  const dir = tempDir(t)
  const file = writeConfig(dir, testConfig(c => { c.server_port = 0 }))
  const term = runInTerminal(t, ['--config', file])
  const until = Date.now() + 30_000
  while (!term.output().includes('Keys') && Date.now() < until) await sleep(50)
  term.interrupt()
  const exit = await term.exited
  t.equal(exit.code, 0, 'script reports the server exited 0')
  const shown = term.output()
  // eslint-disable-next-line no-control-regex -- the ANSI colour codes are what is checked
  t.match(shown, /\[\d\d:\d\d:\d\d\.\d{3}\] \x1b\[32mINFO\x1b\[39m: \x1b\[36mServer listening at http:\/\/127\.0\.0\.1:\d+/, 'pretty, coloured log line')
  t.match(shown, '\x1b[1m\x1b[36mSimple KV\x1b[39m\x1b[22m', 'coloured banner')
  t.match(shown, 'shutting down')
  t.match(shown, 'stopped: stores flushed and closed')
  t.notMatch(shown, /^\{"level"/m, 'no JSON lines')
})
