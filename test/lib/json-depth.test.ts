import fc from 'fast-check'
import t from 'tap'
import { exceedsJsonDepth, jsonDepthMessage } from '../../lib/json-depth.js'

/** Nesting depth of a parsed value, iteratively ([] is 1). */
function depthOf (value: unknown): number {
  let max = 0
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number]
    if (v !== null && typeof v === 'object') {
      max = Math.max(max, d + 1)
      for (const child of Object.values(v)) stack.push([child, d + 1])
    }
  }
  return max
}

t.test('counts arrays and objects, not brackets inside strings', async t => {
  t.equal(exceedsJsonDepth('1', 0), false, 'a number has no depth')
  t.equal(exceedsJsonDepth('[]', 1), false)
  t.equal(exceedsJsonDepth('[]', 0), true)
  t.equal(exceedsJsonDepth('[[1],{"a":[2]}]', 2), true)
  t.equal(exceedsJsonDepth('[[1],{"a":[2]}]', 3), false)
  t.equal(exceedsJsonDepth('{"a":{"b":{}}}', 2), true)
  t.equal(exceedsJsonDepth(`"${'['.repeat(500)}"`, 3), false, 'brackets in a string')
  t.equal(exceedsJsonDepth(`["\\"${'['.repeat(500)}"]`, 3), false, 'an escaped quote does not end the string')
  t.equal(exceedsJsonDepth(`["\\\\", ${'['.repeat(10)}${']'.repeat(10)}]`, 3), true, 'an escaped backslash does')
  t.equal(exceedsJsonDepth('[' + '[]'.repeat(1000) + ']', 2), false, 'many siblings are not depth')
})

t.test('10 million levels: no stack overflow, and fast', async t => {
  const deep = '['.repeat(10_000_000) + ']'.repeat(10_000_000)
  t.equal(exceedsJsonDepth(deep, 64), true)
  t.equal(exceedsJsonDepth(deep, 10_000_000), false)
})

t.test('agrees with the depth of the parsed value, for any JSON', async t => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 14 }), (value, limit) => {
    const text = JSON.stringify(value)
    return exceedsJsonDepth(text, limit) === (depthOf(value) > limit) &&
      exceedsJsonDepth(JSON.stringify(value, null, 2), limit) === (depthOf(value) > limit)
  }), { numRuns: 2000 })
  t.pass('2000 random values')
})

t.test('the message names the limit and the setting', async t => {
  t.equal(jsonDepthMessage(64), 'Request body nests arrays and objects more than 64 levels deep (limit: system.limits.max_json_depth)')
})
