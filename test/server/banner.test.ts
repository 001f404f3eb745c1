import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { formatBanner, type BannerInfo } from '../../cli/banner.js'
import type { KvConfig } from '../../lib/config.js'
import { verifyHash } from '../../lib/keys.js'
import { VERSION } from '../../lib/version.js'
import { PROJECT_KEY, testConfig, writeConfig } from '../support/app.js'
import { ServerProcess } from '../support/process.js'
import { tempDir } from '../support/temp.js'

const info: BannerInfo = {
  version: '9.8.7',
  url: 'http://0.0.0.0:23849',
  localUrl: 'http://127.0.0.1:23849',
  docs: true,
  configFile: '/srv/kv/config.json',
  dataDir: '/srv/kv/storage_data',
  systemAuth: true,
  projects: [
    { id: 'first_project', onDisk: true, auth: true, keys: 1234 },
    { id: 'cache', onDisk: false, auth: false, keys: 7 }
  ],
  generatedKeys: []
}

t.test('formatBanner lays out the facts, the table and a warning per open scope', async t => {
  t.equal(formatBanner(info), [
    '',
    '  Simple KV 9.8.7',
    '',
    '  Listening  http://0.0.0.0:23849  (on this machine: http://127.0.0.1:23849)',
    '  Docs       http://127.0.0.1:23849/docs',
    '  Config     /srv/kv/config.json',
    '  Data       /srv/kv/storage_data',
    '  System     key required',
    '',
    '  Project        Storage  Auth  Keys',
    '  first_project  disk     on    1234',
    '  cache          memory   OFF      7',
    '',
    "  !! WARNING: authentication is OFF for project 'cache': anyone who can reach this server can read and change its data.",
    '',
    ''
  ].join('\n'))
})

t.test('formatBanner: system scope open, no projects, new config, new keys, colour', async t => {
  const text = formatBanner({
    ...info,
    url: info.localUrl,
    docs: false,
    systemAuth: false,
    configCreated: true,
    projects: [],
    generatedKeys: [{ scope: 'system', id: 'system', key: 'k'.repeat(43) }]
  })
  t.match(text, '  Listening  http://127.0.0.1:23849\n')
  t.match(text, '  Docs       off (served by the host app)\n')
  t.match(text, '  Config     /srv/kv/config.json  (new: written with the defaults)\n')
  t.match(text, '  System     authentication OFF\n')
  t.match(text, '  No projects yet: create one with POST /api/v1/projects (system key).\n')
  t.match(text, '  !! WARNING: authentication is OFF for the system scope: anyone who can reach this server can create, change and delete projects.\n')
  t.match(text, `│ system key  ${'k'.repeat(43)}`)
  t.match(text, "  Use a key as: curl -H 'Authorization: Bearer <key>' http://127.0.0.1:23849/status\n")
  t.notMatch(text, '\x1b[', 'no colour unless asked')

  const coloured = formatBanner({ ...info, systemAuth: false }, { color: true })
  t.match(coloured, '\x1b[1;31m!!\x1b[39;22m')
  t.match(coloured, '\x1b[1;31mOFF\x1b[39;22m', 'the OFF cell is red')
  // Stripped of colour codes, the table lines up as without colour.
  // eslint-disable-next-line no-control-regex
  t.equal(coloured.replace(/\x1b\[[0-9;]*m/g, ''), formatBanner({ ...info, systemAuth: false }))
})

t.test('the server prints the banner and new keys once on stdout', async t => {
  const dir = tempDir(t)
  const config: KvConfig = testConfig(c => {
    c.server_host = '127.0.0.1'
    c.server_port = 0
    // No key yet for the system scope and for `fresh`: generated at start-up.
    c.system = { ...c.system, authentication: { enabled: true } }
    c.projects?.push(
      { id: 'cache', storage: { on_disk: false }, authentication: { enabled: false } },
      { id: 'fresh', authentication: { enabled: true } }
    )
  })
  const file = writeConfig(dir, config)
  // p1 starts with two keys, in the Simple-PyKV store format.
  mkdirSync(join(dir, 'storage_data'))
  const record = (value: string): object => ({ value, created_at: 1764992680, updated_at: 1764992680, size_bytes: value.length, type: 'string' })
  writeFileSync(join(dir, 'storage_data', 'p1_store.json'), JSON.stringify({ a: record('x'), b: record('y') }))

  const server = await ServerProcess.start(t, ['--config', file])
  const port = new URL(server.url).port
  const stdout = server.stdout
  const banner = stdout.slice(stdout.indexOf('\n  Simple KV '))
  const lines = banner.split('\n')
  t.ok(lines.includes(`  Simple KV ${VERSION}`), 'version')
  t.ok(lines.includes(`  Listening  http://127.0.0.1:${port}`), 'listening URL')
  t.ok(lines.includes(`  Docs       http://127.0.0.1:${port}/docs`), 'docs URL')
  t.ok(lines.includes(`  Config     ${file}`), 'config file')
  t.ok(lines.includes(`  Data       ${join(dir, 'storage_data')}`), 'data folder')
  t.ok(lines.includes('  System     key required'))
  t.ok(lines.includes('  Project  Storage  Auth  Keys'), 'table header')
  t.ok(lines.includes('  p1       disk     on       2'), 'p1 row counts its keys')
  t.ok(lines.includes('  cache    memory   OFF      0'))
  t.ok(lines.includes('  fresh    disk     on       0'))
  t.ok(lines.includes("  !! WARNING: authentication is OFF for project 'cache': anyone who can reach this server can read and change its data."))
  t.equal(lines.filter(l => l.includes('WARNING')).length, 1, 'one warning: only cache is open')

  const keys = new Map([...banner.matchAll(/^│ (system key|project '[^']+')\s+([A-Za-z0-9_-]{43})\s*│$/gm)].map(m => [m[1], m[2]]))
  t.same([...keys.keys()], ['system key', "project 'fresh'"], 'the two generated keys, in a box')
  const saved = JSON.parse(readFileSync(file, 'utf8')) as KvConfig
  t.ok(await verifyHash(saved.system?.authentication?.api_key_hash as string, keys.get('system key') as string), 'the printed system key is the saved one')
  t.ok(await verifyHash(saved.projects?.[2].authentication?.api_key_hash as string, keys.get("project 'fresh'") as string))
  for (const key of keys.values()) {
    t.equal(stdout.split(key).length - 1, 1, 'each key printed exactly once')
    t.notOk(server.stderr.includes(key), 'and never on stderr')
  }
  t.notOk(stdout.includes(PROJECT_KEY), 'keys already in the config are not printed')
  // Nothing is coloured when stdout is not a terminal.
  t.notMatch(stdout, '\x1b[')

  const res = await fetch(`${server.url}/health`)
  t.equal(res.status, 200, 'and the server answers at the URL the banner gave')
  t.equal((await server.stop()).code, 0)
})
