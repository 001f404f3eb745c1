import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { verifyHash } from '../lib/keys.js'
import { chooseLogFormat, parseCommandLine, USAGE, type ServeCommand } from '../cli/args.js'
import { UsageError } from '../cli/errors.js'
import { main, run } from '../cli/main.js'
import type { KvConfig } from '../lib/config.js'
import { VERSION } from '../lib/version.js'
import { compiledServer } from './support/compiled.js'
import { build, testConfig, writeConfig } from './support/app.js'
import { freePort } from './support/net.js'
import { runCli, ServerProcess } from './support/process.js'
import { ROOT } from './support/root.js'
import { tempDir } from './support/temp.js'

const KEY_LINE = /^│ (system key|project '[^']+')\s+([A-Za-z0-9_-]{43})\s*│$/gm

/** The keys printed in the box, by scope name. */
function printedKeys (stdout: string): Map<string, string> {
  return new Map([...stdout.matchAll(KEY_LINE)].map(m => [m[1], m[2]]))
}

/** Run a command line in this process, capturing what it prints. */
async function cli (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, stdout: string, stderr: string, served: ServeCommand[] }> {
  const out = { stdout: '', stderr: '' }
  const served: ServeCommand[] = []
  const code = await run(args, {
    stdout: s => { out.stdout += s },
    stderr: s => { out.stderr += s },
    env
  }, async cmd => { served.push(cmd) })
  return { code, ...out, served }
}

function readConfig (file: string): KvConfig {
  return JSON.parse(readFileSync(file, 'utf8')) as KvConfig
}

function usageError (args: string[]): string {
  try {
    parseCommandLine(args)
  } catch (err) {
    if (err instanceof UsageError) return err.message
    throw err
  }
  throw new Error(`no error for ${args.join(' ')}`)
}

t.test('parseCommandLine: commands and their options', async t => {
  t.same(parseCommandLine([]), { name: 'serve', logFormat: 'auto', shutdownTimeoutMs: 8000 })
  t.same(parseCommandLine(['serve', '-c', 'x.json', '--host', '0.0.0.0', '-p', '0', '--log-level', 'debug', '--log-format', 'json', '--shutdown-timeout', '1.5']), {
    name: 'serve', config: 'x.json', host: '0.0.0.0', port: 0, logLevel: 'debug', logFormat: 'json', shutdownTimeoutMs: 1500
  })
  t.same(parseCommandLine(['--port=65535']), { name: 'serve', port: 65535, logFormat: 'auto', shutdownTimeoutMs: 8000 })
  t.same(parseCommandLine(['init']), { name: 'init' })
  t.same(parseCommandLine(['init', '--config', 'a.json']), { name: 'init', config: 'a.json' })
  t.same(parseCommandLine(['keys', 'regenerate', 'p_1']), { name: 'keys-regenerate', target: { scope: 'project', id: 'p_1' } })
  t.same(parseCommandLine(['keys', 'regenerate', '--system', '-c', 'a.json']), { name: 'keys-regenerate', config: 'a.json', target: { scope: 'system' } })
  t.same(parseCommandLine(['--help']), { name: 'help' })
  t.same(parseCommandLine(['help']), { name: 'help' })
  t.same(parseCommandLine(['init', '-h']), { name: 'help' })
  t.equal(usageError(['--bogus', '-h']), "unknown option '--bogus'", 'unknown options are reported even with --help')
  t.same(parseCommandLine(['--port', 'abc', '--help']), { name: 'help' }, 'help wins over bad values')
})

