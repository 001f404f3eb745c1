import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigStore, configError, defaultConfig, resolveConfigPath } from '../../lib/config.js'
import { ConfigError } from '../../lib/errors.js'
import { configJsonSchema } from '../../schemas/json-schema.js'
import { build, testConfig } from '../support/app.js'
import { tempDir } from '../support/temp.js'

t.test('a missing config file is created with the defaults, mode 0600', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'config.json')
  const { store, created } = await ConfigStore.load(file)
  t.equal(created, true)
  t.same(JSON.parse(readFileSync(file, 'utf8')), defaultConfig())
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.equal(store.settings.port, 23849)
  t.equal(store.settings.host, '127.0.0.1')
  t.equal(store.settings.storageDir, join(dir, 'storage_data'), 'storage path is relative to the config folder')
  t.same(store.project('first_project'), defaultConfig().projects![0])
})

t.test('a config file in a folder that does not exist: the folder is made, private', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'new', 'deeper', 'config.json')
  const { created } = await ConfigStore.load(file)
  t.equal(created, true)
  t.equal(statSync(join(dir, 'new', 'deeper')).mode & 0o777, 0o700)
  t.equal(statSync(file).mode & 0o777, 0o600)
})

t.test('a config folder that cannot be made is refused with a message naming it', async t => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'a-file'), '')
  const err = await ConfigStore.load(join(dir, 'a-file', 'sub', 'config.json')).then(() => null, (e: unknown) => e)
  t.ok(err instanceof ConfigError, 'a ConfigError (the CLI prints its message and exits 1)')
  t.match((err as Error).message, `Cannot create folder ${join(dir, 'a-file', 'sub')} for config file`)
})

t.test('invalid files stop loading, name the field and the file, and stay untouched', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'config.json')
  const cases: Array<[string, RegExp]> = [
    ['{not json', /not valid JSON/],
    [JSON.stringify({ server_port: 'x' }), /server_port/],
    [JSON.stringify({ server_port: 70000 }), /server_port/],
    [JSON.stringify({ projects: [{ id: '../etc' }] }), /projects\[0\]\.id/],
    [JSON.stringify({ projects: [{ id: 'a' }, { id: 'a' }] }), /duplicate project id 'a'/],
    [JSON.stringify({ projects: [{ id: 'a', storage: { on_disk: 'yes' } }] }), /projects\[0\]\.storage\.on_disk/],
    [JSON.stringify({ system: { authentication: { api_key_hash: 'bcrypt$xyz' } } }), /system\.authentication\.api_key_hash/],
    [JSON.stringify({ system: { unknown: 1 } }), /Unknown field 'system\.unknown'/],
    [JSON.stringify({ surprise: true }), /Unknown field 'surprise'/],
    [JSON.stringify([]), /Config file/]
  ]
  for (const [text, pattern] of cases) {
    writeFileSync(file, text)
    const err = await ConfigStore.load(file).then(() => null, (e: unknown) => e)
    t.type(err, ConfigError, text)
    t.match((err as Error).message, pattern)
    t.match((err as Error).message, file, 'names the file')
    t.equal(readFileSync(file, 'utf8'), text, 'file untouched')
  }
})

t.test('Simple-PyKV legacy fields are accepted', async t => {
  t.equal(configError({
    version: 1,
    server_port: 23849,
    server_host: '0.0.0.0',
    system: { storage: { persistent_file_path: 'storage_data' }, authentication: { enabled: true, save_api_key_to_config: false, api_key: null, api_key_hash: null } },
    projects: [{ id: 'first_project', storage: { on_disk: true, cache_in_memory: true }, authentication: { enabled: true, api_key: null, api_key_hash: null } }]
  }), null)
})

t.test('an app on an invalid config fails to start and leaves the file as it was', async t => {
  const dir = tempDir(t)
  const text = JSON.stringify({ projects: [{ id: 'p', storage: 5 }] })
  writeFileSync(join(dir, 'config.json'), text)
  await t.rejects(build(t, { dir }), /projects\[0\]\.storage/)
  t.equal(readFileSync(join(dir, 'config.json'), 'utf8'), text)
})

t.test('update() validates the whole result and changes nothing when invalid', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'config.json')
  writeFileSync(file, JSON.stringify(testConfig()))
  const { store } = await ConfigStore.load(file)
  const before = readFileSync(file, 'utf8')
  await t.rejects(store.update(c => { (c.projects![0] as any).storage = 'bad' }), ConfigError)
  t.equal(readFileSync(file, 'utf8'), before)
  t.equal(store.project('p1')?.storage?.on_disk, true)
  await store.update(c => { c.server_port = 1234 })
  t.equal(JSON.parse(readFileSync(file, 'utf8')).server_port, 1234)
  t.equal(statSync(file).mode & 0o777, 0o600)
})

t.test('config path: explicit, else SIMPLE_KV_CONFIG, else ./config.json', async t => {
  t.equal(resolveConfigPath('/a/b.json', {}), '/a/b.json')
  t.equal(resolveConfigPath(undefined, { SIMPLE_KV_CONFIG: '/env/c.json' }), '/env/c.json')
  t.equal(resolveConfigPath(undefined, {}), join(process.cwd(), 'config.json'))
})

t.test('config.schema.json is the generated schema (run npm run gen:config-schema)', async t => {
  const committed = JSON.parse(readFileSync(new URL('../../config.schema.json', import.meta.url), 'utf8'))
  t.same(committed, configJsonSchema())
})

t.test('a config object can be served without a file', async t => {
  const dir = tempDir(t)
  const store = ConfigStore.fromObject(testConfig(), dir)
  t.equal(store.file, null)
  await store.update(c => { c.server_port = 1 })
  t.equal(store.config.server_port, 1)
  t.throws(() => ConfigStore.fromObject({ bad: 1 }, dir), ConfigError)
})
