import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2'
import { Semaphore } from 'async-mutex'
import type { AuthenticationConfig } from '../schemas/config.js'
import { effectiveAuthentication } from './config.js'
import { BusyError } from './errors.js'

const pbkdf2Async = promisify(pbkdf2)

/** A new API key: 32 random bytes, base64url without padding (43 characters). */
export function generateApiKey (): string {
  return randomBytes(32).toString('base64url')
}

/** argon2id with the library defaults (m=19456 KiB, t=2, p=1), as a PHC string. */
export async function hashApiKey (key: string): Promise<string> {
  return await argon2Hash(key)
}

/**
 * A new key for a scope and the fields that store it: its hash, and the plain
 * key too when the scope has save_api_key_to_config on.
 */
export async function newKeyFields (auth: AuthenticationConfig | undefined): Promise<{ key: string, fields: AuthenticationConfig }> {
  const key = generateApiKey()
  const fields: AuthenticationConfig = {
    api_key_hash: await hashApiKey(key),
    api_key: auth?.save_api_key_to_config === true ? key : null
  }
  return { key, fields }
}

function digest (key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest()
}

async function verifyPbkdf2 (stored: string, key: string): Promise<boolean> {
  const [, iterText, saltText, hashText] = stored.split('$')
  const iterations = Number(iterText)
  const salt = Buffer.from(saltText, 'base64url')
  const expected = Buffer.from(hashText, 'base64url')
  if (!Number.isSafeInteger(iterations) || iterations < 1 || expected.length === 0) return false
  const actual = await pbkdf2Async(key, salt, iterations, expected.length, 'sha256')
  return timingSafeEqual(actual, expected)
}

// Slow hashes run on libuv's pool; bounding them (and the queue in front of
// them) keeps a flood of wrong keys from starving everything else.
const SLOW_HASH_CONCURRENCY = 2
const SLOW_HASH_MAX_WAITING = 64
const slowHashSlots = new Semaphore(SLOW_HASH_CONCURRENCY)
let slowHashWaiting = 0

/** Thrown when too many key verifications are already queued; the caller should retry shortly. */
export class VerifierBusyError extends BusyError {
  constructor () {
    super('Too many key verifications in progress; retry shortly', 1)
    this.name = 'VerifierBusyError'
  }
}

/** Verify `key` against an argon2 PHC string or a Simple-PyKV pbkdf2_sha256 hash. */
export async function verifyHash (stored: string, key: string): Promise<boolean> {
  if (slowHashWaiting >= SLOW_HASH_MAX_WAITING) throw new VerifierBusyError()
  slowHashWaiting++
  try {
    return await slowHashSlots.runExclusive(async () => {
      slowHashWaiting--
      if (stored.startsWith('pbkdf2_sha256$')) return await verifyPbkdf2(stored, key)
      try {
        return await argon2Verify(stored, key)
      } catch {
        return false
      }
    })
  } catch (err) {
    slowHashWaiting--
    throw err
  }
}

/** Keys longer than this are rejected without hashing. */
export const MAX_PRESENTED_KEY_LENGTH = 512
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/
// argon2 hashes are only ever written for generated keys, so nothing else can match one.
const GENERATED_KEY = /^[A-Za-z0-9_-]{43}$/

const NEGATIVE_CACHE_SIZE = 1024

/**
 * The key check of one scope (the system or one project). A presented key that
 * verified once is remembered as its SHA-256 digest, so later requests cost one
 * digest and one constant-time comparison instead of a slow hash. A new
 * ScopeAuth is built whenever the scope's key changes, which drops the cache.
 */
export class ScopeAuth {
  readonly enabled: boolean
  readonly #plainDigest: Buffer | null
  readonly #hash: string | null
  #verified: Buffer | null = null
  readonly #rejected = new Set<string>()
  readonly #pending = new Map<string, Promise<boolean>>()

  constructor (auth: AuthenticationConfig | undefined) {
    this.enabled = effectiveAuthentication(auth).enabled
    this.#plainDigest = typeof auth?.api_key === 'string' ? digest(auth.api_key) : null
    this.#hash = typeof auth?.api_key_hash === 'string' ? auth.api_key_hash : null
  }

  /**
   * The answer when it costs no slow hash: true or false, or undefined when the
   * key needs a slow verification (checkSlow).
   */
  checkFast (presented: string | undefined): boolean | undefined {
    if (!this.enabled) return true
    if (presented === undefined || presented.length === 0 || presented.length > MAX_PRESENTED_KEY_LENGTH) return false
    const d = digest(presented)
    if (this.#plainDigest !== null && timingSafeEqual(d, this.#plainDigest)) return true
    if (this.#verified !== null && timingSafeEqual(d, this.#verified)) return true
    if (this.#hash === null || !PRINTABLE_ASCII.test(presented)) return false
    if (this.#hash.startsWith('$argon2') && !GENERATED_KEY.test(presented)) return false
    if (this.#rejected.has(d.toString('hex'))) return false
    return undefined
  }

  /** Verify against the stored hash; one run per distinct key, however many ask at once. */
  async checkSlow (presented: string): Promise<boolean> {
    const d = digest(presented)
    const id = d.toString('hex')
    let pending = this.#pending.get(id)
    if (pending === undefined) {
      pending = this.#verifySlow(presented, d, id)
      this.#pending.set(id, pending)
    }
    return await pending
  }

  async check (presented: string | undefined): Promise<boolean> {
    return this.checkFast(presented) ?? await this.checkSlow(presented as string)
  }

  async #verifySlow (presented: string, d: Buffer, id: string): Promise<boolean> {
    try {
      const ok = await verifyHash(this.#hash as string, presented)
      if (ok) {
        this.#verified = d
      } else {
        if (this.#rejected.size >= NEGATIVE_CACHE_SIZE) {
          this.#rejected.delete(this.#rejected.values().next().value as string)
        }
        this.#rejected.add(id)
      }
      return ok
    } finally {
      this.#pending.delete(id)
    }
  }
}

/**
 * The presented key, by the contract's precedence: a well-formed
 * `Authorization: Bearer <key>` wins outright, else the first non-empty of
 * `X-API-Key` and `Api-Key`.
 */
export function presentedKey (headers: Record<string, string | string[] | undefined>): string | undefined {
  const authorization = first(headers.authorization)
  if (authorization !== undefined) {
    const match = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)
    if (match !== null) return match[1]
  }
  for (const name of ['x-api-key', 'api-key']) {
    const value = first(headers[name])?.trim()
    if (value !== undefined && value !== '') return value
  }
  return undefined
}

function first (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
