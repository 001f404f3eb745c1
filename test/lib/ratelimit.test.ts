import t from 'tap'
import { FailureLimiter } from '../../lib/ratelimit.js'

t.test('an address is refused after max failures until its window ends', async t => {
  let now = 0
  const limiter = new FailureLimiter({ maxFailures: 3, windowSeconds: 10, now: () => now })
  for (let i = 0; i < 3; i++) {
    t.equal(limiter.retryAfter('a'), 0)
    limiter.fail('a')
  }
  t.equal(limiter.retryAfter('a'), 10)
  t.equal(limiter.retryAfter('b'), 0, 'other addresses are not affected')
  now = 9_500
  t.equal(limiter.retryAfter('a'), 1)
  now = 10_000
  t.equal(limiter.retryAfter('a'), 0, 'reset when the window ends')
  limiter.fail('a')
  t.equal(limiter.retryAfter('a'), 0, 'a new window starts counting from one')
})

t.test('memory stays bounded', async t => {
  let now = 0
  const limiter = new FailureLimiter({ maxFailures: 1, windowSeconds: 1, maxClients: 100, now: () => now })
  for (let i = 0; i < 1000; i++) limiter.fail(`client-${i}`)
  t.ok(limiter.size <= 100, `size ${limiter.size}`)
  t.ok(limiter.retryAfter('client-999') > 0, 'the newest are kept')
  now = 5_000
  limiter.fail('late')
  t.ok(limiter.size <= 100)
})
