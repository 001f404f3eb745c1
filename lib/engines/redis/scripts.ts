/**
 * The Redis engine's server-side scripts. Every write is one script, so a
 * precondition and the write it guards, a transaction's checks and its ops,
 * and the revision counter move together or not at all, on one Redis or on
 * one Redis Cluster slot (every key a script touches carries the project's
 * hash tag).
 *
 * Values are opaque to the scripts: Node sends a value's JSON text and its
 * size, the script stores them behind a header it writes itself. A stored
 * entry is `version|created|updated|expires_ms|size|type|tag` + "\n" + JSON;
 * docs/storage.md describes it. Time is Redis's own (TIME), for every
 * instance alike.
 *
 * Replies are arrays whose first item says what happened: 'ok', 'gone' (the
 * store was deleted), 'stale' (the project's settings or key changed since the
 * caller checked the request: nothing was done), 'pre' (a precondition
 * failed), 'missing', 'limit', 'conflict' (transaction checks). Every store
 * script takes one more argument after those listed: the guard ('' or the
 * version of the project's catalog entry the request was checked against).
 */

/** KEYS of every store script: the store's meta hash, its entries, its key index, its due times. */
const PRELUDE = `
local M, D, I, X = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(n) return string.format('%.0f', n) end
local function parse(s)
  if not s then return nil end
  local nl = string.find(s, '\\n', 1, true)
  local v, c, u, e, z, ty, tag = string.match(string.sub(s, 1, nl - 1), '^(%d+)|(%d+)|(%d+)|(%d*)|(%d+)|(%a+)|(.*)$')
  local exp = false
  if e ~= '' then exp = tonumber(e) end
  return { s = s, nl = nl, version = tonumber(v), created = c, updated = u, expires = exp, size = tonumber(z), type = ty, tag = tag }
end
local function live(r, now)
  if r and (not r.expires or r.expires > now) then return r end
  return nil
end
local function etag(r)
  if r then return '"' .. r.tag .. '"' end
  return false
end
local function listed(list, r)
  if not r then return false end
  if list == '*' then return true end
  return string.find(list, '\\n"' .. r.tag .. '"\\n', 1, true) ~= nil
end
local function holds(ifm, ifn, r)
  if ifm ~= '' and not listed(ifm, r) then return false end
  if ifn ~= '' and listed(ifn, r) then return false end
  return true
end
local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'
local function b36(n)
  if n == 0 then return '0' end
  local s = ''
  while n > 0 do
    local d = n % 36
    s = string.sub(DIGITS, d + 1, d + 1) .. s
    n = math.floor(n / 36)
  end
  return s
end
local function expiry(kind, ms, prev, now)
  if kind == 'keep' then
    if prev then return prev.expires end
    return false
  end
  if kind == 'at' then return tonumber(ms) end
  if kind == 'after' then return now + tonumber(ms) end
  return false
end
local function header(version, created, updated, exp, size, ty, tag)
  local e = ''
  if exp then e = num(exp) end
  return num(version) .. '|' .. created .. '|' .. updated .. '|' .. e .. '|' .. num(size) .. '|' .. ty .. '|' .. tag
end
local function current(key, now)
  return live(parse(redis.call('HGET', D, key)), now)
end
-- The stored totals still count keys that expired but are not reclaimed yet; those do not count against the limits.
local function over(dkeys, dbytes, maxk, maxb, now)
  local k = tonumber(redis.call('HGET', M, 'keys') or '0')
  local b = tonumber(redis.call('HGET', M, 'bytes') or '0')
  local function check(k2, b2)
    if dkeys > 0 and k2 + dkeys > maxk then return 'keys' end
    if dbytes > 0 and b2 + dbytes > maxb then return 'bytes' end
    return nil
  end
  if not check(k, b) then return nil end
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', X, '-inf', now)) do
    local r = parse(redis.call('HGET', D, key))
    if r and not live(r, now) then
      k = k - 1
      b = b - r.size
    end
  end
  return check(k, b)
end
-- Store an entry over the raw one (maybe expired, maybe absent), keeping the index, due times and totals.
local function put(key, raw, s, exp, size)
  redis.call('HSET', D, key, s)
  if not raw then redis.call('ZADD', I, 0, key) end
  if exp then
    redis.call('ZADD', X, exp, key)
  elseif raw and raw.expires then
    redis.call('ZREM', X, key)
  end
  local dk, db = 1, size
  if raw then dk, db = 0, size - raw.size end
  if dk ~= 0 then redis.call('HINCRBY', M, 'keys', dk) end
  if db ~= 0 then redis.call('HINCRBY', M, 'bytes', db) end
end
local function remove(key, raw)
  redis.call('HDEL', D, key)
  redis.call('ZREM', I, key)
  if raw.expires then redis.call('ZREM', X, key) end
  redis.call('HINCRBY', M, 'keys', -1)
  if raw.size ~= 0 then redis.call('HINCRBY', M, 'bytes', -raw.size) end
end
if redis.call('EXISTS', M) == 0 then return { 'gone' } end
-- The last argument: the version of the project's settings and key the caller checked the request
-- against ('' for none). A project changed since (a new key, new settings) refuses the request.
local guard = table.remove(ARGV)
if guard ~= '' and (redis.call('HGET', M, 'cfg') or '0') ~= guard then return { 'stale' } end
`

