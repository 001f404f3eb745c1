import { open, readFile, type FileHandle } from 'node:fs/promises'
import { StorageError } from '../../errors.js'
import { replaceFileAtomic } from '../../fsutil.js'
import { nowSeconds, recordFromFile, sizeBytes, type KvRecord } from '../../record.js'
import { readLineBlocks } from './lines.js'

/**
 * The store file in Simple-PyKV's format, one record per line so a person can
 * read and diff it: `{ "<key>": <record>, … }`.
 */
export function snapshotText (entries: Iterable<readonly [string, KvRecord]>): string {
  const lines: string[] = []
  for (const [key, record] of entries) lines.push(snapshotLine(key, record))
  return lines.length === 0 ? '{}\n' : `{\n${lines.join(',\n')}\n}\n`
}

function snapshotLine (key: string, record: KvRecord): string {
  return `  ${JSON.stringify(key)}: ${JSON.stringify(record)}`
}

/** What follows a key or a field in the common record line (see LineLoader). */
const VALUE_OPEN = Buffer.from('": {"value":"')
const CREATED = Buffer.from('","created_at":')
const UPDATED = Buffer.from(',"updated_at":')
const SIZE = Buffer.from(',"size_bytes":')
const TYPE = Buffer.from(',"type":"')
const VERSION = Buffer.from(',"version":')
const EXPIRES = Buffer.from(',"expires_at":')
const TAG = Buffer.from(',"tag":"')
const NULL = Buffer.from('null')

/** The longest tag recordFromFile keeps. */
const MAX_TAG = 128

/** Whether the last string plainStringEnd() went over was all ASCII. */
let plainAscii = true

/**
 * Where the JSON string starting at `start` (after its quote) ends, when it
 * has no escape and no control character; else -1. Sets plainAscii.
 */
function plainStringEnd (b: Buffer, start: number, end: number): number {
  let high = 0
  for (let i = start; i < end; i++) {
    const c = b[i]
    if (c === 0x22) {
      plainAscii = high < 0x80
      return i
    }
    if (c === 0x5c || c < 0x20) return -1
    high |= c
  }
  return -1
}

/** Position after `text` when the bytes at `at` are exactly it; else -1. */
function expect (b: Buffer, at: number, end: number, text: Buffer): number {
  if (at + text.length > end) return -1
  for (let i = 0; i < text.length; i++) if (b[at + i] !== text[i]) return -1
  return at + text.length
}

/**
 * Where the tag starting at `start` (after its quote) ends: 1 to MAX_TAG
 * characters of [A-Za-z0-9._-], the tags recordFromFile keeps; else -1.
 */
function plainTagEnd (b: Buffer, start: number, end: number): number {
  for (let i = start; i < end && i - start <= MAX_TAG; i++) {
    const c = b[i]
    if (c === 0x22) return i === start ? -1 : i
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x2d
    if (!ok) return -1
  }
  return -1
}

/** Where the last plainInteger() stopped. */
let integerEnd = 0

/** A JSON integer without sign, fraction or exponent (0 or up to 15 digits), setting integerEnd; else -1. */
function plainInteger (b: Buffer, start: number, end: number): number {
  let n = 0
  let i = start
  while (i < end && i - start < 16) {
    const c = b[i]
    if (c < 0x30 || c > 0x39) break
    n = n * 10 + (c - 0x30)
    i++
  }
  const digits = i - start
  if (digits === 0 || digits > 15 || (digits > 1 && b[start] === 0x30)) return -1
  // A fraction or an exponent: a number JSON.parse reads another way.
  if (i < end && (b[i] === 0x2e || b[i] === 0x65 || b[i] === 0x45)) return -1
  integerEnd = i
  return n
}

/** Where the line reader stands in a store file written one record per line. */
const enum Phase {
  /** Before the first line, which must be `{`. */
  Open,
  /** After `{`: a record line or `}`. */
  EntryOrClose,
  /** After a record line ending in a comma: another record line. */
  Entry,
  /** After a record line without a comma: `}`. */
  Close,
  /** After `}`: only blank lines. */
  Done
}

/** Why a line is not in the one-record-per-line layout, or null when it is. */
type LineResult = string | null

