import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { StorageError } from '../../../lib/errors.js'
import { entriesCopy, readSnapshot, snapshotText, writeSnapshotAtomic } from '../../../lib/engines/local/snapshot-file.js'
import { makeRecord, recordFromFile, type JsonValue, type KvRecord } from '../../../lib/record.js'
import { tempDir } from '../../support/temp.js'

const AT = 1764992680

function rec (value: JsonValue, created = AT, updated = created): KvRecord {
  return { ...makeRecord(value, undefined, undefined, created), updated_at: updated }
}

/** What whole-file JSON.parse makes of a store file (the reading before the line reader), in file order where JSON keeps it. */
function reference (text: string): Map<string, KvRecord> {
  const parsed = JSON.parse(text) as Record<string, unknown>
  const out = new Map<string, KvRecord>()
  for (const [key, raw] of Object.entries(parsed)) out.set(key, recordFromFile(raw) as KvRecord)
  return out
}

/** Entries in key order, so a Map read line by line compares with JSON's own key order. */
function sorted (data: Map<string, KvRecord>): Array<[string, KvRecord]> {
  return [...data].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}

async function load (dir: string, text: string | Buffer, name = 'p_store.json'): Promise<Map<string, KvRecord>> {
  const file = join(dir, name)
  writeFileSync(file, text)
  return await readSnapshot(file)
}

async function failure (file: string): Promise<StorageError> {
  const err = await readSnapshot(file).then(() => null, (e: unknown) => e)
  if (!(err instanceof StorageError)) throw new Error(`expected a StorageError, got ${String(err)}`)
  return err
}

const awkwardKeys = ['plain', 'with "quotes"', 'back\\slash', 'ends with backslash\\', '\\"', 'ünïcödé ✓ 日本語', '😀 emoji', '__proto__', 'constructor', '": {"value":"x"}', 'tab\there', 'new\nline', '', ' ', '12', '0', 'line\u2028sep']

t.test('our one-record-per-line format is read line by line into the same records, in file order', async t => {
  const dir = tempDir(t)
  const entries: Array<[string, KvRecord]> = awkwardKeys.map((key, i) => [key, rec(`value ${i} ${key}`, AT + i, AT + 2 * i)])
  entries.push(['number', rec(42)], ['object', rec({ a: [1, 'two', null], b: { c: true } })], ['array', rec([1, 2, 3])],
    ['null', rec(null)], ['bool', rec(false)], ['big', rec('x'.repeat(3 << 20))], ['empty string', rec('')],
    ['non-ascii value', rec('größe ✓ 😀')], ['escaped value', rec('quote " backslash \\ newline \n tab \t nul \u0000')])
  const text = snapshotText(entries)
  const data = await load(dir, text)
  t.equal(data.size, entries.length)
  t.strictSame([...data], entries, 'every record as written, in the order of the file')
  t.strictSame(sorted(data), sorted(reference(text)), 'the same records as parsing the whole file')
  t.equal(data.get('__proto__')?.value, 'value 7 __proto__', '__proto__ is an ordinary key')
  t.equal(data.get('non-ascii value')?.size_bytes, Buffer.byteLength('größe ✓ 😀'), 'size_bytes counts UTF-8 bytes')
  t.equal(data.get('big')?.size_bytes, 3 << 20, 'a line longer than one read')
})

