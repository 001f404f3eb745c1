// Small helpers shared by the benchmark harness and its bare child servers.

import { randomBytes } from 'node:crypto'

export const VALUE_BYTES = 100

/** Store key for index i: fixed width so every path has the same length. */
export function keyName (i: number): string {
  return 'k' + String(i).padStart(7, '0')
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** A random ASCII string of exactly n bytes (base64url alphabet). */
export function randomAscii (n: number): string {
  const bytes = randomBytes(n)
  let s = ''
  for (let i = 0; i < n; i++) s += ALPHABET[bytes[i]! & 63]
  return s
}

/**
 * Deterministic 100-byte value for index i: a per-run random base with the index
 * written over its tail, so every key has a distinct, checkable value.
 */
export function makeValueFn (base: string = randomAscii(VALUE_BYTES)): (i: number) => string {
  if (base.length !== VALUE_BYTES) throw new Error('value base must be 100 bytes')
  return (i: number) => {
    const tag = ':' + i.toString(36)
    return base.slice(0, VALUE_BYTES - tag.length) + tag
  }
}

/** 32 random bytes, base64url without padding: 43 characters (the server's key format). */
export function newApiKey (): string {
  return randomBytes(32).toString('base64url')
}

/** Port argument of a bare child server: argv[2], must be a valid TCP port. */
export function portFromArgv (): number {
  const port = Number(process.argv[2])
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write('usage: node <bare-server>.js <port> [keys]\n')
    process.exit(2)
  }
  return port
}

/** The Map both bare servers serve from: `keys` entries of 100-byte values. */
export function bareStore (): Map<string, string> {
  const n = Number(process.argv[3] ?? 10_000)
  const value = makeValueFn()
  const map = new Map<string, string>()
  for (let i = 0; i < n; i++) map.set(keyName(i), value(i))
  return map
}
