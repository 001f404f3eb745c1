import type { JsonType, JsonValue, KvRecord } from '../../../schemas/record.js'
import {
  InvalidInputError, LimitExceededError, NotFoundError, PreconditionFailedError, projectNotFound, StaleProjectError, TxnConflictError
} from '../../errors.js'
import { jsonType, sizeBytes } from '../../record.js'
import { nonce } from '../revision.js'
import type {
  EntityTags, ExpiryChange, KvEngine, ListOptions, ListPage, Preconditions, Revision, SetOptions, StoreLimits, StoreUsage,
  TxnCheck, TxnOp, TxnOutcome, TxnResult
} from '../types.js'
import type { RedisConnection } from './connection.js'
import { scriptKeys, type StoreKeys } from './layout.js'
import type { StoreScript } from './scripts.js'

/** Most keys one reclaim round removes (one revision); the next round follows at once. */
const RECLAIM_SLICE = 1000
/** Keys per script call when the whole store is read (R8). */
const ENTRIES_PAGE = 1000
/** A whole-store read that saw the store change between its pages is made again at most this often in all. */
const ENTRIES_ATTEMPTS = 5
/** How often a store looks for due keys when it knows of none: other instances may have set some. */
const RECLAIM_POLL_MS = 1000

/** The record an entry (header line, then the value's JSON) stands for; `value` null when only the header came. */
export function parseEntry (entry: string): KvRecord {
  const nl = entry.indexOf('\n')
  const head = nl < 0 ? entry : entry.slice(0, nl)
  const [version, created, updated, expires, size, type, tag] = head.split('|')
  return {
    value: nl < 0 ? null : JSON.parse(entry.slice(nl + 1)) as JsonValue,
    created_at: Number(created),
    updated_at: Number(updated),
    size_bytes: Number(size),
    type: type as JsonType,
    version: Number(version),
    expires_at: expires === '' ? null : Number(expires) / 1000,
    tag
  }
}

/** The entry of a record as it is stored (a migration copies records in this way). */
export function formatEntry (record: KvRecord): string {
  const expires = record.expires_at === null || record.expires_at === undefined ? '' : String(Math.round(record.expires_at * 1000))
  return `${record.version ?? 0}|${record.created_at}|${record.updated_at}|${expires}|${record.size_bytes}|${record.type}|${record.tag ?? ''}\n${JSON.stringify(record.value)}`
}

/** An entity-tag list as the scripts take it: '' (no header), '*', or the tags between newlines. */
function tagList (tags: EntityTags | undefined): string {
  if (tags === undefined) return ''
  if (tags === '*') return '*'
  return `\n${tags.join('\n')}\n`
}

function expiryArgs (expiry: ExpiryChange | undefined): [string, string] {
  if (expiry === undefined || expiry.kind === 'clear' || expiry.kind === 'keep') return [expiry?.kind ?? 'clear', '0']
  return [expiry.kind, String(Math.round(expiry.ms))]
}

/** What the views of one store share: its last known usage, and who looks after its expiry. */
export interface StoreState {
  usage: StoreUsage
  /** Told when a write set an expiry: reclaim at that time (the reclaimer may poll anyway). */
  expiring?: () => void
}

export interface RedisEngineOptions {
  /**
   * The version of the project's catalog entry the requests through this view
   * were checked against: a script refuses ('stale') once the project changed.
   * '' (the default): unchecked (migrations, tests).
   */
  guard?: string
  state?: StoreState
}

/**
 * One project's store in Redis, as seen through one version of the project's
 * settings. Every operation is one script on the project's keys (layout.ts),
 * so it is atomic across every instance sharing the Redis; nothing is cached
 * here but the last usage figures.
 */
export class RedisEngine implements KvEngine {
  readonly projectId: string
  readonly persistent = true
  readonly epoch: string
  readonly #redis: RedisConnection
  readonly #keys: string[]
  readonly #limits: StoreLimits
  readonly #guard: string
  readonly #state: StoreState
  #closed = false

  constructor (redis: RedisConnection, projectId: string, epoch: string, keys: StoreKeys, limits: StoreLimits, options: RedisEngineOptions = {}) {
    this.#redis = redis
    this.projectId = projectId
    this.epoch = epoch
    this.#keys = scriptKeys(keys)
    this.#limits = limits
    this.#guard = options.guard ?? ''
    this.#state = options.state ?? { usage: { keys: 0, valueBytes: 0, bytesOnDisk: 0 } }
  }

  usage (): StoreUsage {
    return this.#state.usage
  }

  async get (key: string): Promise<KvRecord | undefined> {
    const [, entry] = await this.#run('skvGet', [key])
    return typeof entry === 'string' ? parseEntry(entry) : undefined
  }

