import t from 'tap'
import { ConfigStore, configError } from '../../lib/config.js'
import { testConfig } from '../support/app.js'

t.test('timeouts and max_json_depth have defaults', async t => {
  const settings = ConfigStore.fromObject(testConfig(), '/tmp').settings
  t.match(settings, { requestTimeoutMs: 60_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 72_000, connectionsCheckIntervalMs: 1_000, maxJsonDepth: 64 })
})

t.test('the config sets them', async t => {
  const settings = ConfigStore.fromObject(testConfig(c => {
    c.system!.timeouts = { request_timeout_ms: 5000, headers_timeout_ms: 4000, keep_alive_timeout_ms: 3000, connections_check_interval_ms: 200 }
    c.system!.limits = { max_json_depth: 10 }
  }), '/tmp').settings
  t.match(settings, { requestTimeoutMs: 5000, headersTimeoutMs: 4000, keepAliveTimeoutMs: 3000, connectionsCheckIntervalMs: 200, maxJsonDepth: 10 })
})

t.test('a request timeout below the default headers timeout lowers it too', async t => {
  const settings = ConfigStore.fromObject(testConfig(c => { c.system!.timeouts = { request_timeout_ms: 2000 } }), '/tmp').settings
  t.equal(settings.headersTimeoutMs, 2000)
})

t.test('a headers timeout above the request timeout is refused, naming the field', async t => {
  t.equal(configError(testConfig(c => { c.system!.timeouts = { request_timeout_ms: 2000, headers_timeout_ms: 3000 } })),
    "Invalid field 'system.timeouts.headers_timeout_ms': must not exceed request_timeout_ms (2000)")
  t.equal(configError(testConfig(c => { c.system!.timeouts = { headers_timeout_ms: 70_000 } })),
    "Invalid field 'system.timeouts.headers_timeout_ms': must not exceed request_timeout_ms (60000)")
  t.match(configError(testConfig(c => { c.system!.timeouts = { request_timeout_ms: 0 } })), /request_timeout_ms/, 'zero is not a timeout')
  t.match(configError(testConfig(c => { c.system!.limits = { max_json_depth: 0 } })), /max_json_depth/)
  t.match(configError(testConfig(c => { (c.system!.timeouts as Record<string, unknown>) = { idle_ms: 5 } })), /idle_ms/, 'unknown fields are refused')
})
