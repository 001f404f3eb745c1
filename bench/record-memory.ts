// Heap bytes per key of a store's data alone: n records as the engine keeps them
// (lib/record.ts makeRecord, in a Map keyed like the benchmark's keys), measured
// after full collections, with no server around them.
//   node --expose-gc dist/bench/record-memory.js [keys]   (default 1000000)

import { makeRecord, type KvRecord } from '../lib/record.js'
import { VALUE_BYTES, keyName } from './common.js'

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  process.stderr.write('run with node --expose-gc\n')
  process.exit(2)
}

const n = Number(process.argv[2] ?? 1_000_000)
if (!Number.isSafeInteger(n) || n < 1) {
  process.stderr.write(`not a key count: ${process.argv[2]}\n`)
  process.exit(2)
}

gc()
const before = process.memoryUsage()
const data = new Map<string, KvRecord>()
for (let i = 0; i < n; i++) {
  // A fresh string per value, as a request body or a journal line gives the engine.
  const value = JSON.parse(JSON.stringify(`${i}:`.padEnd(VALUE_BYTES, 'x'))) as string
  data.set(keyName(i), makeRecord(value, undefined))
}
gc()
gc()
const after = process.memoryUsage()
const perKey = (after.heapUsed - before.heapUsed) / n
process.stdout.write(
  `${n.toLocaleString('en-US')} records of ${VALUE_BYTES}-byte strings: heap +${((after.heapUsed - before.heapUsed) / 1e6).toFixed(1)} MB ` +
    `(${perKey.toFixed(1)} bytes a key), RSS ${(after.rss / 1e6).toFixed(1)} MB; map size ${data.size}\n`
)
