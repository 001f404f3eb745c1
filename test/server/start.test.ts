import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { testConfig, writeConfig } from '../support/app.js'
import { runCli } from '../support/process.js'
import { tempDir } from '../support/temp.js'

t.test('a port already in use: one clear line, exit 1', async t => {
  const blocker = createServer()
  await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { blocker.close() })
  const address = blocker.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const dir = tempDir(t)
  const file = writeConfig(dir, testConfig(c => { c.server_host = '127.0.0.1'; c.server_port = port }))
  const res = await runCli(t, ['--config', file])
  t.equal(res.code, 1)
  t.equal(res.stderr, `simple-kv: cannot listen on 127.0.0.1:${port}: the address is already in use\n`)
  t.notMatch(res.stdout, 'Listening', 'no banner')
})

t.test('an invalid config stops start-up naming the file and the field, and is left as it was', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'config.json')
  const text = JSON.stringify({ server_port: 'high' })
  writeFileSync(file, text)
  const res = await runCli(t, ['--config', file])
  t.equal(res.code, 1)
  t.match(res.stderr, new RegExp(`^simple-kv: Config file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*server_port`))
  t.equal(res.stderr.split('\n').length, 2, 'one line')
  t.equal(readFileSync(file, 'utf8'), text)
})