/**
 * Reads a store file in our own layout (snapshotText: `{`, then one
 * `  "<key>": {record},` per line, then `}`) line by line, making each final
 * record as it goes: the file is never held whole, and no object with a
 * million properties is built. Any line outside that layout makes it give up
 * (`failure`), and the caller falls back to parsing the whole file, which also
 * reads every other layout of the same JSON (Simple-PyKV's indented one).
 */
class LineLoader {
  readonly data = new Map<string, KvRecord>()
  readonly #file: string
  readonly #now = nowSeconds()
  #phase = Phase.Open
  /** Lines read so far. */
  line = 0
  /** The first line outside the layout and why, once there is one. */
  failure: { line: number, reason: string } | null = null

  constructor (file: string) {
    this.#file = file
  }

  /** The bytes of whole lines (the last one may lack its newline); false once a line is outside the layout. */
  lines (block: Buffer): boolean {
    let start = 0
    while (start < block.length) {
      let end = block.indexOf(0x0a, start)
      if (end === -1) end = block.length
      this.line++
      if (!this.#plainEntry(block, start, end)) {
        const reason = this.#one(block.toString('utf8', start, end))
        if (reason !== null) {
          this.failure = { line: this.line, reason }
          return false
        }
      }
      start = end + 1
    }
    return true
  }

  /**
   * The common line, read from its bytes without JSON.parse:
   * `  "<key>": {"value":"<text>","created_at":<n>,"updated_at":<n>,"size_bytes":<n>,"type":"<t>"}`
   * where `,"version":<n>`, then `,"expires_at":<n or null>`, then
   * `,"tag":"<tag>"` may stand before the `}` (our writer puts all three on
   * every record, in that order), and an optional comma, where key and text
   * have no escapes, the numbers are plain integers and the tag is one
   * recordFromFile keeps. A fractional expires_at goes the general way. Exactly what JSON.parse and
   * recordFromFile would make of such a line; false (nothing done) for any
   * other line, which then goes through #entry.
   */
  #plainEntry (b: Buffer, start: number, end: number): boolean {
    if (this.#phase !== Phase.EntryOrClose && this.#phase !== Phase.Entry) return false
    if (b[start] !== 0x20 || b[start + 1] !== 0x20 || b[start + 2] !== 0x22) return false
    const keyStart = start + 3
    const keyEnd = plainStringEnd(b, keyStart, end)
    if (keyEnd === -1) return false
    let p = expect(b, keyEnd, end, VALUE_OPEN)
    if (p === -1) return false
    const valueStart = p
    const valueEnd = plainStringEnd(b, valueStart, end)
    if (valueEnd === -1) return false
    const ascii = plainAscii
    p = expect(b, valueEnd, end, CREATED)
    const created = p === -1 ? -1 : plainInteger(b, p, end)
    if (created === -1) return false
    p = expect(b, integerEnd, end, UPDATED)
    const updated = p === -1 ? -1 : plainInteger(b, p, end)
    if (updated === -1) return false
    p = expect(b, integerEnd, end, SIZE)
    if (p === -1 || plainInteger(b, p, end) === -1) return false
    p = expect(b, integerEnd, end, TYPE)
    if (p === -1) return false
    p = plainStringEnd(b, p, end)
    if (p === -1) return false
    p++
    let version = -1
    let q = expect(b, p, end, VERSION)
    if (q !== -1) {
      version = plainInteger(b, q, end)
      if (version === -1) return false
      p = integerEnd
    }
    let expires: number | null | undefined
    q = expect(b, p, end, EXPIRES)
    if (q !== -1) {
      const nullEnd = expect(b, q, end, NULL)
      if (nullEnd !== -1) {
        expires = null
        p = nullEnd
      } else {
        expires = plainInteger(b, q, end)
        if (expires === -1) return false
        p = integerEnd
      }
    }
    let tag: string | undefined
    q = expect(b, p, end, TAG)
    if (q !== -1) {
      const tagEnd = plainTagEnd(b, q, end)
      if (tagEnd === -1) return false
      tag = b.toString('latin1', q, tagEnd)
      p = tagEnd + 1
    }
    if (p >= end || b[p] !== 0x7d) return false
    p++
    const comma = p < end && b[p] === 0x2c
    if (comma) p++
    if (p !== end) return false
    const key = b.toString('utf8', keyStart, keyEnd)
    const value = b.toString('utf8', valueStart, valueEnd)
    // All ASCII: the byte count is the size (otherwise count the decoded text, as invalid UTF-8 became U+FFFD).
    const size = ascii ? valueEnd - valueStart : sizeBytes(value)
    const record: KvRecord = { value, created_at: created, updated_at: updated, size_bytes: size, type: 'string' }
    if (version !== -1) record.version = version
    if (expires !== undefined) record.expires_at = expires
    if (tag !== undefined) record.tag = tag
    this.data.set(key, record)
    this.#phase = comma ? Phase.Entry : Phase.Close
    return true
  }