/** Each script: its name (an ioredis command) and its body after the prelude. */
export const STORE_SCRIPTS = {
  /** ARGV: key. Reply: ok, the live entry or nil. */
  skvGet: `
local r = current(ARGV[1], clock())
if r then return { 'ok', r.s } end
return { 'ok', false }
`,
  /** ARGV: key, value JSON, size, type, If-Match, If-None-Match, expiry kind, expiry ms, max keys, max bytes, nonce. Reply: ok + header, pre + etag, limit + which. */
  skvSet: `
local key = ARGV[1]
local now = clock()
local raw = parse(redis.call('HGET', D, key))
local prev = live(raw, now)
if not holds(ARGV[5], ARGV[6], prev) then return { 'pre', etag(prev) } end
local size = tonumber(ARGV[3])
local dk, db = 1, size
if prev then dk, db = 0, size - prev.size end
local which = over(dk, db, tonumber(ARGV[9]), tonumber(ARGV[10]), now)
if which then return { 'limit', which } end
local rev = redis.call('HINCRBY', M, 'rev', 1)
local tag = redis.call('HGET', M, 'epoch') .. '.' .. b36(rev) .. '.' .. ARGV[11]
local exp = expiry(ARGV[7], ARGV[8], prev, now)
local secs = num(math.floor(now / 1000))
local created = secs
if prev then created = prev.created end
local h = header(rev, created, secs, exp, size, ARGV[4], tag)
put(key, raw, h .. '\\n' .. ARGV[2], exp, size)
return { 'ok', h }
`,
  /** ARGV: key, If-Match, If-None-Match. Reply: ok + rev, missing, pre + etag. */
  skvDelete: `
local key = ARGV[1]
local now = clock()
local raw = parse(redis.call('HGET', D, key))
local prev = live(raw, now)
if not holds(ARGV[2], ARGV[3], prev) then return { 'pre', etag(prev) } end
if not prev then return { 'missing' } end
remove(key, raw)
return { 'ok', redis.call('HINCRBY', M, 'rev', 1) }
`,
  /** ARGV: key, If-Match, If-None-Match, expiry kind, expiry ms, nonce. Reply: ok + entry, missing, pre + etag. */
  skvExpire: `
local key = ARGV[1]
local now = clock()
local raw = parse(redis.call('HGET', D, key))
local prev = live(raw, now)
if not holds(ARGV[2], ARGV[3], prev) then return { 'pre', etag(prev) } end
if not prev then return { 'missing' } end
local rev = redis.call('HINCRBY', M, 'rev', 1)
local tag = redis.call('HGET', M, 'epoch') .. '.' .. b36(rev) .. '.' .. ARGV[6]
local exp = expiry(ARGV[4], ARGV[5], prev, now)
local s = header(rev, prev.created, prev.updated, exp, prev.size, prev.type, tag) .. string.sub(prev.s, prev.nl)
put(key, raw, s, exp, prev.size)
return { 'ok', s }
`,
  /** Reply: ok + rev. UNLINK frees a large store in the background. */
  skvClear: `
redis.call('UNLINK', D, I, X)
redis.call('HSET', M, 'keys', 0, 'bytes', 0)
return { 'ok', redis.call('HINCRBY', M, 'rev', 1) }
`,
  /** Reply: ok, epoch, rev, keys, bytes. */
  skvRevision: `
local m = redis.call('HMGET', M, 'epoch', 'rev', 'keys', 'bytes')
return { 'ok', m[1], m[2], m[3], m[4] }
`,
  /**
   * ARGV: min and max (ZRANGE BYLEX bounds), limit, values ('1' or '0').
   * Reply: ok, rev, more ('1' or '0'), then key and entry (only its header without values) pairs.
   */
  skvList: `
local now = clock()
local limit = tonumber(ARGV[3])
local out = { 'ok', redis.call('HGET', M, 'rev'), '0' }
local start = ARGV[1]
local got = 0
local done = false
while not done do
  local want = limit + 1 - got
  local keys = redis.call('ZRANGE', I, start, ARGV[2], 'BYLEX', 'LIMIT', 0, want)
  for _, key in ipairs(keys) do
    local r = current(key, now)
    if r then
      if got == limit then
        out[3] = '1'
        done = true
        break
      end
      got = got + 1
      out[#out + 1] = key
      if ARGV[4] == '1' then out[#out + 1] = r.s else out[#out + 1] = string.sub(r.s, 1, r.nl - 1) end
    end
  end
  if #keys < want then done = true end
  if not done then start = '(' .. keys[#keys] end
end
return out
`,
  /**
   * ARGV: the number of checks, then key, kind ('etag' or 'exists'), argument for each; the number of
   * ops, then op, key, value JSON, size, type, expiry kind, expiry ms, nonce for each; max keys, max bytes.
   * Reply: ok, rev, then one result per op (set: the etag; delete: '1' or '0'; get: the entry or nil);
   * conflict, then index, key, current etag for each failed check; limit + which.
   */
  skvTxn: `
local now = clock()
local p = 2
local failed = {}
for i = 1, tonumber(ARGV[1]) do
  local key, kind, arg = ARGV[p], ARGV[p + 1], ARGV[p + 2]
  p = p + 3
  local r = current(key, now)
  local ok
  if kind == 'etag' then ok = (etag(r) == arg) else ok = ((r ~= nil) == (arg == '1')) end
  if not ok then
    failed[#failed + 1] = i - 1
    failed[#failed + 1] = key
    failed[#failed + 1] = etag(r)
  end
end
if #failed > 0 then
  local out = { 'conflict' }
  for i = 1, #failed do out[i + 1] = failed[i] end
  return out
end
local nops = tonumber(ARGV[p])
p = p + 1
local ops = {}
local writes = false
for i = 1, nops do
  ops[i] = { op = ARGV[p], key = ARGV[p + 1], value = ARGV[p + 2], size = tonumber(ARGV[p + 3]), type = ARGV[p + 4], kind = ARGV[p + 5], ms = ARGV[p + 6], nonce = ARGV[p + 7] }
  if ops[i].op ~= 'get' then writes = true end
  p = p + 8
end
local maxk, maxb = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
local rev = tonumber(redis.call('HGET', M, 'rev'))
local version = rev
if writes then version = rev + 1 end
local epoch = redis.call('HGET', M, 'epoch')
local secs = num(math.floor(now / 1000))
local mine = {}
local results = {}
local dk, db = 0, 0
local function seen(key)
  local m = mine[key]
  if m == nil then return current(key, now) end
  if m == false then return nil end
  return m
end
for i, op in ipairs(ops) do
  local prev = seen(op.key)
  if op.op == 'get' then
    if prev then results[i] = prev.s else results[i] = false end
  else
    local before = current(op.key, now)
    if before then
      dk = dk - 1
      db = db - before.size
    end
    if op.op == 'delete' then
      mine[op.key] = false
      if prev then results[i] = '1' else results[i] = '0' end
    else
      local tag = epoch .. '.' .. b36(version) .. '.' .. op.nonce
      local exp = expiry(op.kind, op.ms, prev, now)
      local created = secs
      if prev then created = prev.created end
      mine[op.key] = parse(header(version, created, secs, exp, op.size, op.type, tag) .. '\\n' .. op.value)
      dk = dk + 1
      db = db + op.size
      results[i] = '"' .. tag .. '"'
    end
  end
end
if writes then
  local which = over(dk, db, maxk, maxb, now)
  if which then return { 'limit', which } end
  for key, m in pairs(mine) do
    local raw = parse(redis.call('HGET', D, key))
    if m then
      put(key, raw, m.s, m.expires, m.size)
    elseif raw then
      remove(key, raw)
    end
  end
  rev = redis.call('HINCRBY', M, 'rev', 1)
end
local out = { 'ok', rev }
for i = 1, nops do out[#out + 1] = results[i] end
return out
`,
  /** ARGV: most keys in the round. Reply: ok, reclaimed, more ('1' or '0'), next due ms or nil, keys, bytes, Redis's time in ms. */
  skvReclaim: `
local now = clock()
local max = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', X, '-inf', now, 'LIMIT', 0, max)
local reclaimed = 0
for _, key in ipairs(due) do
  local raw = parse(redis.call('HGET', D, key))
  if raw and not live(raw, now) then
    remove(key, raw)
    reclaimed = reclaimed + 1
  else
    redis.call('ZREM', X, key)
  end
end
if reclaimed > 0 then redis.call('HINCRBY', M, 'rev', 1) end
local more = '0'
if #due == max then more = '1' end
local nxt = redis.call('ZRANGE', X, 0, 0, 'WITHSCORES')
local m = redis.call('HMGET', M, 'keys', 'bytes')
return { 'ok', reclaimed, more, nxt[2] or false, m[1], m[2], num(now) }
`,
  /**
   * Entries copied in as they are (a migration): ARGV: the revision to reach at least, then key and entry pairs.
   * Reply: ok.
   */
  skvLoad: `
local now = clock()
for i = 2, #ARGV, 2 do
  local key, s = ARGV[i], ARGV[i + 1]
  local r = parse(s)
  put(key, parse(redis.call('HGET', D, key)), s, r.expires, r.size)
end
local rev = tonumber(ARGV[1])
if rev > tonumber(redis.call('HGET', M, 'rev')) then redis.call('HSET', M, 'rev', rev) end
return { 'ok' }
`
} as const

export type StoreScript = keyof typeof STORE_SCRIPTS

/** The full text of a store script. */
export function storeScript (name: StoreScript): string {
  return PRELUDE + STORE_SCRIPTS[name]
}

/** Scripts of the shared catalog of projects (one hash). */
export const CATALOG_SCRIPTS = {
  /**
   * KEYS: the catalog hash. ARGV: project id, the entry expected now ('' for none), the new entry ('' to remove).
   * Reply: 1 when the entry was as expected and is now the new one, else 0.
   */
  skvCatalogSwap: `
local now = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if now ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`,
  /** KEYS: a store's meta hash. ARGV: epoch, revision, version of the catalog entry. Reply: 1 when made, 0 when it existed. */
  skvCreateStore: `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'rev', ARGV[2], 'keys', 0, 'bytes', 0, 'cfg', ARGV[3] or '0')
return 1
`,
  /**
   * KEYS: a store's meta hash. ARGV: the version of the project's catalog entry now. Raises the
   * store's copy of it, never lowers it (two instances may report versions out of order).
   * Reply: 1, or 0 when the store is gone.
   */
  skvRaiseCfg: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'cfg') or '0') < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'cfg', ARGV[1]) end
return 1
`
} as const
