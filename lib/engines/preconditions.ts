import type { EntityTags, Preconditions } from './types.js'

/** Whether an entity-tag list names the current ETag (null: no current record, which `*` does not match either). */
function listed (tags: EntityTags, etag: string | null): boolean {
  if (etag === null) return false
  return tags === '*' || tags.includes(etag)
}

/**
 * Whether If-Match and If-None-Match hold for a key whose current ETag is
 * `etag` (null when it has no record): every engine decides with this, in
 * the same atomic step as the write it guards.
 */
export function preconditionsHold (pre: Preconditions, etag: string | null): boolean {
  if (pre.ifMatch !== undefined && !listed(pre.ifMatch, etag)) return false
  if (pre.ifNoneMatch !== undefined && listed(pre.ifNoneMatch, etag)) return false
  return true
}