  /** The end of the file: false when it ends before the closing `}`. */
  end (): boolean {
    if (this.#phase === Phase.Done) return true
    this.failure = { line: this.line + 1, reason: 'the file ends before its closing "}"' }
    return false
  }

  #one (line: string): LineResult {
    switch (this.#phase) {
      case Phase.Open:
        if (line === '{}') {
          // snapshotText of an empty store.
          this.#phase = Phase.Done
          return null
        }
        if (line !== '{') return 'the first line is not "{"'
        this.#phase = Phase.EntryOrClose
        return null
      case Phase.EntryOrClose:
        if (line === '}') {
          this.#phase = Phase.Done
          return null
        }
        return this.#entry(line)
      case Phase.Entry:
        return this.#entry(line)
      case Phase.Close:
        if (line !== '}') return 'expected the closing "}" after a line without a comma'
        this.#phase = Phase.Done
        return null
      case Phase.Done:
        return /^[ \t\r]*$/.test(line) ? null : 'text after the closing "}"'
    }
  }

  /** `  "<key>": {record}` with an optional comma: the key and the record are parsed as JSON. */
  #entry (line: string): LineResult {
    if (!line.startsWith('  "')) return 'not a line of the form  "<key>": {record},'
    // The key's closing quote: the first quote not escaped by an odd number of backslashes.
    let quote = 2
    for (;;) {
      quote = line.indexOf('"', quote + 1)
      if (quote === -1) return 'the key has no closing quote'
      let backslashes = 0
      while (line.charCodeAt(quote - 1 - backslashes) === 0x5c) backslashes++
      if (backslashes % 2 === 0) break
    }
    if (line.charCodeAt(quote + 1) !== 0x3a || line.charCodeAt(quote + 2) !== 0x20) return 'the key is not followed by ": "'
    const comma = line.charCodeAt(line.length - 1) === 0x2c
    let key: unknown
    let raw: unknown
    try {
      // JSON.parse makes new strings: nothing keeps the line (and the block it was cut from) alive.
      key = JSON.parse(line.slice(2, quote + 1))
      raw = JSON.parse(line.slice(quote + 3, comma ? line.length - 1 : line.length))
    } catch (err) {
      return (err as Error).message
    }
    if (typeof key !== 'string') return 'the key is not a string'
    const record = recordFromFile(raw, this.#now)
    if (record === null) {
      throw new StorageError(`Store file ${this.#file} line ${this.line}: entry ${JSON.stringify(key)} is not a record with a "value"; the file was left untouched`)
    }
    this.data.set(key, record)
    this.#phase = comma ? Phase.Entry : Phase.Close
    return null
  }
}

/** A store file as read: its records, and whether it was in our one-record-per-line layout. */
export interface SnapshotRead {
  data: Map<string, KvRecord>
  /** False when it was parsed whole (another layout, such as Simple-PyKV's indented file). */
  lineLayout: boolean
}

/**
 * Read a store file; a missing file is an empty store, an unreadable one stops
 * start-up (StorageError naming the file, and the line when it can tell).
 */
export async function readSnapshot (file: string): Promise<Map<string, KvRecord>> {
  return (await readSnapshotFile(file)).data
}

/**
 * readSnapshot, telling the layout: our own one-record-per-line layout is read
 * line by line; any other layout of the same JSON object (Simple-PyKV's
 * indented file, one long line) is parsed whole.
 */
