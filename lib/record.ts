import type { JsonType, JsonValue, KvRecord } from '../schemas/record.js'

export type { JsonType, JsonValue, KvRecord }

export function jsonType (value: unknown): JsonType {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  const t = typeof value
  if (t === 'string' || t === 'number' || t === 'boolean') return t
  return 'object'
}

/** UTF-8 length of a string, or of the compact JSON text of any other value (`json`, when the caller has it already). */
export function sizeBytes (value: JsonValue, json?: string): number {
  return Buffer.byteLength(typeof value === 'string' ? value : json ?? JSON.stringify(value), 'utf8')
}

export function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

/** Where a new record stands in its store's history. */
export interface RecordStamp {
  version: number
  /** Epoch seconds, or null: never expires. */
  expiresAt: number | null
  tag: string
}

/** The record of a write; the field order is the one store files are written in. */
export function makeRecord (value: JsonValue, previous: KvRecord | undefined, stamp?: RecordStamp, now = nowSeconds()): KvRecord {
  const record: KvRecord = {
    value,
    created_at: previous?.created_at ?? now,
    updated_at: now,
    size_bytes: sizeBytes(value),
    type: jsonType(value)
  }
  if (stamp !== undefined) {
    record.version = stamp.version
    record.expires_at = stamp.expiresAt
    record.tag = stamp.tag
  }
  return record
}

/** The strong entity tag of a record: its tag in double quotes, as in the ETag header. */
export function etagOf (record: KvRecord): string {
  return `"${record.tag ?? ''}"`
}

/** Epoch milliseconds at which the record expires, or null. */
export function expiryMs (record: KvRecord): number | null {
  return typeof record.expires_at === 'number' ? Math.round(record.expires_at * 1000) : null
}

/**
 * A record as read from a store file (ours or Simple-PyKV's, which has no
 * `type`). Returns null when the entry is not a record at all.
 */
export function recordFromFile (raw: unknown, now = nowSeconds()): KvRecord | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !Object.hasOwn(raw, 'value')) return null
  const r = raw as Record<string, unknown>
  const value = r.value as JsonValue
  const created = typeof r.created_at === 'number' && Number.isFinite(r.created_at) ? Math.floor(r.created_at) : now
  const updated = typeof r.updated_at === 'number' && Number.isFinite(r.updated_at) ? Math.floor(r.updated_at) : created
  const record: KvRecord = { value, created_at: created, updated_at: updated, size_bytes: sizeBytes(value), type: jsonType(value) }
  // Fields a newer writer adds: kept when well-formed, else ignored as unknown fields are.
  if (Number.isSafeInteger(r.version) && (r.version as number) >= 0) record.version = r.version as number
  if (r.expires_at === null || (typeof r.expires_at === 'number' && Number.isFinite(r.expires_at))) record.expires_at = r.expires_at as number | null
  if (typeof r.tag === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(r.tag)) record.tag = r.tag
  return record
}
