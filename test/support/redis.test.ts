import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { HOST } from './net.js'
import { runRedisCli, sharedRedis, sharedRedisCluster, startRedis, startRedisCluster, uniquePrefix } from './redis.js'
import { removeDir, tempDir, type Teardown } from './temp.js'

/** True once `pid` is gone or a zombie (a zombie no longer runs; its parent just has not reaped it). */
function isDead (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch {
    return true
  }
}

async function waitDead (pid: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!isDead(pid)) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}

/** One raw RESP exchange, as a client that knows no password sees the server. */
async function rawPing (port: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    let reply = ''
    const socket = connect({ host: HOST, port }, () => { socket.write('PING\r\n') })
    socket.setEncoding('utf8')
    socket.on('data', (s: string) => {
      reply += s
      if (reply.endsWith('\r\n')) socket.end()
    })
    socket.on('close', () => { resolve(reply.trim()) })
    socket.on('error', reject)
  })
}

async function configGet (cli: (...args: string[]) => Promise<string>, name: string): Promise<string> {
  const [key, value] = (await cli('CONFIG', 'GET', name)).split('\n')
  if (key !== name) throw new Error(`CONFIG GET ${name} answered ${key}`)
  return value
}

t.test('a server with the defaults: SET and GET, and the AOF keeps a write across a SIGKILL', async t => {
  const redis = await startRedis({ t })
  t.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/)
  t.equal(redis.url, `redis://127.0.0.1:${redis.port}`)
  t.ok(existsSync(redis.dir), 'runs in its own folder')
  t.equal(await configGet(redis.cli.bind(redis), 'appendonly'), 'yes')
  t.equal(await configGet(redis.cli.bind(redis), 'appendfsync'), 'always')
  t.equal(await configGet(redis.cli.bind(redis), 'save'), '', 'no RDB snapshots')
  t.equal(await configGet(redis.cli.bind(redis), 'bind'), '127.0.0.1')
  t.equal(await configGet(redis.cli.bind(redis), 'protected-mode'), 'yes')

  const key = `${uniquePrefix()}:k`
  t.equal(await redis.cli('SET', key, ' two\nlines '), 'OK')
  t.equal(await redis.cli('GET', key), ' two\nlines ', 'a value comes back byte for byte')
  await t.rejects(redis.cli('INCR', key), /ERR value is not an integer/, 'an error reply rejects')

  const firstPid = redis.pid
  await redis.kill()
  t.ok(await waitDead(firstPid), 'SIGKILLed')
  t.notOk(redis.running)
  await redis.restart()
  t.not(redis.pid, firstPid, 'a new process')
  t.ok(redis.running)
  t.equal(await redis.cli('GET', key), ' two\nlines ', 'replayed from the AOF on the same port and folder')
  t.match(redis.logTail(), /DB loaded from append only file/)

  await redis.flushAll()
  t.equal(await redis.cli('DBSIZE'), '0')
})

t.test('the options reach redis-server', async t => {
  const redis = await startRedis({ t, appendonly: false, appendfsync: 'everysec', maxmemoryPolicy: 'allkeys-lru', maxmemory: '64mb', extraArgs: ['--databases', '4'] })
  const get = redis.cli.bind(redis)
  t.equal(await configGet(get, 'appendonly'), 'no')
  t.equal(await configGet(get, 'appendfsync'), 'everysec')
  t.equal(await configGet(get, 'maxmemory-policy'), 'allkeys-lru')
  t.equal(await configGet(get, 'maxmemory'), String(64 * 1024 * 1024))
  t.equal(await configGet(get, 'databases'), '4')
})

t.test('a password: cli() and the readiness probe authenticate, a client without it is refused', async t => {
  const dir = tempDir(t, 'simple-kv-redis-given-')
  const redis = await startRedis({ t, dir, requirePass: 'p@ss word' })
  t.equal(redis.dir, dir, 'the given folder is used')
  t.equal(redis.url, `redis://:p%40ss%20word@127.0.0.1:${redis.port}`)
  t.equal(await redis.cli('PING'), 'PONG')
  t.match(await rawPing(redis.port), /^-NOAUTH/)
  const anonymous = await runRedisCli(redis.port, ['-e', 'PING'])
  t.not(anonymous.code, 0)
  t.match(anonymous.stdout + anonymous.stderr, /NOAUTH/)
  await redis.restart()
  t.equal(await redis.cli('PING'), 'PONG', 'a restart with a password waits for PONG too')
  await redis.dispose()
  t.ok(existsSync(dir), 'a folder the caller gave is left to the caller')
})

t.test('stop() ends the process, is idempotent, and a restart after it replays the AOF', async t => {
  const redis = await startRedis({ t })
  const key = `${uniquePrefix()}.k`
  await redis.cli('SET', key, 'v')
  const pid = redis.pid
  await redis.stop()
  t.ok(isDead(pid), `pid ${pid} is gone as soon as stop() resolves`)
  t.notOk(redis.running)
  await redis.stop()
  t.match(redis.logTail(), /Received SIGTERM/)
  await redis.restart()
  t.equal(await redis.cli('GET', key), 'v')
  const dir = redis.dir
  await redis.dispose()
  t.ok(isDead(redis.pid))
  t.notOk(existsSync(dir), 'dispose() removes the folder the harness made')
  await t.rejects(redis.restart(), /disposed/)
})