t.test('records are made from the file as recordFromFile makes them: type derived, size recounted, times floored or defaulted', async t => {
  const dir = tempDir(t)
  const lines = [
    '  "a": {"value":"A","created_at":100,"updated_at":200,"size_bytes":999,"type":"number"},',
    '  "b": {"value":"B","created_at":100.7,"updated_at":2e2,"size_bytes":1,"type":"string"},',
    '  "c": {"value":"C"},',
    '  "d": {"type":"string","value":"D","updated_at":5,"created_at":4,"size_bytes":1},',
    '  "e": {"value":"E","created_at":0,"updated_at":00,"size_bytes":1,"type":"string"}'
  ]
  // "00" is not JSON: that line is not a record line, and the whole file is not valid JSON either.
  const bad = `{\n${lines.join('\n')}\n}\n`
  const err = await load(dir, bad).then(() => null, (e: unknown) => e)
  t.match((err as Error).message, /line 6 is not valid JSON/)
  lines[4] = '  "e": {"value":"E","created_at":0,"updated_at":0,"size_bytes":1,"type":"string"}'
  const text = `{\n${lines.join('\n')}\n}\n`
  const data = await load(dir, text)
  t.strictSame(sorted(data).filter(([k]) => k !== 'c'), sorted(reference(text)).filter(([k]) => k !== 'c'))
  t.strictSame(data.get('a'), { value: 'A', created_at: 100, updated_at: 200, size_bytes: 1, type: 'string' })
  t.strictSame(data.get('b'), { value: 'B', created_at: 100, updated_at: 200, size_bytes: 1, type: 'string' })
  t.equal(data.get('c')?.type, 'string')
  t.equal(data.get('c')?.created_at, data.get('c')?.updated_at, 'missing times default to now')
  t.strictSame(data.get('d'), { value: 'D', created_at: 4, updated_at: 5, size_bytes: 1, type: 'string' })
  t.strictSame(data.get('e'), { value: 'E', created_at: 0, updated_at: 0, size_bytes: 1, type: 'string' })
})

t.test('Simple-PyKV\'s indented file (indent=2, no "type") and other layouts of the same JSON still load', async t => {
  const dir = tempDir(t)
  const py = {
    greeting: { value: 'hello', created_at: 1764992680, updated_at: 1765075342, size_bytes: 5 },
    'ünï "q"': { value: { nested: [1, 2] }, created_at: 1764992681, updated_at: 1764992681, size_bytes: 15 },
    ['__proto__']: { value: 3, created_at: 1, updated_at: 2, size_bytes: 1 }
  }
  const pyText = JSON.stringify(py, null, 2)
  t.match(pyText, '\n  "__proto__": {\n    "value": 3,')
  for (const [name, text] of [['indent=2', pyText], ['indent=4', JSON.stringify(py, null, 4)], ['one line', JSON.stringify(py)], ['CRLF', pyText.replace(/\n/g, '\r\n')]]) {
    const data = await load(dir, text)
    t.strictSame(sorted(data), sorted(reference(text)), name)
    t.strictSame(data.get('greeting'), { value: 'hello', created_at: 1764992680, updated_at: 1765075342, size_bytes: 5, type: 'string' }, name)
    t.equal(data.get('ünï "q"')?.type, 'object', name)
  }
  // Our own layout, but CRLF line ends (edited on another system): also read whole.
  const ours = snapshotText([['a', rec('A')], ['b', rec('B')]]).replace(/\n/g, '\r\n')
  t.strictSame([...await load(dir, ours)], [['a', rec('A')], ['b', rec('B')]])
  // Two records on one line inside our layout.
  const two = '{\n  "a": {"value":"A","created_at":1,"updated_at":1}, "b": {"value":"B","created_at":1,"updated_at":1},\n  "c": {"value":"C","created_at":1,"updated_at":1}\n}\n'
  t.strictSame([...(await load(dir, two)).keys()], ['a', 'b', 'c'])
})

t.test('empty stores: {} on one line or two, a missing file', async t => {
  const dir = tempDir(t)
  for (const text of ['{}', '{}\n', '{\n}\n', '{\n}', ' {} \n', '{\n}\n\n  \n']) {
    const data = await load(dir, text)
    t.equal(data.size, 0, JSON.stringify(text))
  }
  t.equal((await readSnapshot(join(dir, 'missing_store.json'))).size, 0)
  t.equal(snapshotText([]), '{}\n')
})