t.test('parseCommandLine: every mistake is one line', async t => {
  const cases: Array<[string[], string]> = [
    [['--bogus'], "unknown option '--bogus'"],
    [['-x'], "unknown option '-x'"],
    [['--port', 'abc'], "invalid --port 'abc': expected a whole number from 0 to 65535"],
    [['--port', '65536'], "invalid --port '65536': expected a whole number from 0 to 65535"],
    [['--port', '-1'], 'option --port needs a value'],
    [['--port'], 'option --port needs a value'],
    [['--config='], 'option --config needs a value'],
    [['--log-level', 'loud'], "invalid --log-level 'loud': expected one of fatal, error, warn, info, debug, trace, silent"],
    [['--log-format', 'xml'], "invalid --log-format 'xml': expected one of auto, pretty, json"],
    [['--shutdown-timeout', '0'], "invalid --shutdown-timeout '0': expected a number of seconds above 0, at most 3600"],
    [['--system=yes'], 'option --system takes no value'],
    [['--system'], "option --system does not apply to 'serve'"],
    [['init', '--port', '1'], "option --port does not apply to 'init'"],
    [['keys', 'regenerate', 'p1', '--host', 'h'], "option --host does not apply to 'keys regenerate'"],
    [['start'], "unknown command 'start'"],
    [['serve', 'now'], "unexpected argument 'now'"],
    [['init', 'now'], "unexpected argument 'now'"],
    [['keys'], "missing subcommand: use 'keys regenerate <project>' or 'keys regenerate --system'"],
    [['keys', 'rotate'], "unknown subcommand 'keys rotate'"],
    [['keys', 'regenerate'], "missing project id: use 'keys regenerate <project>' or 'keys regenerate --system'"],
    [['keys', 'regenerate', 'a', 'b'], "unexpected argument 'b'"],
    [['keys', 'regenerate', 'p1', '--system'], 'give either a project id or --system, not both'],
    [['keys', 'regenerate', '../x'], "invalid project id '../x': Project id must be 1 to 64 characters from A-Z, a-z, 0-9, underscore and hyphen"]
  ]
  for (const [args, message] of cases) {
    const got = usageError(args)
    t.equal(got, message, args.join(' '))
    t.notMatch(got, /\n/, 'one line')
  }
})

t.test('chooseLogFormat: pretty on a terminal, JSON otherwise, unless told', async t => {
  t.equal(chooseLogFormat('auto', true), 'pretty')
  t.equal(chooseLogFormat('auto', false), 'json')
  t.equal(chooseLogFormat('json', true), 'json')
  t.equal(chooseLogFormat('pretty', false), 'pretty')
})

t.test('--help and --version', async t => {
  const help = await runCli(t, ['--help'])
  t.equal(help.code, 0)
  t.equal(help.stdout, USAGE)
  t.equal(help.stderr, '')
  const version = await cli(['--version'])
  t.equal(version.code, 0)
  t.equal(version.stdout, `simple-kv ${VERSION}\n`)
  t.match(VERSION, /^\d+\.\d+\.\d+/)
})

t.test('a bad command line prints one error line and the usage, exit 2, and touches nothing', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'config.json')
  for (const args of [['--bogus'], ['--port', 'abc'], ['--log-level', 'loud'], ['frobnicate'], ['init', '--port', '1'], ['keys', 'regenerate']]) {
    const res = await cli([...args, '--config', file])
    t.equal(res.code, 2, args.join(' '))
    t.equal(res.stdout, '')
    t.same(res.served, [])
    const [first, blank, ...rest] = res.stderr.split('\n')
    t.match(first, /^simple-kv: \S.*$/)
    t.equal(blank, '')
    t.equal(rest.join('\n'), USAGE)
  }
  const spawned = await runCli(t, ['--port', '70000', '--config', file], { cwd: dir })
  t.equal(spawned.code, 2, 'the real process exits 2')
  t.equal(spawned.stderr, `simple-kv: invalid --port '70000': expected a whole number from 0 to 65535\n\n${USAGE}`)
  t.notOk(existsSync(file), 'no config written')
})

t.test('main exits with the code of the command', async t => {
  for (const [args, code] of [[['--version'], 0], [['--bogus'], 2], [['keys', 'regenerate', 'p1', '--config', join(tempDir(t), 'none.json')], 1]] as const) {
    const out = { stdout: '', stderr: '' }
    const exits: number[] = []
    await main(args, { stdout: s => { out.stdout += s }, stderr: s => { out.stderr += s }, env: {} }, c => { exits.push(c) })
    t.same(exits, [code], args.join(' '))
    t.equal(out.stdout === '', code !== 0, 'output on stdout only on success')
  }
})

t.test('serve is the default command', async t => {
  const res = await cli(['--port', '0', '--log-format', 'json'])
  t.equal(res.code, null, 'keeps running')
  t.same(res.served, [{ name: 'serve', port: 0, logFormat: 'json', shutdownTimeoutMs: 8000 }])
})