t.test('a start that fails says why, with the tail of the log, at once', async t => {
  const started = Date.now()
  await t.rejects(startRedis({ t, maxmemoryPolicy: 'no-such-policy' }), /exited \(1\) before answering PING[^]*redis\.log ---[^]*FATAL CONFIG FILE ERROR[^]*maxmemory-policy/)

  const taken = await startRedis({ t })
  // The port answers PING, but from another process: not mistaken for a started server.
  await t.rejects(startRedis({ t, port: taken.port }), /exited \(1\)[^]*not this process[^]*Address already in use/)
  t.equal(await taken.cli('PING'), 'PONG', 'the server holding the port is untouched')
  t.ok(Date.now() - started < 30_000, 'long before the 60 s bound')
})

t.test('a 3-master cluster: ok on every node, and redis-cli -c reaches keys on every node', async t => {
  const cluster = await sharedRedisCluster()
  t.equal(await sharedRedisCluster(), cluster, 'one shared cluster per test file')
  t.equal(cluster.nodes.length, 3)
  t.equal(cluster.url, `redis://127.0.0.1:${cluster.nodes[0].port}`)
  t.same(cluster.startupNodes, cluster.nodes.map(n => ({ host: '127.0.0.1', port: n.port })))
  for (const node of cluster.nodes) {
    const info = await node.cli('CLUSTER', 'INFO')
    t.match(info, /cluster_state:ok/, `${node.port} is ok`)
    t.match(info, /cluster_slots_assigned:16384/)
    t.match(info, /cluster_known_nodes:3/)
    t.match(info, /cluster_size:3/)
    t.equal(await configGet(node.cli.bind(node), 'appendfsync'), 'always')
    t.equal(await configGet(node.cli.bind(node), 'cluster-node-timeout'), '5000')
  }
  const covered = (await cluster.slotRanges()).reduce((n, r) => n + r.to - r.from + 1, 0)
  t.equal(covered, 16384)

  // Fixed keys: their slots, and so their nodes, are the same on every run.
  const owners = new Set<number>()
  for (let i = 0; i < 12; i++) {
    const key = `key${i}`
    t.equal(await cluster.cli('SET', key, `v${i}`), 'OK')
    t.equal(await cluster.cli('GET', key), `v${i}`)
    const owner = await cluster.nodeForKey(key)
    owners.add(owner.port)
    t.equal(await owner.cli('GET', key), `v${i}`, `${key} is on ${owner.port}`)
    const other = cluster.nodes.find(n => n !== owner)
    await t.rejects(other!.cli('GET', key), /MOVED/, 'and on no other node')
  }
  t.equal(owners.size, 3, 'the keys landed on all three nodes')

  await cluster.flushAll()
  t.equal(await cluster.cli('GET', 'key0'), '')

  // The root tap's teardown disposes of it again later: stop() and dispose() are idempotent.
  const pids = cluster.nodes.map(n => n.pid)
  await cluster.stop()
  t.ok(pids.every(isDead), 'stop() ends every node')
  await cluster.stop()
})

t.test('a cluster of fewer than 3 masters is refused before anything starts', async t => {
  await t.rejects(startRedisCluster({ masters: 2 }), /at least 3 masters, not 2/)
})

t.test('sharedRedis() is one server per test file; uniquePrefix() keeps tests apart', async t => {
  const a = await sharedRedis()
  const b = await sharedRedis()
  t.equal(a, b)
  t.ok(a.running)
  const prefixes = new Set(Array.from({ length: 200 }, uniquePrefix))
  t.equal(prefixes.size, 200)
  for (const p of prefixes) t.match(p, /^t[0-9a-z]{10}$/)
  const [p1, p2] = prefixes
  await a.cli('SET', `${p1}:k`, '1')
  t.equal(await a.cli('EXISTS', `${p2}:k`), '0')
})

type Ending = 'exits' | 'is SIGKILLed'

const redisModule = pathToFileURL(new URL('./redis.ts', import.meta.url).pathname).href

/** A node process (with this test's TypeScript loader) that starts a server, then ends as `ending` says. */
async function childWithRedis (t: Teardown, ending: Ending): Promise<{ pid: number, dir: string, end: () => Promise<void> }> {
  const script = `
    const { startRedis } = await import(${JSON.stringify(redisModule)})
    const redis = await startRedis()
    console.log(JSON.stringify({ pid: redis.pid, dir: redis.dir }))
    process.stdin.once('data', () => { process.exit(0) })
  `
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const closed = new Promise<void>(resolve => child.on('close', () => { resolve() }))
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    void closed.then(() => { reject(new Error(`the child ended without starting Redis:\n${stderr}`)) })
  })
  const end = async (): Promise<void> => {
    if (ending === 'exits') child.stdin.end('exit now\n')
    else child.kill('SIGKILL')
    await closed
  }
  return { ...JSON.parse(line) as { pid: number, dir: string }, end }
}

// A test process that ends takes its servers with it: by the 'exit' handler when it exits, and
// by the parent-death signal when it is SIGKILLed (as tap does on a timeout: no handler runs then).
t.test('no redis-server outlives the test process that started it', async t => {
  await Promise.all((['exits', 'is SIGKILLed'] as const).map(async ending => {
    const child = await childWithRedis(t, ending)
    t.notOk(isDead(child.pid), `the server of a process that ${ending} was running`)
    await child.end()
    t.ok(await waitDead(child.pid), `redis-server ${child.pid} ended with the process that ${ending}`)
    if (ending === 'exits') t.notOk(existsSync(child.dir), 'and the exit handler removed its temp folder')
    // Nothing in a SIGKILLed process can remove its folder.
    else removeDir(child.dir)
  }))
})