t.test('a corrupt line in our format stops the read naming the file and the line; the file is left untouched', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'p_store.json')
  const good = snapshotText([['a', rec('A')], ['b', rec('B')], ['c', rec('C')], ['d', rec('D')]]).split('\n')
  const cases: Array<[string, RegExp]> = []
  const broken = [...good]
  broken[2] = '  "b": {"value":"B","created_at":1764992680,"updated_at":1764992680,"size_bytes":1,"type":"string"'
  cases.push([broken.join('\n'), /line 3 is not valid JSON/])
  const noComma = [...good]
  noComma[2] = noComma[2].slice(0, -1)
  cases.push([noComma.join('\n'), /line 4 is not valid JSON/])
  cases.push([good.slice(0, 3).join('\n') + '\n', /line 4 is not valid JSON \(the file ends before its closing "}"\)/])
  cases.push([good.join('\n') + 'junk\n', /line 7 is not valid JSON \(text after the closing "}"\)/])
  cases.push([good.join('\n').replace('"value":"C"', '"value":"C\tD"'), /line 4 is not valid JSON/])
  cases.push([good.join('\n').replace('"d": {"value":"D"', '"d": {"walue":"D"'), /line 5: entry "d" is not a record with a "value"/])
  cases.push([good.join('\n').replace('"d": {"value":"D","created_at":1764992680,"updated_at":1764992680,"size_bytes":1,"type":"string"}', '"d": 5'), /line 5: entry "d" is not a record/])
  cases.push(['{\n  "a": {"value": 1}, \n', /is not valid JSON/])
  cases.push(['[1]', /does not hold a JSON object/])
  cases.push(['', /is not valid JSON/])
  cases.push(['\uFEFF' + good.join('\n'), /is not valid JSON/])
  for (const [text, reason] of cases) {
    writeFileSync(file, text)
    const err = await failure(file)
    t.match(err.message, file, 'names the file')
    t.match(err.message, reason)
    t.match(err.message, /left untouched/)
    t.equal(readFileSync(file, 'utf8'), text, 'the file is unchanged')
  }
})

t.test('invalid UTF-8 is read as whole-file decoding reads it (replacement characters), on both paths', async t => {
  const dir = tempDir(t)
  const bytes = Buffer.concat([Buffer.from('{\n  "a": {"value":"x'), Buffer.from([0xff, 0xfe]), Buffer.from('y","created_at":1,"updated_at":1,"size_bytes":4,"type":"string"}\n}\n')])
  const data = await load(dir, bytes)
  t.strictSame(sorted(data), sorted(reference(bytes.toString('utf8'))))
  t.equal(data.get('a')?.value, 'x\uFFFD\uFFFDy')
  t.equal(data.get('a')?.size_bytes, 8)
})

t.test('writeSnapshotAtomic and entriesCopy: what is written reads back the same, over many chunks', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'p_store.json')
  const data = new Map<string, KvRecord>()
  for (let i = 0; i < 2500; i++) data.set(`k${i}`, rec(i % 3 === 0 ? `v${i}` : { i }, AT + i))
  const copy = entriesCopy(data)
  data.set('later', rec('not in the copy'))
  data.delete('k0')
  const written = await writeSnapshotAtomic(file, copy)
  const text = readFileSync(file, 'utf8')
  t.equal(written.bytes, Buffer.byteLength(text))
  const back = await readSnapshot(file)
  t.equal(back.size, 2500)
  t.notOk(back.has('later'))
  t.ok(back.has('k0'))
  data.delete('later')
  data.set('k0', rec('v0', AT))
  t.strictSame([...back], [...data].sort(([a], [b]) => Number(a.slice(1)) - Number(b.slice(1))))
  t.equal(text, snapshotText(copy), 'the same text as snapshotText')
  await writeSnapshotAtomic(file, new Map())
  t.equal(readFileSync(file, 'utf8'), '{}\n')
})

t.test('any store read line by line equals the whole-file reading (property)', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'p_store.json')
  const time = fc.oneof(fc.integer({ min: 0, max: 4e9 }), fc.double({ min: 0, max: 4e9, noNaN: true }))
  const record = fc.record({ value: fc.oneof(fc.string({ unit: 'binary' }), fc.jsonValue() as fc.Arbitrary<JsonValue>), created_at: time, updated_at: time })
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.string({ unit: 'binary' }), record), { maxLength: 30 }), async (pairs) => {
    const entries = pairs.map(([k, r]): [string, KvRecord] => [k, recordFromFile(r) as KvRecord])
    const text = snapshotText(entries)
    writeFileSync(file, text)
    const data = await readSnapshot(file)
    return isDeepStrictEqual(sorted(data), sorted(reference(text)))
  }), { numRuns: 200 })
  t.pass('200 random stores read the same both ways')
})

