import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { memoryOnly } from '../../../lib/engines/local/changes.js'
import { LocalEngine } from '../../../lib/engines/local/engine.js'
import { rotatedFileName, storeFileName } from '../../../lib/engines/local/files.js'
import { Journal } from '../../../lib/engines/local/journal.js'
import { snapshotText } from '../../../lib/engines/local/snapshot-file.js'
import { build, sys, testConfig } from '../../support/app.js'
import { tempDir } from '../../support/temp.js'

const OLD = { value: 'old', created_at: 1, updated_at: 1, size_bytes: 3, type: 'string' as const }

t.test('a project created again starts empty, whatever an earlier project of the same id left on disk', async t => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'storage_data'))
  // What a crash between a delete's config write and the removal of its files leaves behind.
  writeFileSync(storeFileName(join(dir, 'storage_data'), 'again'), snapshotText([['secret', OLD]]))
  writeFileSync(rotatedFileName(join(dir, 'storage_data'), 'again', 1), JSON.stringify({ op: 'set', key: 'other', record: OLD }) + '\n')
  writeFileSync(join(dir, 'config.json'), JSON.stringify(testConfig()))
  const { app } = await build(t, { dir })
  const created = await app.inject({ method: 'POST', url: '/api/v1/projects', headers: sys, payload: { id: 'again', authentication: { enabled: false } } })
  t.equal(created.statusCode, 201)
  const store = await app.inject({ method: 'GET', url: '/api/v1/projects/again/store' })
  t.same(store.json().data, {}, 'none of the old keys')
})

t.test('switching to disk over rotated journals left by a crash: they are removed, not replayed over the new snapshot', async t => {
  const dir = tempDir(t)
  writeFileSync(rotatedFileName(dir, 'p', 1), JSON.stringify({ op: 'set', key: 'ghost', record: OLD }) + '\n')
  const options = { durability: 'always' as const, maxBytes: 1 << 20 }
  const store = new LocalEngine('p', new Map(), memoryOnly, { persistenceFor: async onDisk => onDisk ? await Journal.create(dir, 'p', options) : memoryOnly })
  await store.set('kept', 1)
  await store.setPersistent(true)
  await store.close()
  t.notOk(readdirSync(dir).some(n => n.includes('.journal.')), 'no rotated journal is left')
  const opened = await Journal.open(dir, 'p', options)
  t.same([...opened.data.keys()], ['kept'], 'the reopened store holds only what the store held')
})
