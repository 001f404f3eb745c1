import { recordFromFile } from '../../record.js'
import type { Change, KeyChange } from './changes.js'

/**
 * The journal's line format: one change as one line of JSON, readable with
 * any text tool.
 *
 *   {"op":"set","key":"greeting","record":{"value":"hello",…,"version":7,…}}
 *   {"op":"delete","key":"old","rev":8}
 *   {"op":"clear","rev":9}
 *   {"op":"txn","rev":10,"changes":[{"op":"set",…},{"op":"delete",…}]}
 *   {"op":"expire","rev":11,"keys":["a","b"]}
 */
export function encodeChange (change: Change): string {
  return JSON.stringify(change) + '\n'
}

/** The lines of a batch, as one buffer for one write. */
export function encodeChanges (changes: readonly Change[]): Buffer {
  return Buffer.from(changes.map(encodeChange).join(''))
}

/** One line (without its newline) back into its change, or why it is not one. */
export function decodeChange (text: string): Change | string {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'not a JSON object'
  const r = raw as Record<string, unknown>
  const rev = Number.isSafeInteger(r.rev) && (r.rev as number) >= 0 ? r.rev as number : undefined
  if (r.op === 'clear') return rev === undefined ? { op: 'clear' } : { op: 'clear', rev }
  if (r.op === 'txn' || r.op === 'expire') {
    if (rev === undefined) return `a "${r.op}" without a revision`
    if (r.op === 'expire') {
      if (!Array.isArray(r.keys) || !r.keys.every(k => typeof k === 'string')) return 'an "expire" without its "keys"'
      return { op: 'expire', rev, keys: r.keys }
    }
    if (!Array.isArray(r.changes)) return 'a "txn" without its "changes"'
    const changes: KeyChange[] = []
    for (const inner of r.changes) {
      const change = decodeKeyChange(inner)
      if (typeof change === 'string') return `a "txn" holding ${change}`
      changes.push(change)
    }
    return { op: 'txn', rev, changes }
  }
  const change = decodeKeyChange(r)
  if (typeof change === 'string') return change
  return rev === undefined ? change : { ...change, rev }
}

function decodeKeyChange (raw: unknown): KeyChange | string {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'not a JSON object'
  const r = raw as Record<string, unknown>
  if (typeof r.key !== 'string') return `op ${JSON.stringify(r.op)} without a string "key"`
  if (r.op === 'delete') return { op: 'delete', key: r.key }
  if (r.op !== 'set') return `unknown op ${JSON.stringify(r.op)}`
  const record = recordFromFile(r.record)
  if (record === null) return 'a "set" whose "record" has no "value"'
  return { op: 'set', key: r.key, record }
}
