import { recordFromFile } from '../../record.js'
import type { Change } from './changes.js'

/**
 * The journal's line format: one change as one line of JSON, readable with
 * any text tool.
 *
 *   {"op":"set","key":"greeting","record":{"value":"hello",…}}
 *   {"op":"delete","key":"old"}
 *   {"op":"clear"}
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
  if (r.op === 'clear') return { op: 'clear' }
  if (typeof r.key !== 'string') return `op ${JSON.stringify(r.op)} without a string "key"`
  if (r.op === 'delete') return { op: 'delete', key: r.key }
  if (r.op !== 'set') return `unknown op ${JSON.stringify(r.op)}`
  const record = recordFromFile(r.record)
  if (record === null) return 'a "set" whose "record" has no "value"'
  return { op: 'set', key: r.key, record }
}
