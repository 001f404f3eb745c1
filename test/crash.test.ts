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
 * exact value, nothing appears that no request sent, a transaction applied
 * all or nothing, and the project revision is not below any revision a
 * client saw acknowledged.
 */

/** Independent servers killed side by side (each on its own folder and port), to keep the wall time short. */
const LANES = 3
const KILLS_PER_LANE = 7
const WORKERS = 12
const KEYS_PER_WORKER = 4
/** Acknowledged writes each round waits for before its kill. */
const ACKS_BEFORE_KILL = 12

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
  transactions: number
}

/** The two keys of a worker that only transactions write, always together and to the same value. */
const pairOf = (worker: number): [string, string] => [`txn-${worker}/a`, `txn-${worker}/b`]

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
  const pairs = Array.from({ length: WORKERS }, (_, w) => pairOf(w))
  const state = new Map<string, KeyState>([...keys, ...pairs.flat()].map(k => [k, { acked: undefined, pending: [] }]))
  /** The highest revision a transaction answer named. */
  let ackedRev = 0
  // The harness kills every server it started when the test ends.
  const start = (): ServerProcess => ServerProcess.spawn(t, [script, '--config', configPath], { output: 'stderr' })
  const result: LaneResult = { kills: 0, acknowledged: 0, unexpected: 0, tornTails: 0, transactions: 0 }
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
    for (const [a, b] of pairs) {
      const va = Object.hasOwn(data, a) ? data[a].value : undefined
      const vb = Object.hasOwn(data, b) ? data[b].value : undefined
      if (!same(va, vb)) t.fail(`lane ${index} round ${round}: a transaction applied in part: ${a} is ${JSON.stringify(va)}, ${b} is ${JSON.stringify(vb)}`)
    }
    const listing = await send(agent, port, 'GET', '/api/v1/projects/p1/keys?limit=1', auth)
    const rev = (JSON.parse(listing.body).data as { rev: number }).rev
    if (rev < ackedRev) t.fail(`lane ${index} round ${round}: the project is at revision ${rev}, below revision ${ackedRev} that a client saw acknowledged`)
  }

  const load = async (agent: Agent, worker: number, stop: { now: boolean }): Promise<void> => {
    const own = keys.slice(worker * KEYS_PER_WORKER, (worker + 1) * KEYS_PER_WORKER)
    while (!stop.now) {
      const roll = Math.random()
      const n = ++seq
      if (roll >= 0.85) {
        // A transaction setting the worker's pair together: after any kill both hold one value, or neither changed.
        const [a, b] = pairOf(worker)
        const value = { txn: n, lane: index }
        const sa = state.get(a) as KeyState
        const sb = state.get(b) as KeyState
        sa.pending.push(value)
        sb.pending.push(value)
        let reply: Reply
        try {
          reply = await send(agent, port, 'POST', '/api/v1/projects/p1/txn', { ...auth, 'content-type': 'application/json' },
            JSON.stringify({ ops: [{ op: 'set', key: a, value }, { op: 'set', key: b, value }] }))
        } catch {
          return
        }
        if (reply.status !== 200) {
          result.unexpected++
          continue
        }
        result.acknowledged++
        result.transactions++
        ackedRev = Math.max(ackedRev, (JSON.parse(reply.body).data as { rev: number }).rev)
        for (const s of [sa, sb]) {
          s.acked = value
          s.pending = []
        }
        continue
      }
      const key = own[Math.floor(Math.random() * own.length)]
      const s = state.get(key) as KeyState
      const path = `/api/v1/projects/p1/store/${encodeURIComponent(key)}`
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
          // roll in [0.5, 0.85): a text value
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
    // Kill at a random moment once writes flow: after a dozen acknowledged writes this round, however
    // long a loaded machine takes for them (bounded), so every kill lands on a store that is being written.
    const deadline = Date.now() + 60_000
    while (result.acknowledged - before < ACKS_BEFORE_KILL && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
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

// 24 restarts, each seconds long on a loaded machine: more than the default per-file timeout allows.
t.setTimeout(600_000)

t.test('SIGKILL under concurrent PUT/DELETE load never loses an acknowledged write nor invents one', async t => {
  const script = compiledServer()
  const results = await Promise.all(Array.from({ length: LANES }, async (_, i) => await lane(t, script, i)))
  const kills = results.reduce((n, r) => n + r.kills, 0)
  const acknowledged = results.reduce((n, r) => n + r.acknowledged, 0)
  t.ok(kills >= 20, `${kills} kills`)
  t.equal(results.reduce((n, r) => n + r.unexpected, 0), 0, 'no request got an error status')
  t.ok(results.every(r => r.acknowledged > r.kills), 'every lane had writes acknowledged')
  t.ok(results.every(r => r.transactions > 0), `every lane had transactions acknowledged (${results.reduce((n, r) => n + r.transactions, 0)} in all)`)
  t.ok(acknowledged >= kills * ACKS_BEFORE_KILL, `${acknowledged} writes acknowledged over ${kills} kills (${results.reduce((n, r) => n + r.tornTails, 0)} torn tails dropped)`)
})