t.test('version, expires_at and tag are kept, on the line reader and the whole-file reading alike; ill-formed ones are ignored', async t => {
  const dir = t.testdir()
  const head = '"created_at":1,"updated_at":2,"size_bytes":1,"type":"string"'
  const lines = [
    `  "ours": {"value":"A",${head},"version":7,"expires_at":1764992680123},`,
    `  "never": {"value":"B",${head},"version":0,"expires_at":null},`,
    `  "version only": {"value":"C",${head},"version":12},`,
    `  "expiry only": {"value":"D",${head},"expires_at":5},`,
    `  "other order": {"expires_at":9,"version":3,"value":"E",${head}},`,
    `  "negative": {"value":"F",${head},"version":-4,"expires_at":-1},`,
    `  "ill-formed": {"value":"G",${head},"version":1.5,"expires_at":"soon","tag":"has space"},`,
    `  "fraction": {"value":"I",${head},"version":8,"expires_at":1764992680.125,"tag":"E.8.ab_-"},`,
    `  "tagged": {"value":"J",${head},"version":9,"expires_at":null,"tag":"Ep0ch-_x.9.Zz09"},`,
    `  "tag only": {"value":"K",${head},"tag":"t"},`,
    `  "escaped tag": {"value":"L",${head},"version":1,"expires_at":null,"tag":"a\\u002eb"},`,
    `  "bad tags": {"value":"M",${head},"version":1,"expires_at":null,"tag":""},`,
    `  "long tag": {"value":"N",${head},"version":1,"expires_at":null,"tag":"${'x'.repeat(129)}"},`,
    `  "longest tag": {"value":"O",${head},"version":1,"expires_at":null,"tag":"${'y'.repeat(128)}"},`,
    `  "tag not a string": {"value":"P",${head},"version":1,"expires_at":null,"tag":5},`,
    `  "tag before": {"value":"Q",${head},"tag":"x.1","version":1,"expires_at":null},`,
    `  "too big": {"value":"H",${head},"version":12345678901234567,"expires_at":1e3},`,
    `  "object": {"value":{"n":1},${head},"version":2,"expires_at":null}`
  ]
  const text = `{\n${lines.join('\n')}\n}\n`
  const data = await load(dir, text)
  t.strictSame(sorted(data), sorted(reference(text)), 'the same records as parsing the whole file')
  const base = { created_at: 1, updated_at: 2, size_bytes: 1, type: 'string' }
  t.strictSame(data.get('ours'), { value: 'A', ...base, version: 7, expires_at: 1764992680123 })
  t.strictSame(data.get('never'), { value: 'B', ...base, version: 0, expires_at: null })
  t.strictSame(data.get('version only'), { value: 'C', ...base, version: 12 })
  t.strictSame(data.get('expiry only'), { value: 'D', ...base, expires_at: 5 })
  t.strictSame(data.get('other order'), { value: 'E', ...base, version: 3, expires_at: 9 })
  t.strictSame(data.get('negative'), { value: 'F', ...base, expires_at: -1 }, 'a negative number is not a version')
  t.strictSame(data.get('ill-formed'), { value: 'G', ...base }, 'a fraction is not a version, a string not an expiry, a space not in a tag')
  t.strictSame(data.get('fraction'), { value: 'I', ...base, version: 8, expires_at: 1764992680.125, tag: 'E.8.ab_-' }, 'expiry in fractional seconds')
  t.strictSame(data.get('tagged'), { value: 'J', ...base, version: 9, expires_at: null, tag: 'Ep0ch-_x.9.Zz09' })
  t.strictSame(data.get('tag only'), { value: 'K', ...base, tag: 't' })
  t.strictSame(data.get('escaped tag'), { value: 'L', ...base, version: 1, expires_at: null, tag: 'a.b' }, 'an escape in a tag is read as JSON reads it')
  t.strictSame(data.get('bad tags'), { value: 'M', ...base, version: 1, expires_at: null }, 'an empty tag is no tag')
  t.strictSame(data.get('long tag'), { value: 'N', ...base, version: 1, expires_at: null }, 'a tag past 128 characters is no tag')
  t.strictSame(data.get('longest tag'), { value: 'O', ...base, version: 1, expires_at: null, tag: 'y'.repeat(128) })
  t.strictSame(data.get('tag not a string'), { value: 'P', ...base, version: 1, expires_at: null })
  t.strictSame(data.get('tag before'), { value: 'Q', ...base, version: 1, expires_at: null, tag: 'x.1' })
  t.strictSame(data.get('too big'), { value: 'H', ...base, expires_at: 1000 }, 'past 2^53 is not a version')
  t.strictSame(data.get('object'), { value: { n: 1 }, created_at: 1, updated_at: 2, size_bytes: 7, type: 'object', version: 2, expires_at: null })

  // Written back, they read the same again, and so does Simple-PyKV's indented layout of the same records.
  const again = await load(dir, snapshotText(data))
  t.strictSame([...again], [...data])
  const indented = JSON.stringify(Object.fromEntries(data), null, 2)
  t.strictSame(sorted(await load(dir, indented)), sorted(data))
})