  async set (key: string, value: JsonValue, options: SetOptions = {}): Promise<KvRecord> {
    const json = JSON.stringify(value)
    const size = sizeBytes(value, json)
    if (size > this.#limits.maxValueBytes) throw new LimitExceededError(`Value is larger than the maximum of ${this.#limits.maxValueBytes} bytes`)
    const reply = await this.#run('skvSet', [
      key, json, size, jsonType(value), tagList(options.ifMatch), tagList(options.ifNoneMatch), ...expiryArgs(options.expiry),
      this.#limit(this.#limits.maxKeys), this.#limit(this.#limits.maxBytes), nonce()
    ])
    this.#refused(key, reply)
    const record = parseEntry(reply[1] as string)
    record.value = value
    if (record.expires_at !== null) this.#state.expiring?.()
    return record
  }

  async delete (key: string, options: Preconditions = {}): Promise<boolean> {
    const reply = await this.#run('skvDelete', [key, tagList(options.ifMatch), tagList(options.ifNoneMatch)])
    this.#refused(key, reply)
    return reply[0] === 'ok'
  }

  async setExpiry (key: string, expiry: ExpiryChange, options: Preconditions = {}): Promise<KvRecord> {
    const reply = await this.#run('skvExpire', [key, tagList(options.ifMatch), tagList(options.ifNoneMatch), ...expiryArgs(expiry), nonce()])
    this.#refused(key, reply)
    if (reply[0] === 'missing') throw new NotFoundError(`Key '${key}' not found in project '${this.projectId}' store`)
    const record = parseEntry(reply[1] as string)
    if (record.expires_at !== null) this.#state.expiring?.()
    return record
  }

  async clear (): Promise<void> {
    await this.#run('skvClear', [])
  }

  async txn (checks: readonly TxnCheck[], ops: readonly TxnOp[]): Promise<TxnOutcome> {
    const args: Array<string | number> = [checks.length]
    for (const check of checks) {
      if ('etag' in check) args.push(check.key, 'etag', check.etag)
      else args.push(check.key, 'exists', check.exists ? '1' : '0')
    }
    args.push(ops.length)
    const written = new Set<string>()
    let expiring = false
    for (const op of ops) {
      if (op.op === 'get') {
        args.push('get', op.key, '', 0, '', 'clear', '0', '')
        continue
      }
      if (written.has(op.key)) throw new InvalidInputError(`Key '${op.key}' is written twice in one transaction`)
      written.add(op.key)
      if (op.op === 'delete') {
        args.push('delete', op.key, '', 0, '', 'clear', '0', '')
        continue
      }
      const json = JSON.stringify(op.value)
      const size = sizeBytes(op.value, json)
      if (size > this.#limits.maxValueBytes) throw new LimitExceededError(`Value of key '${op.key}' is larger than the maximum of ${this.#limits.maxValueBytes} bytes`)
      if (op.expiry !== undefined && op.expiry.kind !== 'clear') expiring = true
      args.push('set', op.key, json, size, jsonType(op.value), ...expiryArgs(op.expiry), nonce())
    }
    args.push(this.#limit(this.#limits.maxKeys), this.#limit(this.#limits.maxBytes))
    const reply = await this.#run('skvTxn', args)
    if (reply[0] === 'conflict') {
      const failed: Array<{ index: number, key: string, etag: string | null }> = []
      for (let i = 1; i + 2 < reply.length; i += 3) {
        failed.push({ index: Number(reply[i]), key: reply[i + 1] as string, etag: (reply[i + 2] as string | null) ?? null })
      }
      throw new TxnConflictError(failed)
    }
    this.#refused('', reply)
    const results: TxnResult[] = ops.map((op, i) => {
      const out = reply[i + 2] as string | null
      if (op.op === 'set') return { key: op.key, etag: out as string }
      if (op.op === 'delete') return { key: op.key, deleted: out === '1' }
      const record = out === null ? null : parseEntry(out)
      return { key: op.key, etag: record === null ? null : `"${record.tag ?? ''}"`, record }
    })
    if (expiring) this.#state.expiring?.()
    return { rev: Number(reply[1]), results }
  }

  async revision (): Promise<Revision> {
    const reply = await this.#run('skvRevision', [])
    this.#state.usage = { keys: Number(reply[3]), valueBytes: Number(reply[4]), bytesOnDisk: 0 }
    return { epoch: reply[1] as string, rev: Number(reply[2]) }
  }

  async list ({ prefix = '', after, limit, values = true }: ListOptions): Promise<ListPage> {
    // Valid UTF-8 never holds the byte 0xFF, so every key with the prefix sorts below prefix + 0xFF.
    const max = prefix === '' ? '+' : Buffer.concat([Buffer.from(`(${prefix}`, 'utf8'), Buffer.from([0xff])])
    const min = after !== undefined && Buffer.compare(Buffer.from(after, 'utf8'), Buffer.from(prefix, 'utf8')) >= 0
      ? `(${after}`
      : prefix === '' ? '-' : `[${prefix}`
    const reply = await this.#run('skvList', [min, max as unknown as string, limit, values ? '1' : '0'])
    const entries: Array<[string, KvRecord]> = []
    for (let i = 3; i + 1 < reply.length; i += 2) entries.push([reply[i] as string, parseEntry(reply[i + 1] as string)])
    return { entries, more: reply[2] === '1', revision: { epoch: this.epoch, rev: Number(reply[1]) } }
  }

  /**
   * Every live record in key order, read ENTRIES_PAGE at a time. The pages
   * form one state of the store when every page saw the same revision; a
   * store written meanwhile is read again, up to ENTRIES_ATTEMPTS times, and
   * under constant writes the last read is answered (docs/storage.md).
   */
  async entries (): Promise<Array<[string, KvRecord]>> {
    for (let attempt = 1; ; attempt++) {
      const out: Array<[string, KvRecord]> = []
      let after: string | undefined
      let rev: number | undefined
      let consistent = true
      for (;;) {
        const page = await this.list({ after, limit: ENTRIES_PAGE })
        if (rev === undefined) rev = page.revision.rev
        else if (page.revision.rev !== rev) consistent = false
        out.push(...page.entries)
        if (!page.more) break
        after = page.entries[page.entries.length - 1][0]
      }
      if (consistent || attempt === ENTRIES_ATTEMPTS) return out
    }
  }

  /** Every store in Redis is as durable as Redis is: nothing to switch. */
  async setPersistent (): Promise<void> {}

  /** This view is unusable afterwards; the store stays in Redis. */
  async close (): Promise<void> {
    this.#closed = true
  }

  /** The store's keys go at once (UNLINK frees them in the background); a write still in flight finds the store gone. */
  async destroy (): Promise<void> {
    await this.close()
    await this.#redis.call(async () => await this.#redis.client.unlink(...this.#keys))
  }

  /** Copy entries in as they are (a migration), reaching at least revision `rev`. */
  async load (rev: number, entries: ReadonlyArray<[string, KvRecord]>): Promise<void> {
    const args: Array<string | number> = [rev]
    for (const [key, record] of entries) args.push(key, formatEntry(record))
    await this.#run('skvLoad', args)
  }

  #limit (n: number): string {
    return Number.isFinite(n) ? String(n) : '9007199254740991'
  }

  async #run (name: StoreScript, args: ReadonlyArray<string | number>): Promise<unknown[]> {
    if (this.#closed) throw projectNotFound(this.projectId)
    const reply = await this.#redis.store(name, this.#keys, [...args, this.#guard])
    // A request checked against a project that was deleted since is checked again: 404, or 401 where projects are not discoverable.
    if (reply[0] === 'gone') throw this.#guard === '' ? projectNotFound(this.projectId) : new StaleProjectError(this.projectId)
    if (reply[0] === 'stale') throw new StaleProjectError(this.projectId)
    return reply
  }

  /** Throws for a reply that refused the write. */
  #refused (key: string, reply: unknown[]): void {
    switch (reply[0]) {
      case 'pre':
        throw new PreconditionFailedError(key, (reply[1] as string | null) ?? null)
      case 'limit':
        if (reply[1] === 'keys') throw new LimitExceededError(`Project '${this.projectId}' already holds the maximum of ${this.#limits.maxKeys} keys`)
        throw new LimitExceededError(`Project '${this.projectId}' would exceed its maximum of ${this.#limits.maxBytes} bytes of values`)
    }
  }
}