export async function readSnapshotFile (file: string): Promise<SnapshotRead> {
  let handle: FileHandle
  try {
    handle = await open(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { data: new Map(), lineLayout: true }
    throw cannotRead(file, err)
  }
  let loader: LineLoader | null = new LineLoader(file)
  try {
    const whole = await readLineBlocks(handle, block => (loader as LineLoader).lines(block), 64)
    if (whole !== null && loader.lines(whole.rest) && loader.end()) return { data: loader.data, lineLayout: true }
  } catch (err) {
    if (err instanceof StorageError) throw err
    throw cannotRead(file, err)
  } finally {
    await handle.close()
  }
  // Not our layout: drop what was read before the whole file is parsed.
  const failure = loader.failure
  loader = null
  return { data: await readWholeSnapshot(file, failure), lineLayout: false }
}

function cannotRead (file: string, err: unknown): StorageError {
  return new StorageError(`Cannot read store file ${file}: ${(err as Error).message}`, { cause: err })
}

/**
 * Any layout: the whole file through JSON.parse. `brokeAt` is where the line
 * reader gave up; when the file followed our layout up to there, an invalid
 * file is reported at that line.
 */
async function readWholeSnapshot (file: string, brokeAt: { line: number, reason: string } | null): Promise<Map<string, KvRecord>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
    throw cannotRead(file, err)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    if (brokeAt !== null && brokeAt.line > 2) {
      throw new StorageError(`Store file ${file} line ${brokeAt.line} is not valid JSON (${brokeAt.reason}); it was left untouched`, { cause: err })
    }
    throw new StorageError(`Store file ${file} is not valid JSON (${(err as Error).message}); it was left untouched`, { cause: err })
  }
  text = ''
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new StorageError(`Store file ${file} does not hold a JSON object; it was left untouched`)
  }
  const now = nowSeconds()
  const data = new Map<string, KvRecord>()
  for (const key in parsed) {
    if (!Object.hasOwn(parsed, key)) continue
    const record = recordFromFile((parsed as Record<string, unknown>)[key], now)
    if (record === null) throw new StorageError(`Store file ${file}: entry ${JSON.stringify(key)} is not a record with a "value"; the file was left untouched`)
    data.set(key, record)
  }
  return data
}

/**
 * The entries of `data` as they are now, for writing later while `data`
 * changes (records are never changed in place, so copying the references is
 * enough). Keys and records sit side by side in one flat array: two slots per
 * entry, not an array per entry, which for a million keys is about 16 MB
 * instead of about 70 MB.
 */
export function entriesCopy (data: ReadonlyMap<string, KvRecord>): Iterable<readonly [string, KvRecord]> {
  const flat: Array<string | KvRecord> = new Array(data.size * 2)
  let i = 0
  data.forEach((record, key) => {
    flat[i++] = key
    flat[i++] = record
  })
  return {
    * [Symbol.iterator] () {
      for (let j = 0; j < i; j += 2) yield [flat[j] as string, flat[j + 1] as KvRecord] as const
    }
  }
}

/** Where a snapshot landed: its size, and its inode so a later check can tell it was replaced. */
export interface SnapshotStat {
  bytes: number
  ino: number
}

/** Entries serialized per write, so a large store never holds the event loop for long. */
const CHUNK_ENTRIES = 1000

/**
 * Write `entries` as `file` (the same text as snapshotText) so that a crash
 * leaves either the old file or the new one: temporary file in the same
 * folder, fsync, rename, fsync of the folder. The text is produced a chunk at
 * a time between writes, so reads keep being served while a big store is
 * written. `entries` is read lazily: it must not change until this resolves
 * (pass a copy, see entriesCopy, when it can).
 */
export async function writeSnapshotAtomic (file: string, entries: Iterable<readonly [string, KvRecord]>): Promise<SnapshotStat> {
  return await replaceFileAtomic(file, async handle => {
    let bytes = 0
    const iterator = entries[Symbol.iterator]()
    let next = iterator.next()
    if (next.done === true) {
      bytes += (await handle.write('{}\n')).bytesWritten
    }
    let first = true
    while (next.done !== true) {
      const lines: string[] = []
      while (next.done !== true && lines.length < CHUNK_ENTRIES) {
        lines.push(snapshotLine(next.value[0], next.value[1]))
        next = iterator.next()
      }
      const text = `${first ? '{\n' : ',\n'}${lines.join(',\n')}${next.done === true ? '\n}\n' : ''}`
      first = false
      const buffer = Buffer.from(text)
      let written = 0
      while (written < buffer.length) written += (await handle.write(buffer, written)).bytesWritten
      bytes += buffer.length
    }
    return { bytes, ino: (await handle.stat()).ino }
  })
}
