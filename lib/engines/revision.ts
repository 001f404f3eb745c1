import { randomBytes } from 'node:crypto'

/** A new epoch: 9 random bytes, base64url (12 characters). */
export function newEpoch (): string {
  return randomBytes(9).toString('base64url')
}

const POOL_SIZE = 4096
let pool = Buffer.alloc(0)
let offset = POOL_SIZE

/** Four random base64url characters from a pool refilled a page at a time, so a write costs no system call. */
export function nonce (): string {
  if (offset + 3 > pool.length) {
    pool = randomBytes(POOL_SIZE)
    offset = 0
  }
  offset += 3
  return pool.toString('base64url', offset - 3, offset)
}

/**
 * The tag of a record written at `version` in `epoch`. The epoch keeps tags
 * apart across projects deleted and created again and memory-only restarts;
 * the version within an epoch; the random part across a crash that lost
 * acknowledged writes (durability everysec or no), after which a version may
 * be handed out again for a different value.
 */
export function newTag (epoch: string, version: number): string {
  return `${epoch}.${version.toString(36)}.${nonce()}`
}

/** The tag of a record loaded from a file without one: version 0 exists once per epoch, for the state loaded when the epoch began. */
export function legacyTag (epoch: string): string {
  return `${epoch}.0`
}
