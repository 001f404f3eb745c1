import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { Agent } from 'node:http'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { readStoreFiles } from '../lib/engines/local/recovery.js'
import { PROJECT_KEY, testConfig } from './support/app.js'
import { compiledServer } from './support/compiled.js'
import { freePort, httpRequest, type HttpReply as Reply } from './support/net.js'
import { ServerProcess } from './support/process.js'
import { tempDir } from './support/temp.js'

/*
 * A real server process under concurrent PUT/DELETE load, killed with SIGKILL
 * at random moments and restarted, over and over. After every restart:
 * every write acknowledged with a 2xx (durability always) is there with its
 * exact value, and nothing appears that no request sent.
 */

/** Independent servers killed side by side (each on its own folder and port), to keep the wall time short. */
const LANES = 3
const KILLS_PER_LANE = 7
const WORKERS = 12
const KEYS_PER_WORKER = 4

function send (agent: Agent, port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Reply> {
  return httpRequest(port, method, path, headers, body, { agent })
}

type Value = string | { [k: string]: unknown }
/** What a request asked for: a value, or absence. `undefined` is absence. */
type Outcome = Value | undefined

interface KeyState {
  /** What the last acknowledged request left. */
  acked: Outcome
  /** Requests sent after it whose outcome is unknown (the server died first). */
  pending: Outcome[]
}

const same = (a: Outcome, b: Outcome): boolean => JSON.stringify(a) === JSON.stringify(b)

interface LaneResult {
  kills: number
  acknowledged: number
  unexpected: number
  tornTails: number
}

/** One server, its folder and its load: KILLS_PER_LANE rounds of load, SIGKILL, restart, check. */
async function lane (t: Test, script: string, index: number): Promise<LaneResult> {
  const dir = tempDir(t, 'simple-kv-crash-')
  const port = await freePort()
  const configPath = join(dir, 'config.json')
  // A small journal bound, so kills also land in the middle of compactions.
  writeFileSync(configPath, JSON.stringify(testConfig(c => {
    c.server_port = port
    c.server_host = '127.0.0.1'
    c.system!.storage = { persistent_file_path: 'storage_data', durability: 'always', journal_max_bytes: 4096 }
  }), null, 2))
  const storage = join(dir, 'storage_data')
  const auth = { authorization: `Bearer ${PROJECT_KEY}` }
  const keys = Array.from({ length: WORKERS * KEYS_PER_WORKER }, (_, i) => `key-${i}/${i % 3 === 0 ? 'é' : 'x'}`)
  const state = new Map<string, KeyState>(keys.map(k => [k, { acked: undefined, pending: [] }]))
  // The harness kills every server it started when the test ends.
  const start = (): ServerProcess => ServerProcess.spawn(t, [script, '--config', configPath], { output: 'stderr' })
  const result: LaneResult = { kills: 0, acknowledged: 0, unexpected: 0, tornTails: 0 }
  let seq = 0

  const verify = async (round: number): Promise<void> => {
    const agent = new Agent({ keepAlive: false })
    const reply = await send(agent, port, 'GET', '/api/v1/projects/p1/store', auth)
    t.equal(reply.status, 200, `lane ${index} round ${round}: the store lists`)
    const data = JSON.parse(reply.body).data as Record<string, { value: Value }>
    const stray = Object.keys(data).filter(k => !state.has(k))
    if (stray.length > 0) t.fail(`lane ${index} round ${round}: keys nobody wrote: ${stray.join(', ')}`)
    for (const [key, s] of state) {
      const seen: Outcome = Object.hasOwn(data, key) ? data[key].value : undefined
      // The acknowledged state, or what a request in flight at the kill asked for (it was sent, it may have landed).
      if (!same(seen, s.acked) && !s.pending.some(p => same(p, seen))) {
        t.fail(`lane ${index} round ${round}: ${key} is ${JSON.stringify(seen)}; acknowledged ${JSON.stringify(s.acked)}, in flight ${JSON.stringify(s.pending)}`)
      }
      s.acked = seen
      s.pending = []
    }
  }

  const load = async (agent: Agent, worker: number, stop: { now: boolean }): Promise<void> => {
    const own = keys.slice(worker * KEYS_PER_WORKER, (worker + 1) * KEYS_PER_WORKER)
    while (!stop.now) {
      const key = own[Math.floor(Math.random() * own.length)]
      const s = state.get(key) as KeyState
      const path = `/api/v1/projects/p1/store/${encodeURIComponent(key)}`
      const n = ++seq
      const roll = Math.random()
      let outcome: Outcome
      let reply: Reply
      try {
        if (roll < 0.25) {
          outcome = undefined
          s.pending.push(outcome)
          reply = await send(agent, port, 'DELETE', path, auth)
        } else if (roll < 0.5) {
          outcome = { n, lane: index, note: 'json ✓' }
          s.pending.push(outcome)
          reply = await send(agent, port, 'PUT', path, { ...auth, 'content-type': 'application/json' }, JSON.stringify(outcome))
        } else {
          outcome = `v${index}-${n}-${'x'.repeat(n % 80)}`
          s.pending.push(outcome)
          reply = await send(agent, port, 'PUT', path, { ...auth, 'content-type': 'text/plain' }, outcome)
        }
      } catch {
        return // the server is gone; this request's outcome stays unknown
      }
      if (reply.status >= 200 && reply.status < 300) {
        result.acknowledged++
        s.acked = outcome
        s.pending = []
      } else if (reply.status === 404 && outcome === undefined) {
        // Deleting an absent key: it is absent, which is what the request wanted.
        s.acked = undefined
        s.pending = []
      } else {
        result.unexpected++
      }
    }
  }

  for (let round = 0; round <= KILLS_PER_LANE; round++) {
    const server = start()
    await server.waitForHealth(port)
    await verify(round)

    if (round === 1 && index === 0) {
      const second = start()
      const exit = await second.exited()
      t.not(exit.code, 0, 'a second server on the same storage folder refuses to start')
      t.match(second.stderr, `The storage folder ${storage} is in use by another Simple KV process (pid ${server.child.pid as number}`)
    }

    if (round === KILLS_PER_LANE) {
      server.child.kill('SIGTERM')
      t.equal((await server.exited()).code, 0, `lane ${index}: a clean stop exits 0`)
      break
    }

    const agent = new Agent({ keepAlive: true, maxSockets: WORKERS })
    const stop = { now: false }
    const workers = Array.from({ length: WORKERS }, async (_, w) => { await load(agent, w, stop) })
    const before = result.acknowledged
    const started = Date.now()
    // Kill at a random moment once writes flow (a loaded machine can take a while to answer the first).
    const deadline = Date.now() + 5000
    while (result.acknowledged === before && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
    await new Promise(resolve => setTimeout(resolve, Math.random() * 300))
    await server.kill()
    if (process.env.CRASH_TEST_VERBOSE !== undefined) t.comment(`lane ${index} round ${round}: ${result.acknowledged - before} acknowledged in ${Date.now() - started} ms`)
    result.kills++
    stop.now = true
    await Promise.all(workers)
    agent.destroy()

    // Every file must parse as start-up reads it; a torn last line is the only thing allowed.
    const files = await readStoreFiles(storage, 'p1')
    result.tornTails += files.warnings.length
    for (const w of files.warnings) t.match(w, /dropped a torn last line/)
  }

  t.same(readdirSync(storage).sort(), ['p1_store.json', 'p1_store.meta'], `lane ${index}: after a clean stop the store file and its meta file hold the store`)
  const final = JSON.parse(readFileSync(join(storage, 'p1_store.json'), 'utf8')) as Record<string, { value: Value }>
  for (const [key, s] of state) {
    const seen: Outcome = Object.hasOwn(final, key) ? final[key].value : undefined
    if (!same(seen, s.acked)) t.fail(`lane ${index}: ${key}: the store file has ${JSON.stringify(seen)}, the server answered ${JSON.stringify(s.acked)}`)
  }
  return result
}

t.test('SIGKILL under concurrent PUT/DELETE load never loses an acknowledged write nor invents one', async t => {
  const script = compiledServer()
  const results = await Promise.all(Array.from({ length: LANES }, async (_, i) => await lane(t, script, i)))
  const kills = results.reduce((n, r) => n + r.kills, 0)
  const acknowledged = results.reduce((n, r) => n + r.acknowledged, 0)
  t.ok(kills >= 20, `${kills} kills`)
  t.equal(results.reduce((n, r) => n + r.unexpected, 0), 0, 'no request got an error status')
  t.ok(results.every(r => r.acknowledged > r.kills), 'every lane had writes acknowledged')
  t.ok(acknowledged > kills * 10, `${acknowledged} writes acknowledged over ${kills} kills (${results.reduce((n, r) => n + r.tornTails, 0)} torn tails dropped)`)
})
