import t, { type Test } from 'tap'
import { ScopeAuth, generateApiKey, hashApiKey, presentedKey, verifyHash } from '../../lib/keys.js'

t.test('generated keys are 43 characters of base64url and distinct', async t => {
  const keys = new Set(Array.from({ length: 100 }, () => generateApiKey()))
  t.equal(keys.size, 100)
  for (const k of keys) t.match(k, /^[A-Za-z0-9_-]{43}$/)
})

t.test('argon2id hashes verify their key only', async t => {
  const hash = await hashApiKey('k1')
  t.match(hash, /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/)
  t.equal(await verifyHash(hash, 'k1'), true)
  t.equal(await verifyHash(hash, 'k2'), false)
  t.equal(await verifyHash('$argon2id$v=19$m=19456,t=2,p=1$bad$bad', 'k1'), false, 'a broken hash is a mismatch, not a throw')
})

/** lib/keys.js with argon2's verify counted: `verifies()` is how many have run. */
async function keysCountingVerifies (t: Test): Promise<{ keys: typeof import('../../lib/keys.js'), verifies: () => number }> {
  const argon2 = await import('@node-rs/argon2')
  let count = 0
  const keys = await t.mockImport<typeof import('../../lib/keys.js')>('../../lib/keys.js', {
    '@node-rs/argon2': { ...argon2, verify: async (...args: Parameters<typeof argon2.verify>) => { count++; return await argon2.verify(...args) } }
  })
  return { keys, verifies: () => count }
}

t.test('a verified key is served from the digest cache, not argon2 again', async t => {
  const { keys, verifies } = await keysCountingVerifies(t)
  const key = keys.generateApiKey()
  const other = keys.generateApiKey()
  const hash = await keys.hashApiKey(key)
  const auth = new keys.ScopeAuth({ enabled: true, api_key_hash: hash })
  t.equal(await auth.check(key), true)
  for (let i = 0; i < 50; i++) t.equal(await auth.check(key), true)
  t.equal(verifies(), 1, 'one argon2 run for 51 checks')
  t.equal(await auth.check(other), false)
  t.equal(await auth.check(other), false)
  t.equal(verifies(), 2, 'a rejected key is remembered too')
  t.equal(await auth.check(undefined), false)
  t.equal(await auth.check(''), false)
  t.equal(verifies(), 2)
  const fresh = new keys.ScopeAuth({ enabled: true, api_key_hash: await keys.hashApiKey(keys.generateApiKey()) })
  t.equal(await fresh.check(key), false, 'a new ScopeAuth (regenerated key) forgets the old key')
})

t.test('concurrent checks of one new key share one verification', async t => {
  const { keys, verifies } = await keysCountingVerifies(t)
  const key = keys.generateApiKey()
  const auth = new keys.ScopeAuth({ enabled: true, api_key_hash: await keys.hashApiKey(key) })
  const results = await Promise.all(Array.from({ length: 20 }, async () => await auth.check(key)))
  t.ok(results.every(Boolean))
  t.equal(verifies(), 1)
})

t.test('malformed keys are rejected without hashing', async t => {
  const key = generateApiKey()
  const auth = new ScopeAuth({ enabled: true, api_key_hash: await hashApiKey(key) })
  for (const bad of ['x'.repeat(513), 'with space', 'ключ', key.slice(1), `${key}A`, `${key.slice(1)}+`, '']) {
    t.equal(auth.checkFast(bad), false, `no slow hash for ${JSON.stringify(bad).slice(0, 20)}`)
  }
  t.equal(auth.checkFast(key), undefined, 'a well-formed key needs the slow check once')
  t.equal(await auth.check(key), true)
  t.equal(auth.checkFast(key), true)
  const legacy = new ScopeAuth({ enabled: true, api_key_hash: 'pbkdf2_sha256$1$AAAA$AAAA' })
  t.equal(legacy.checkFast('short-legacy-key'), undefined, 'Simple-PyKV keys of any printable form are verified')
})

t.test('the verification queue is bounded', async t => {
  const argon2 = await import('@node-rs/argon2')
  let release: () => void = () => {}
  const gate = new Promise<void>(resolve => { release = resolve })
  const keys = await t.mockImport<typeof import('../../lib/keys.js')>('../../lib/keys.js', {
    '@node-rs/argon2': { ...argon2, verify: async () => { await gate; return false } }
  })
  const auth = new keys.ScopeAuth({ enabled: true, api_key_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo' })
  const checks = Array.from({ length: 100 }, async () => await auth.check(keys.generateApiKey()).then(ok => ok, (err: Error) => err))
  await new Promise(resolve => setImmediate(resolve))
  release()
  const results = await Promise.all(checks)
  const busy = results.filter(r => r instanceof keys.VerifierBusyError).length
  t.ok(busy > 0, `${busy} of 100 refused as busy`)
  t.ok(results.filter(r => r === false).length >= 64, 'the rest were verified and rejected')
})

t.test('a disabled scope opens to anyone; plaintext and hash both count', async t => {
  t.equal(await new ScopeAuth({ enabled: false }).check(undefined), true)
  const hashed = generateApiKey()
  const both = new ScopeAuth({ api_key: 'plain', api_key_hash: await hashApiKey(hashed) })
  t.equal(await both.check('plain'), true)
  t.equal(await both.check(hashed), true)
})

t.test('presentedKey follows the header precedence', async t => {
  t.equal(presentedKey({ authorization: 'Bearer abc', 'x-api-key': 'x' }), 'abc')
  t.equal(presentedKey({ authorization: 'Token abc', 'x-api-key': 'x' }), 'x')
  t.equal(presentedKey({ 'x-api-key': ['first', 'second'] }), 'first')
  t.equal(presentedKey({ 'api-key': 'legacy' }), 'legacy')
  t.equal(presentedKey({}), undefined)
})