t.test('init writes a default config and prints each new key once', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'config.json')
  const res = await runCli(t, ['init', '--config', file], { cwd: dir })
  t.equal(res.code, 0, res.stderr)
  t.equal(res.stderr, '')
  t.match(res.stdout, `Wrote ${file}`)
  t.match(res.stdout, 'Store them now: they will not be shown again.')
  const keys = printedKeys(res.stdout)
  t.same([...keys.keys()], ['system key', "project 'first_project'"])
  const config = readConfig(file)
  t.equal(config.projects?.[0].id, 'first_project')
  const systemHash = config.system?.authentication?.api_key_hash as string
  const projectHash = config.projects?.[0].authentication?.api_key_hash as string
  t.match(systemHash, /^\$argon2id\$/)
  t.ok(await verifyHash(systemHash, keys.get('system key') as string), 'system key matches its hash')
  t.ok(await verifyHash(projectHash, keys.get("project 'first_project'") as string), 'project key matches its hash')
  const text = readFileSync(file, 'utf8')
  for (const key of keys.values()) t.notOk(text.includes(key), 'plaintext key not saved')

  const again = await cli(['init', '--config', file])
  t.equal(again.code, 1)
  t.equal(again.stderr, `simple-kv: ${file} already exists; to replace a key use 'simple-kv keys regenerate <project>' or '--system'\n`)
  t.equal(readFileSync(file, 'utf8'), text, 'existing config untouched')
})

t.test('init uses SIMPLE_KV_CONFIG when no --config is given', async t => {
  const dir = tempDir(t)
  const res = await cli(['init'], { SIMPLE_KV_CONFIG: join(dir, 'env.json') })
  t.equal(res.code, 0, res.stderr)
  t.ok(existsSync(join(dir, 'env.json')))
})

t.test('keys regenerate gives a project or the system a new key', async t => {
  const dir = tempDir(t)
  const file = writeConfig(dir, testConfig(c => {
    c.server_port = 1
    c.projects?.push({ id: 'hashed', authentication: { enabled: true } })
  }))
  const before = readConfig(file)

  const project = await cli(['keys', 'regenerate', 'p1', '--config', file])
  t.equal(project.code, 0, project.stderr)
  t.match(project.stdout, `Updated ${file}; the old key no longer works.`)
  const projectKey = printedKeys(project.stdout).get("project 'p1'") as string
  t.ok(projectKey)
  let after = readConfig(file)
  // p1 keeps its plaintext key in the config (save_api_key_to_config), so the new one replaces it there too.
  t.equal(after.projects?.[0].authentication?.api_key, projectKey)
  t.ok(await verifyHash(after.projects?.[0].authentication?.api_key_hash as string, projectKey))
  t.same(after.system, before.system, 'system scope untouched')

  const hashed = await cli(['keys', 'regenerate', 'hashed', '--config', file])
  t.equal(hashed.code, 0, hashed.stderr)
  const hashedKey = printedKeys(hashed.stdout).get("project 'hashed'") as string
  after = readConfig(file)
  t.equal(after.projects?.[1].authentication?.api_key, null, 'no plaintext without save_api_key_to_config')
  t.ok(await verifyHash(after.projects?.[1].authentication?.api_key_hash as string, hashedKey))

  const system = await cli(['keys', 'regenerate', '--system', '--config', file])
  t.equal(system.code, 0, system.stderr)
  const systemKey = printedKeys(system.stdout).get('system key') as string
  after = readConfig(file)
  t.not(after.system?.authentication?.api_key, before.system?.authentication?.api_key)
  t.ok(await verifyHash(after.system?.authentication?.api_key_hash as string, systemKey))
})

t.test('keys regenerate refuses what it cannot do, exit 1, file untouched', async t => {
  const dir = tempDir(t)
  const file = writeConfig(dir, testConfig(c => {
    c.server_port = 1
    c.projects?.push({ id: 'open', authentication: { enabled: false } })
    c.system = { ...c.system, authentication: { enabled: false } }
  }))
  const text = readFileSync(file, 'utf8')
  const cases: Array<[string[], string]> = [
    [['keys', 'regenerate', 'nope'], `simple-kv: project 'nope' is not in ${file}\n`],
    [['keys', 'regenerate', 'open'], `simple-kv: authentication is disabled for project 'open', so it has no key; enable it in ${file} first\n`],
    [['keys', 'regenerate', '--system'], `simple-kv: authentication is disabled for the system scope, so it has no key; enable it in ${file} first\n`]
  ]
  for (const [args, message] of cases) {
    const res = await cli([...args, '--config', file])
    t.equal(res.code, 1, args.join(' '))
    t.equal(res.stderr, message)
  }
  t.equal(readFileSync(file, 'utf8'), text)

  const missing = join(dir, 'missing.json')
  const res = await cli(['keys', 'regenerate', 'p1', '--config', missing])
  t.equal(res.code, 1)
  t.equal(res.stderr, `simple-kv: ${missing} does not exist; create it with 'simple-kv init'\n`)
  t.notOk(existsSync(missing), 'not created')

  writeFileSync(join(dir, 'bad.json'), '{"projects": 5}')
  const bad = await cli(['keys', 'regenerate', 'p1', '--config', join(dir, 'bad.json')])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /^simple-kv: Config file .*bad\.json: .*projects/)
})

