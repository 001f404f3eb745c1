import { readdirSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { journalFileName, storeFileName } from '../../../lib/engines/local/files.js'
import { Journal } from '../../../lib/engines/local/journal.js'
import { LocalEngine } from '../../../lib/engines/local/engine.js'
import { snapshotText } from '../../../lib/engines/local/snapshot-file.js'
import { tempDir } from '../../support/temp.js'

const ID = 'p'

/** The files of the project, without any other file the engine keeps beside its store. */
function storeFiles (dir: string): string[] {
  return readdirSync(dir).filter(n => n.startsWith(`${ID}_store.json`) || n.startsWith(`${ID}_store.journal`)).sort()
}

for (const [name, journal] of [['an empty journal', ''], ['a journal holding only a torn line', '{"op":"set","key":"a","rec']] as const) {
  t.test(`a clean close after a crash that left ${name} leaves the snapshot alone`, async t => {
    const dir = tempDir(t)
    writeFileSync(storeFileName(dir, ID), snapshotText([['a', { value: 'A', created_at: 1, updated_at: 1, size_bytes: 1, type: 'string' }]]))
    writeFileSync(journalFileName(dir, ID), journal)
    const opened = await Journal.open(dir, ID, { durability: 'always', maxBytes: 1 << 20 })
    const store = new LocalEngine(ID, opened.data, opened.persistence)
    t.equal((await store.get('a'))?.value, 'A')
    await store.close()
    t.same(storeFiles(dir), [`${ID}_store.json`], 'one file holds the store after a clean stop')
  })
}