/**
 * Looks after the expiry of one store: now and then (another instance may
 * have set an expiry) and at the due time it last heard of, it reclaims due
 * keys, RECLAIM_SLICE at most per round, each round one revision; rounds
 * follow each other while due keys remain. Every instance may run one: a
 * round finds only what is still due.
 */
export class ExpiryReclaimer {
  readonly #redis: RedisConnection
  readonly #keys: string[]
  readonly #state: StoreState
  #timer: NodeJS.Timeout | null = null
  #running = false
  #stopped = false

  constructor (redis: RedisConnection, keys: StoreKeys, state: StoreState) {
    this.#redis = redis
    this.#keys = scriptKeys(keys)
    this.#state = state
    state.expiring = () => { this.#schedule(0) }
    this.#schedule(0)
  }

  stop (): void {
    this.#stopped = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  #schedule (inMs: number): void {
    if (this.#stopped || this.#running) return
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => { void this.#reclaim() }, Math.max(0, Math.min(inMs, RECLAIM_POLL_MS)))
    this.#timer.unref()
  }

  async #reclaim (): Promise<void> {
    this.#timer = null
    this.#running = true
    let next = RECLAIM_POLL_MS
    try {
      const reply = await this.#redis.store('skvReclaim', this.#keys, [RECLAIM_SLICE, ''])
      if (reply[0] === 'gone') {
        this.#stopped = true
      } else {
        this.#state.usage = { keys: Number(reply[4]), valueBytes: Number(reply[5]), bytesOnDisk: 0 }
        if (reply[2] === '1') next = 0
        else if (reply[3] !== null) next = Number(reply[3]) - Number(reply[6]) + 1
      }
    } catch {
      // An unreachable Redis: tried again on the next poll.
    } finally {
      this.#running = false
    }
    this.#schedule(next)
  }
}