t.test('keys regenerate refuses while a server runs on the config, and works once it stopped', async t => {
  const dir = tempDir(t)
  const port = await freePort()
  const file = writeConfig(dir, testConfig(c => { c.server_host = '127.0.0.1'; c.server_port = port }))
  const text = readFileSync(file, 'utf8')
  const useTheApi = 'stop it first, or use the API while it runs (POST /api/v1/projects/<id>/config/regenerate-api-key)\n'

  // Not answering on the config's port (started with another --port, or not listening):
  // the storage folder's lock still tells. Here the app holding it runs in this process.
  const inProcess = await build(t, { dir })
  const locked = await cli(['keys', 'regenerate', 'p1', '--config', file])
  t.equal(locked.code, 1)
  t.equal(locked.stderr, `simple-kv: a Simple KV server is running on ${file} (pid ${process.pid} holds ${join(dir, 'storage_data')}); ${useTheApi}`)
  await inProcess.app.close()

  const server = await ServerProcess.start(t, ['--config', file])
  const message = `simple-kv: a Simple KV server is running on ${file} (it answers on 127.0.0.1:${port}); ${useTheApi}`
  const spawned = await runCli(t, ['keys', 'regenerate', 'p1', '--config', file])
  t.equal(spawned.code, 1, 'the real process exits 1')
  t.equal(spawned.stderr, message)
  for (const args of [['keys', 'regenerate', 'p1'], ['keys', 'regenerate', '--system']]) {
    const res = await cli([...args, '--config', file])
    t.equal(res.code, 1)
    t.equal(res.stderr, message)
    t.equal(res.stdout, '')
  }
  t.equal(readFileSync(file, 'utf8'), text, 'config untouched')

  t.equal((await server.stop()).code, 0)
  const after = await cli(['keys', 'regenerate', 'p1', '--config', file])
  t.equal(after.code, 0, 'works once the server has stopped')
  t.not(readFileSync(file, 'utf8'), text)
})

t.test('the bin shim runs the compiled command line with the arguments, or says to build first', async t => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'bin'))
  copyFileSync(join(ROOT, 'bin', 'simple-kv.js'), join(dir, 'bin', 'simple-kv.js'))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin?: Record<string, string> }
  t.same(pkg.bin, { 'simple-kv': 'bin/simple-kv.js' }, 'package.json names the command')

  const missing = spawnSync(process.execPath, [join(dir, 'bin', 'simple-kv.js'), '--version'], { encoding: 'utf8' })
  t.equal(missing.status, 1)
  t.equal(missing.stderr, 'simple-kv: not built yet: run `npm run build` first\n')

  mkdirSync(join(dir, 'dist', 'cli'), { recursive: true })
  writeFileSync(join(dir, 'dist', 'cli', 'main.js'), 'export async function main (args) { process.stdout.write(JSON.stringify(args)) }\n')
  const ran = spawnSync(process.execPath, [join(dir, 'bin', 'simple-kv.js'), 'keys', 'regenerate', '--system'], { encoding: 'utf8' })
  t.equal(ran.status, 0, ran.stderr)
  t.same(JSON.parse(ran.stdout), ['keys', 'regenerate', '--system'])
})

t.test('the compiled server and the compiled CLI entry are the same command line; importing either runs nothing', async t => {
  const server = compiledServer()
  const entries = [server, join(dirname(server), 'cli', 'main.js'), server.replace(/\.js$/, '')]
  for (const entry of entries) {
    const res = spawnSync(process.execPath, [entry, '--bogus'], { encoding: 'utf8' })
    t.equal(res.status, 2, entry)
    t.equal(res.stderr, `simple-kv: unknown option '--bogus'\n\n${USAGE}`)
    t.equal(res.stdout, '')
  }
  // Imported by another program, neither reads the command line: no usage error, no exit code 2.
  const dir = tempDir(t)
  for (const entry of entries.slice(0, 2)) {
    const host = join(dir, 'host.mjs')
    writeFileSync(host, `const m = await import(${JSON.stringify(pathToFileURL(entry).href)})\nprocess.stdout.write(Object.keys(m).sort().join(' '))\n`)
    const res = spawnSync(process.execPath, [host, '--bogus'], { encoding: 'utf8' })
    t.equal(res.status, 0, res.stderr)
    t.equal(res.stderr, '')
    t.match(res.stdout, entry === server ? /\bstartServer\b/ : /\bmain\b.*\brun\b/)
  }
})