t.test('records with any version and expires_at read line by line equal the whole-file reading (property)', async t => {
  const dir = t.testdir()
  const file = join(dir, 'p_store.json')
  const number = fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant(1e21))
  const record = fc.record({
    value: fc.oneof(fc.string(), fc.jsonValue() as fc.Arbitrary<JsonValue>),
    created_at: fc.integer({ min: 0, max: 4e9 }),
    updated_at: fc.integer({ min: 0, max: 4e9 }),
    version: number,
    expires_at: fc.oneof(fc.constant(null), number),
    tag: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._-]{1,130}$/), fc.string(), fc.constant(''), fc.integer())
  }, { requiredKeys: ['value', 'created_at', 'updated_at'] })
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.string(), record), { maxLength: 20 }), async (pairs) => {
    // Each line as a newer writer would put it: the record's own fields in the order given.
    const lines = pairs.map(([k, r]) => `  ${JSON.stringify(k)}: ${JSON.stringify({ ...recordFromFile(r), ...r })}`)
    const text = lines.length === 0 ? '{}\n' : `{\n${lines.join(',\n')}\n}\n`
    writeFileSync(file, text)
    const data = await readSnapshot(file)
    return isDeepStrictEqual(sorted(data), sorted(reference(text)))
  }), { numRuns: 200 })
  t.pass('200 random stores with versions, expiries and tags read the same both ways')
})

/** Calls of JSON.parse while `fn` runs. */
async function jsonParses (fn: () => Promise<unknown>): Promise<number> {
  const parse = JSON.parse
  let calls = 0
  JSON.parse = (...args: Parameters<typeof JSON.parse>) => { calls++; return parse(...args) as unknown }
  try {
    await fn()
  } finally {
    JSON.parse = parse
  }
  return calls
}

t.test('a store file as the engine writes it (version, expires_at, tag on every record) is read line by line without JSON.parse', async t => {
  const dir = t.testdir()
  const file = join(dir, 'p_store.json')
  const entries: Array<[string, KvRecord]> = []
  for (let i = 0; i < 3000; i++) {
    const expiresAt = i % 3 === 0 ? null : i % 3 === 1 ? 4102444800 + i : 0
    entries.push([`key ${i} ✓`, makeRecord(`value ${i} ünï`, undefined, { version: i, expiresAt, tag: `Ep0ch_-x.${i.toString(36)}.a-_${i % 10}` }, AT + i)])
  }
  const text = snapshotText(entries)
  t.match(text, /"version":1,"expires_at":4102444801,"tag":"Ep0ch_-x\.1\.a-_1"\}/)
  writeFileSync(file, text)
  let data = new Map<string, KvRecord>()
  t.equal(await jsonParses(async () => { data = await readSnapshot(file) }), 0, 'no line went the general way')
  t.strictSame([...data], entries, 'every record as written')
  t.strictSame(sorted(data), sorted(reference(text)), 'the same records as parsing the whole file')

  // A fractional expiry (a TTL in milliseconds) goes the general way, for that line only, with the same result.
  const fractional = snapshotText([...entries.slice(0, 10), ['f', makeRecord('F', undefined, { version: 5, expiresAt: 4102444800.123, tag: 'e.5.abcd' }, AT)]])
  writeFileSync(file, fractional)
  t.equal(await jsonParses(async () => { data = await readSnapshot(file) }), 2, 'one line: its key and its record')
  t.strictSame(sorted(data), sorted(reference(fractional)))
  t.equal(data.get('f')?.expires_at, 4102444800.123)
})
